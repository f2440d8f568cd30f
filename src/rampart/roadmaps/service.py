from __future__ import annotations

import uuid

from rampart.kit import context
from rampart.kit.db.transaction import Tx
from rampart.kit.errors import NotFound
from rampart.llm.schemas import RoadmapResult
from rampart.llm.service import Generated
from rampart.roadmaps import repository
from rampart.roadmaps.schemas import RoadmapOut


async def get(tx: Tx, roadmap_id: uuid.UUID) -> RoadmapOut:
    roadmap = await repository.get(tx, roadmap_id)
    if roadmap is None:  # another tenant's roadmap is invisible (RLS): also 404
        raise NotFound("Roadmap not found.")
    return RoadmapOut.model_validate(dict(roadmap))


async def save(
    tx: Tx,
    *,
    tenant_id: uuid.UUID,
    assessment_id: uuid.UUID,
    generated: Generated[RoadmapResult],
) -> uuid.UUID:
    """Store the assessment's roadmap once; return its id."""
    roadmap_id = await repository.insert_once(
        tx,
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "assessment_id": assessment_id,
            "items": [item.model_dump() for item in generated.result.items],
            "provider": generated.provider,
            "model": generated.model,
            "degraded": generated.degraded,
            "duration_ms": generated.duration_ms,
            "trace_id": context.current("trace_id"),
        },
    )
    context.bind(roadmap_id=str(roadmap_id))
    return roadmap_id
