from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

ContentType = Literal["application/pdf", "image/png", "image/jpeg"]
ACCEPTED_TYPES: frozenset[str] = frozenset(get_args(ContentType))


class EvidenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    assessment_id: uuid.UUID
    filename: str = Field(description="The uploaded file's name, sanitized; display only.")
    content_type: ContentType = Field(description="Decided from the file's bytes.")
    size: int = Field(validation_alias="size_bytes", description="Bytes.")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    created_at: datetime


class EvidenceList(BaseModel):
    items: list[EvidenceOut] = Field(description="Oldest first.")
