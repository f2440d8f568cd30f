from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from rampart.assessments.models import Assessment
from rampart.roadmaps.models import Roadmap


def get(session: Session, roadmap_id: uuid.UUID) -> Roadmap | None:
    """The roadmap, unless its assessment was soft-deleted: then it is gone with it (404)."""
    return session.execute(
        select(Roadmap)
        .join(Assessment, Assessment.id == Roadmap.assessment_id)
        .where(Roadmap.id == roadmap_id, Assessment.deleted_at.is_(None))
    ).scalar_one_or_none()


def insert_once(session: Session, values: dict) -> uuid.UUID:
    """Insert the assessment's roadmap unless it has one; return the roadmap's id either way.

    The unique assessment_id makes a second roadmap impossible, even for two deliveries of
    the same job racing each other.
    """
    stmt = (
        pg_insert(Roadmap)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["assessment_id"])
        .returning(Roadmap.id)
    )
    inserted = session.execute(stmt).scalar_one_or_none()
    if inserted is not None:
        return inserted
    return session.execute(
        select(Roadmap.id).where(Roadmap.assessment_id == values["assessment_id"])
    ).scalar_one()
