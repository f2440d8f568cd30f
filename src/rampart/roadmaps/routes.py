from __future__ import annotations

import uuid

from fastapi import APIRouter

from rampart.kit.db.dependency import TenantSession
from rampart.roadmaps import service
from rampart.roadmaps.schemas import RoadmapOut

router = APIRouter(prefix="/api/v1/roadmaps", tags=["roadmaps"])


@router.get("/{roadmap_id}", response_model=RoadmapOut)
def get_roadmap(roadmap_id: uuid.UUID, session: TenantSession) -> RoadmapOut:
    return service.get(session, roadmap_id)
