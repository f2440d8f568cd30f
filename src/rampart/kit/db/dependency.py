"""The one FastAPI dependency that opens a request's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from rampart.kit.db.transaction import Claims, transaction
from rampart.kit.security.auth import Principal, current_principal


def _tenant_session(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Iterator[Session]:
    # scope="function": commit before the response is sent, so a failed commit is an error
    # response, never a 2xx for work that did not happen.
    with transaction(principal.claims) as session:
        yield session


def _anonymous_session() -> Iterator[Session]:
    with transaction(None) as session:
        yield session


TenantSession = Annotated[Session, Depends(_tenant_session, scope="function")]
AnonymousSession = Annotated[Session, Depends(_anonymous_session, scope="function")]
__all__ = ["TenantSession", "AnonymousSession", "Claims"]
