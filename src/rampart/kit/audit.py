"""Append-only audit trail of security-relevant actions, readable by readonly_audit."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, FetchedValue, String, func, insert
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, Session, mapped_column

from rampart.kit import context
from rampart.kit.db.base import Base


class AuditEvent(Base):
    __tablename__ = "audit_events"
    # app_rw may INSERT but not SELECT these rows: never ask for RETURNING.
    __table_args__ = {"implicit_returning": False}

    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, server_default=FetchedValue(), autoincrement=False
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    action: Mapped[str] = mapped_column(String)
    subject: Mapped[str | None] = mapped_column(String)
    trace_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def record(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    action: str,
    subject: str | None = None,
) -> None:
    """Write an audit row in the caller's transaction: it commits or rolls back with the work.

    A Core INSERT without RETURNING: app_rw may insert audit rows but never read them.
    """
    session.execute(
        insert(AuditEvent).values(
            tenant_id=tenant_id,
            actor_id=actor_id,
            action=action,
            subject=subject,
            trace_id=context.current("trace_id"),
        )
    )
