from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.orm import Session

from rampart.assessments.models import Assessment


def insert_assessment(session: Session, values: dict) -> None:
    session.execute(insert(Assessment).values(**values))


# Every read below sees live assessments only: a soft-deleted one is gone for the API (404,
# not listed) and for the pipeline (its jobs find nothing to do).
_LIVE = Assessment.deleted_at.is_(None)


def get(session: Session, assessment_id: uuid.UUID) -> Assessment | None:
    return session.execute(
        select(Assessment).where(Assessment.id == assessment_id, _LIVE)
    ).scalar_one_or_none()


def get_for_update(session: Session, assessment_id: uuid.UUID) -> Assessment | None:
    return session.execute(
        select(Assessment).where(Assessment.id == assessment_id, _LIVE).with_for_update()
    ).scalar_one_or_none()


def list_recent(
    session: Session, *, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[Assessment]:
    """Newest first, keyset-paginated on (created_at, id): stable under concurrent inserts."""
    query = (
        select(Assessment).where(_LIVE).order_by(Assessment.created_at.desc(), Assessment.id.desc())
    )
    if before is not None:
        query = query.where(tuple_(Assessment.created_at, Assessment.id) < before)
    return list(session.execute(query.limit(limit)).scalars())


def soft_delete(assessment: Assessment) -> None:
    assessment.deleted_at = func.now()
