from __future__ import annotations

import uuid

from fastapi import APIRouter

from rampart.kit.security.request_tx import TenantTx
from rampart.roadmaps import service
from rampart.roadmaps.schemas import RoadmapOut

router = APIRouter(prefix="/api/v1/roadmaps", tags=["roadmaps"])


@router.get("/{roadmap_id}", response_model=RoadmapOut)
async def get_roadmap(roadmap_id: uuid.UUID, tx: TenantTx) -> RoadmapOut:
    return await service.get(tx, roadmap_id)
