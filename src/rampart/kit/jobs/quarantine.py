"""Quarantine (dead letters): where a job goes when it failed for good.

Written by the worker inside the job's tenant; read, replayed and discarded by the operator
(`rampart dlq`) through the app.dlq_* SECURITY DEFINER functions (migration 0002).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    FetchedValue,
    Integer,
    String,
    func,
    insert,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, Session, mapped_column

from rampart.kit.db.base import Base
from rampart.kit.db.transaction import transaction
from rampart.kit.jobs.models import Job
from rampart.kit.metrics import JOBS_QUARANTINED


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = {"implicit_returning": False}

    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, server_default=FetchedValue(), autoincrement=False
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    job_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    job_type: Mapped[str] = mapped_column(String)
    task: Mapped[str] = mapped_column(String)
    error_class: Mapped[str] = mapped_column(String)
    error_message: Mapped[str] = mapped_column(String)
    traceback: Mapped[str | None] = mapped_column(String)
    attempts: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    trace_id: Mapped[str | None] = mapped_column(String)
    quarantined_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    discarded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def quarantine(
    session: Session,
    *,
    job: Job,
    task: str,
    error_class: str,
    error_message: str,
    traceback: str | None,
) -> None:
    """Mark the job quarantined and keep everything needed to understand and replay it."""
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            status="quarantined",
            last_error=f"{error_class}: {error_message}"[:2000],
            finished_at=func.now(),
        )
    )
    session.execute(
        insert(DeadLetter).values(
            tenant_id=job.tenant_id,
            job_id=job.id,
            job_type=job.type,
            task=task,
            error_class=error_class,
            error_message=error_message[:4000],
            traceback=traceback,
            attempts=job.attempts,
            payload=job.payload,
            trace_id=job.trace_id,
        )
    )
    JOBS_QUARANTINED.labels(job.type).inc()


# --- operator side: every tenant, through the definer functions ---------------------------


def list_dead_letters(include_closed: bool = False) -> list[Any]:
    with transaction(None) as session:
        return list(
            session.execute(text("SELECT * FROM app.dlq_list(:closed)"), {"closed": include_closed})
        )


def show_dead_letter(dead_letter_id: int) -> Any | None:
    with transaction(None) as session:
        return session.execute(
            text("SELECT * FROM app.dlq_show(:id)"), {"id": dead_letter_id}
        ).first()


def replay(dead_letter_id: int) -> bool:
    with transaction(None) as session:
        return bool(
            session.execute(text("SELECT app.dlq_replay(:id)"), {"id": dead_letter_id}).scalar()
        )


def discard(dead_letter_id: int) -> bool:
    with transaction(None) as session:
        return bool(
            session.execute(text("SELECT app.dlq_discard(:id)"), {"id": dead_letter_id}).scalar()
        )
