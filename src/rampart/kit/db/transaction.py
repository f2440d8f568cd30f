"""One transaction per request or task, with the caller's claims set inside it.

`set_config('request.jwt.claims', ..., true)` is transaction-local: it is set in the same
transaction as the queries and vanishes at COMMIT/ROLLBACK, so a pooled connection (or
PgBouncer in transaction mode) never carries one tenant's claims into another's work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from rampart.kit.db.engine import session_factory


@dataclass(frozen=True)
class Claims:
    """Who acts: `sub` (user id, absent for background work) within `tenant_id`."""

    tenant_id: str
    sub: str | None = None
    role: str = "authenticated"

    def as_json(self) -> str:
        claims = {"tenant_id": self.tenant_id, "role": self.role}
        if self.sub:
            claims["sub"] = self.sub
        return json.dumps(claims)


def set_claims(session: Session, claims: Claims) -> None:
    session.execute(
        text("SELECT set_config('request.jwt.claims', :claims, true)"),
        {"claims": claims.as_json()},
    )


@contextmanager
def transaction(claims: Claims | None = None) -> Iterator[Session]:
    """Open a transaction (committed on success, rolled back on error) scoped to `claims`.

    Without claims, RLS shows no tenant rows: only the definer functions are useful.
    """
    with session_factory()() as session, session.begin():
        if claims is not None:
            set_claims(session, claims)
        yield session
