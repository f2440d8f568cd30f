from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from rampart.llm.schemas import DimensionScore

Status = Literal["queued", "scoring", "scored", "roadmapping", "completed", "failed"]


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Strict ints: "3", 3.0 and true are wrong types, not answers.
    answers: dict[str, StrictInt] = Field(max_length=200)
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


class AssessmentPage(BaseModel):
    items: list[AssessmentOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )
