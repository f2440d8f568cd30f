"""Results shared by all LLM providers.

These models double as the schema that real LLM output is validated against, so they are
strict: unknown keys are rejected (``extra="forbid"``) and values are not coerced
(``strict=True``: ``"50"``, ``50.0`` or ``true`` are not accepted where an int is expected).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DimensionScore", "RoadmapItem", "RoadmapResult", "ScoreResult"]

_STRICT = ConfigDict(extra="forbid", strict=True)


class DimensionScore(BaseModel):
    """Score of one dimension, with a short human-readable justification."""

    model_config = _STRICT

    score: int = Field(ge=0, le=100)
    rationale: str = Field(min_length=1, max_length=500)


class ScoreResult(BaseModel):
    """Overall score and per-dimension scores, keyed by dimension id."""

    model_config = _STRICT

    overall: int = Field(ge=0, le=100)
    dimensions: dict[str, DimensionScore] = Field(min_length=1)


class RoadmapItem(BaseModel):
    """One prioritized action; priority 1 is the most urgent."""

    model_config = _STRICT

    priority: int = Field(ge=1)
    dimension: str = Field(min_length=1, description="Dimension id the action improves.")
    title: str = Field(min_length=1, max_length=200)
    why: str = Field(min_length=1, max_length=1000)
    horizon_days: Literal[30, 60, 90]


class RoadmapResult(BaseModel):
    """A roadmap: at least three actions, most urgent first."""

    model_config = _STRICT

    items: list[RoadmapItem] = Field(min_length=3, max_length=20)
