"""`Idempotency-Key` for creating POSTs, with Stripe's semantics.

A client whose request timed out cannot know whether it was committed. Retried with the
same `Idempotency-Key` header (any printable ASCII, up to 255 characters; a UUID is the
usual choice), it gets:
- the first response again, with `Idempotent-Replayed: true`, when the body is the same;
- 422 `idempotency_key_reused` when the body (or the route) differs;
and nothing is done twice. Keys are per tenant and live 24 hours (migration 0011; the relay
purges older ones with `app.idempotency_purge`, kit/jobs/relay.py).

The key row is written in the request's own transaction, before the work: a concurrent
request with the same key waits on the row's primary key until the first commits, then
replays its response (or, if the first rolled back, does the work itself). No race is
left to the application.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Header, Response
from pydantic import BaseModel

from rampart.kit.db.transaction import Tx
from rampart.kit.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)

REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes a retry of this request safe: the same key with the same body "
        "returns the first response (with `Idempotent-Replayed: true`) instead of doing the "
        "work again; with another body, 422 `idempotency_key_reused`. Per tenant, kept 24 h.",
    ),
]


class KeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with another request; use a new key."


def fingerprint(method: str, route: str, body: str | bytes) -> str:
    raw = body.encode() if isinstance(body, str) else body
    digest = hashlib.sha256(raw).hexdigest()
    return hashlib.sha256(f"{method} {route} {digest}".encode()).hexdigest()


async def once(
    tx: Tx,
    key: str | None,
    request_fingerprint: str,
    work: Callable[[], Awaitable[M]],
    model: type[M],
    response: Response,
    *,
    status: int,
) -> M:
    """`work()`'s result, or the result the first request with `key` got."""
    if key is None:
        return await work()
    assert tx.claims is not None, "idempotency keys belong to a tenant"
    tenant_id = tx.claims.tenant_id
    claimed = await tx.fetchval(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, key) DO NOTHING RETURNING true",
        tenant_id,
        key,
        request_fingerprint,
    )
    if not claimed:
        earlier = await tx.fetchrow(
            "SELECT fingerprint, response_body, created_at < now() - interval '24 hours'"
            " AS expired FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            tenant_id,
            key,
        )
        if earlier is not None and not earlier["expired"]:
            if earlier["fingerprint"] != request_fingerprint:
                raise KeyReused()
            response.headers[REPLAYED_HEADER] = "true"
            return model.model_validate(earlier["response_body"])
        await tx.execute(
            "INSERT INTO idempotency_keys (tenant_id, key, fingerprint) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant_id, key) DO UPDATE"
            " SET fingerprint = excluded.fingerprint, response_body = NULL, created_at = now()",
            tenant_id,
            key,
            request_fingerprint,
        )
    result = await work()
    await tx.execute(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4"
        " WHERE tenant_id = $1 AND key = $2",
        tenant_id,
        key,
        status,
        result.model_dump(mode="json"),
    )
    return result

