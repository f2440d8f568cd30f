"""Browser sessions: a random id in the `__Host-session` cookie, the state in Redis.

Why server-side state and not a JWT in a cookie: logout must revoke a session at once, and
an idle session must end after SESSION_TTL_SECONDS without the browser's help. Redis holds
`rampart:session:<sha256(id)>` → {user, tenant, role, csrf token}, with a TTL that every
authenticated request starts again (GETEX: read and refresh in one step). Only the digest
of the id is a key, so a Redis dump or `KEYS` listing yields no usable cookie.

The cookies carry the `__Host-` prefix: the browser accepts them only with Secure,
Path=/ and no Domain, so neither a sibling subdomain nor plain HTTP can set or overwrite
them. They have no Max-Age (they end with the browser); the idle timeout is the server's.

Redis is asked through the REQUEST profile (kit/redis_clients.py: 0.5 s per command, one
immediate retry of a pooled connection gone stale, no backoff). If Redis cannot be asked,
cookie sessions fail closed with 503 `sessions_unavailable`
(not 401: the session may well be valid, and a 401 would send the user to a login that
cannot work either). Bearer tokens never touch Redis and keep working.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import redis
import redis.asyncio as aioredis

from rampart.kit import redis_clients
from rampart.kit.errors import ServiceUnavailable
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import SESSION_EVENTS
from rampart.kit.security.csrf import CSRF_COOKIE, issue_token
from rampart.kit.settings import security_settings

if TYPE_CHECKING:
    from starlette.responses import Response

log = get_logger(__name__)

SESSION_COOKIE = "__Host-session"
KEY_PREFIX = "rampart:session:"


class SessionsUnavailable(ServiceUnavailable):
    code = "sessions_unavailable"
    message = "Browser sessions are unavailable; retry shortly (bearer tokens still work)."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "5"})


@dataclass(frozen=True)
class BrowserSession:
    """One live session. `id` is the cookie value: a credential, never logged or stored."""

    id: str = field(repr=False)
    user_id: str
    tenant_id: str
    role: str
    csrf_token: str = field(repr=False)
    version: int = 0  # the user's token version at login (kit/security/auth.py)


def redis_key(session_id: str) -> str:
    return KEY_PREFIX + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def _client() -> aioredis.Redis:
    url = security_settings().redis_url
    if url is None:
        raise SessionsUnavailable()
    return redis_clients.shared(url.get_secret_value(), redis_clients.REQUEST)


def _unavailable(operation: str, exc: Exception) -> SessionsUnavailable:
    SESSION_EVENTS.labels("store_unavailable").inc()
    log.warning("session_store_unavailable", operation=operation, error=str(exc)[:200])
    return SessionsUnavailable()


async def create(*, user_id: str, tenant_id: str, role: str, version: int) -> BrowserSession:
    """Store a new session under a fresh random id (never one the client offered: no
    fixation), with its CSRF token."""
    session_id = secrets.token_urlsafe(32)
    session = BrowserSession(
        id=session_id,
        user_id=user_id,
        tenant_id=tenant_id,
        role=role,
        csrf_token=issue_token(session_id),
        version=version,
    )
    state = {k: v for k, v in asdict(session).items() if k != "id"}
    try:
        ttl = security_settings().session_ttl_seconds
        await _client().set(redis_key(session_id), json.dumps(state), ex=ttl)
    except (redis.RedisError, OSError) as exc:
        raise _unavailable("create", exc) from exc
    SESSION_EVENTS.labels("created").inc()
    return session


async def touch(session_id: str) -> BrowserSession | None:
    """The live session with this id, its idle timeout started again; None if unknown or
    expired."""
    try:
        ttl = security_settings().session_ttl_seconds
        raw = await _client().getex(redis_key(session_id), ex=ttl)
    except (redis.RedisError, OSError) as exc:
        raise _unavailable("touch", exc) from exc
    if raw is None:
        return None
    return BrowserSession(id=session_id, **json.loads(raw))


async def revoke(session_id: str) -> None:
    """Delete the session server-side: its cookie authenticates nothing any more."""
    try:
        await _client().delete(redis_key(session_id))
    except (redis.RedisError, OSError) as exc:
        raise _unavailable("revoke", exc) from exc
    SESSION_EVENTS.labels("revoked").inc()


def set_cookies(response: Response, session: BrowserSession) -> None:
    """`__Host-session` (HttpOnly: script never sees it) and `__Host-csrf` (readable by the
    frontend's script, which echoes it in X-CSRF-Token)."""
    samesite = security_settings().session_cookie_samesite
    response.set_cookie(
        SESSION_COOKIE, session.id, path="/", secure=True, httponly=True, samesite=samesite
    )
    response.set_cookie(
        CSRF_COOKIE, session.csrf_token, path="/", secure=True, httponly=False, samesite=samesite
    )


def clear_cookies(response: Response) -> None:
    samesite = security_settings().session_cookie_samesite
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=True, httponly=httponly, samesite=samesite)
