"""Append-only audit trail of security-relevant actions: who (actor), what (action,
subject), before → after, why (reason), under which trace. The database refuses UPDATE and
DELETE on it (migration 0015); owners read their tenant's rows through `app.audit_page`,
readonly_audit reads every tenant's."""

from __future__ import annotations

import json
import uuid
from typing import Any

from rampart.kit import context
from rampart.kit.db.transaction import Tx

# No RETURNING: app_rw may insert audit rows but never read them.
_INSERT = (
    "INSERT INTO audit_events"
    " (tenant_id, actor_id, action, subject, trace_id, before_state, after_state, reason)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)


async def record(
    tx: Tx,
    *,
    tenant_id: uuid.UUID | str,
    actor_id: uuid.UUID | str | None,
    action: str,
    subject: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """Write an audit row in the caller's transaction: it commits or rolls back with the work."""
    await tx.execute(
        _INSERT,
        _uuid(tenant_id),
        _uuid(actor_id) if actor_id is not None else None,
        action,
        subject,
        context.current("trace_id"),
        _json(before),
        _json(after),
        reason[:1000] if reason else None,
    )


def _json(value: dict[str, Any] | None) -> Any:
    """Plain JSON values (datetimes, UUIDs as strings) for the jsonb codec."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
