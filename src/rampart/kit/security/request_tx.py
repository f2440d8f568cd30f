"""The FastAPI dependencies that open a request's one transaction.

`TenantTx` runs as the caller's claims and, in the round trip that opens it, checks that the
caller is still who their token or session says (kit/security/auth.py): no request acts for
a removed user or with a revoked token. `AnonymousTx` has
no claims (signup, login, webhooks: RLS shows them nothing but what definer functions
allow).

FastAPI reads and validates the request body before it solves dependencies, so no
connection is held while a client sends its body. scope="function": the transaction
commits before the response is sent, so a failed commit is an error response, never a
2xx for work that did not happen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends

from rampart.kit.db.transaction import Tx, transaction
from rampart.kit.security.auth import CurrentPrincipal, actor_hooks, refused


async def _tenant_tx(principal: CurrentPrincipal) -> AsyncIterator[Tx]:
    checks = actor_hooks().check_sql(principal)
    async with transaction(principal.claims, checks=checks) as tx:
        try:
            await tx.begin()
        except asyncpg.PostgresError as exc:
            raise refused(exc) or exc from exc
        yield tx


async def _anonymous_tx() -> AsyncIterator[Tx]:
    async with transaction(None) as tx:
        yield tx


TenantTx = Annotated[Tx, Depends(_tenant_tx, scope="function")]
AnonymousTx = Annotated[Tx, Depends(_anonymous_tx, scope="function")]
__all__ = ["TenantTx", "AnonymousTx", "Tx"]
