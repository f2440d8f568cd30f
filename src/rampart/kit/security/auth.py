"""Who is calling: a bearer token or a browser session cookie becomes a Principal (user,
tenant, role, token version), and the request's transaction checks it against the
database before anything else runs in it.

A bearer token wins when both are sent (a browser never adds one by itself). A cookie
session is looked up in Redis (kit/security/sessions.py) and, for a state-changing method,
must come with its CSRF token (kit/security/csrf.py): checking here, in the one place a
cookie authenticates, guards every route that takes a principal, present and future.

What a token or a session says is a claim. The request's transaction
(kit/security/request_tx.py) checks it in the very round trip that opens it (BEGIN, the claims,
then the domain's check SQL): a user who was removed, or whose token version moved on
(role or password changed, member removed), gets 401 on their next request, bearer and
cookie alike. The check refuses with SQLSTATE `RA401` (no such live user) or `RA402` (the
token version moved on). Routes that need the caller's current role or plan ask for
`CurrentActor` (kit/security/permissions.py), which the domain's loader reads in the same
transaction. The kit knows no domain table: the check and the loader are the domain's
(`set_actor_hooks`, wired by the app).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import asyncpg
import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from rampart.kit import context
from rampart.kit.errors import BadRequest, Unauthorized
from rampart.kit.security import csrf, sessions
from rampart.kit.security.principal import CHALLENGE, Principal, TokenRevoked
from rampart.kit.security.sessions import BrowserSession
from rampart.kit.security.tokens import decode_access_token

if TYPE_CHECKING:
    from rampart.kit.db.transaction import Tx

_bearer = HTTPBearer(auto_error=False)
_session_cookie = APIKeyCookie(
    name=sessions.SESSION_COOKIE,
    auto_error=False,
    description="Browser session from POST /api/v1/auth/session; POST, PUT, PATCH and DELETE "
    "also need the session's token in X-CSRF-Token.",
)
_STATE_KEY = "browser_session"


@dataclass(frozen=True)
class ActorHooks:
    """The domain's side of "who is calling, now": `check_sql(principal)` is SQL (built only
    from validated values) that raises RA401/RA402 unless the principal is still valid;
    `load(tx, principal)` returns the principal with its current role and plan."""

    check_sql: Callable[[Principal], str]
    load: Callable[[Tx, Principal], Awaitable[Principal]]


_hooks: list[ActorHooks] = []


def set_actor_hooks(hooks: ActorHooks) -> None:
    _hooks[:] = [hooks]


def actor_hooks() -> ActorHooks:
    if not _hooks:
        raise RuntimeError("no actor hooks: create_app() sets them (set_actor_hooks)")
    return _hooks[0]


def refused(exc: asyncpg.PostgresError) -> Unauthorized | None:
    """The 401 a refused check means, or None for any other database error."""
    if exc.sqlstate == "RA401":
        return Unauthorized("The account no longer exists.", headers=CHALLENGE)
    if exc.sqlstate == "RA402":
        return TokenRevoked(headers=CHALLENGE)
    return None


async def load_actor(tx: Tx, principal: Principal) -> Principal:
    """The caller with their current role and plan (read once per transaction)."""
    if tx.actor is None:
        tx.actor = await actor_hooks().load(tx, principal)
    return tx.actor


def _from_bearer(token: str) -> Principal:
    try:
        claims = decode_access_token(token)
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("Invalid or expired token.", headers=CHALLENGE) from exc
    return Principal(
        user_id=str(claims.sub),
        tenant_id=str(claims.tenant_id),
        role=claims.role,
        token_version=claims.ver,
    )


async def _from_session(request: Request, session_id: str) -> Principal:
    session = await sessions.touch(session_id)  # 503 if Redis is down
    if session is None:
        raise Unauthorized("The session has expired or was logged out.", headers=CHALLENGE)
    csrf.check(request, session.id)
    setattr(request.state, _STATE_KEY, session)
    return Principal(
        user_id=session.user_id,
        tenant_id=session.tenant_id,
        role=session.role,
        token_version=session.version,
    )


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session_id: Annotated[str | None, Depends(_session_cookie)],
) -> Principal:
    if credentials is not None:
        principal = _from_bearer(credentials.credentials)
    elif session_id:
        principal = await _from_session(request, session_id)
    else:
        raise Unauthorized("Missing bearer token or session cookie.", headers=CHALLENGE)
    context.bind(tenant_id=principal.tenant_id, user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


class NotASession(BadRequest):
    code = "not_a_session"
    message = (
        "This request is authenticated by a bearer token, not a session cookie; a bearer "
        "token cannot be revoked by logout, it ends at its expiry (discard it)."
    )


async def current_browser_session(request: Request, _principal: CurrentPrincipal) -> BrowserSession:
    """The cookie session that authenticated this request (CSRF already checked)."""
    session = getattr(request.state, _STATE_KEY, None)
    if session is None:
        raise NotASession()
    return session


CurrentBrowserSession = Annotated[BrowserSession, Depends(current_browser_session)]
