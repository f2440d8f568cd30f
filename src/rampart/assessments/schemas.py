from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema, field_validator

from rampart.llm.schemas import DimensionScore
from rampart.questionnaire import QUESTIONNAIRE, answers_json_schema

Status = Literal["queued", "scoring", "scored", "roadmapping", "completed", "failed"]


class AssessmentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "answers": {q.id: 3 for q in QUESTIONNAIRE.questions},
                    "context": "B2B SaaS, 3 engineers, on-call by rotation.",
                }
            ]
        },
    )
    # Strict ints: "3", 3.0 and true are wrong types, not answers. The service checks them
    # against the questionnaire (every problem at once); the schema documents the same.
    answers: Annotated[dict[str, StrictInt], WithJsonSchema(answers_json_schema())] = Field(
        max_length=200
    )
    context: str | None = Field(None, max_length=2000)

    @field_validator("context")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # Postgres text cannot hold NUL: a 422 here, not a 500 at the INSERT.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class AssessmentAccepted(BaseModel):
    id: uuid.UUID
    status: Status


class AssessmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    status: Status
    overall_score: int | None
    dimension_scores: dict[str, DimensionScore] | None
    roadmap_id: uuid.UUID | None
    provider: str | None
    model: str | None
    degraded: bool
    score_duration_ms: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = Field(
        description="When it became `completed` or `failed`; null before (and after a "
        "replay puts it back in progress)."
    )


class AssessmentPage(BaseModel):
    items: list[AssessmentOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )
