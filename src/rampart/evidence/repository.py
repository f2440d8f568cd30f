from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.evidence.models import Evidence


def add(session: Session, evidence: Evidence) -> Evidence:
    session.add(evidence)
    session.flush()  # constraint errors surface here, before the file is stored
    return evidence


def list_for_assessment(session: Session, assessment_id: uuid.UUID) -> list[Evidence]:
    query = (
        select(Evidence)
        .where(Evidence.assessment_id == assessment_id)
        .order_by(Evidence.created_at, Evidence.id)
    )
    return list(session.execute(query).scalars())
