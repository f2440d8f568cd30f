"""Append-only audit trail of security-relevant actions, readable by readonly_audit."""

from __future__ import annotations

import uuid

from rampart.kit import context
from rampart.kit.db.transaction import Tx

# No RETURNING: app_rw may insert audit rows but never read them.
_INSERT = (
    "INSERT INTO audit_events (tenant_id, actor_id, action, subject, trace_id)"
    " VALUES ($1, $2, $3, $4, $5)"
)


async def record(
    tx: Tx,
    *,
    tenant_id: uuid.UUID | str,
    actor_id: uuid.UUID | str | None,
    action: str,
    subject: str | None = None,
) -> None:
    """Write an audit row in the caller's transaction: it commits or rolls back with the work."""
    await tx.execute(
        _INSERT,
        _uuid(tenant_id),
        _uuid(actor_id) if actor_id is not None else None,
        action,
        subject,
        context.current("trace_id"),
    )


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
