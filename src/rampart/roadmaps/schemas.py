from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from rampart.llm.schemas import RoadmapItem


class RoadmapOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    assessment_id: uuid.UUID
    items: list[RoadmapItem]
    provider: str
    model: str
    degraded: bool
    duration_ms: int
    created_at: datetime
