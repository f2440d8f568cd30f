"""Who is calling: a bearer token or a browser session cookie becomes a Principal (user,
tenant, role).

A bearer token wins when both are sent (a browser never adds one by itself). A cookie
session is looked up in Redis (kit/security/sessions.py) and, for a state-changing method,
must come with its CSRF token (kit/security/csrf.py): checking here, in the one place a
cookie authenticates, guards every route that takes a principal, present and future."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from rampart.kit import context
from rampart.kit.db.transaction import Claims
from rampart.kit.errors import BadRequest, Unauthorized
from rampart.kit.security import csrf, sessions
from rampart.kit.security.sessions import BrowserSession
from rampart.kit.security.tokens import decode_access_token

_bearer = HTTPBearer(auto_error=False)
_session_cookie = APIKeyCookie(
    name=sessions.SESSION_COOKIE,
    auto_error=False,
    description="Browser session from POST /api/v1/auth/session; POST, PUT, PATCH and DELETE "
    "also need the session's token in X-CSRF-Token.",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_STATE_KEY = "browser_session"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. Resolved in an async dependency so the context it binds
    (tenant_id, user_id) stays visible to the rest of the request, threads included."""

    user_id: str
    tenant_id: str
    role: str

    @property
    def claims(self) -> Claims:
        return Claims(tenant_id=self.tenant_id, sub=self.user_id)


def _from_bearer(token: str) -> Principal:
    try:
        claims = decode_access_token(token)
        return Principal(
            user_id=str(uuid.UUID(claims["sub"])),
            tenant_id=str(uuid.UUID(claims["tenant_id"])),
            role=str(claims["role"]),
        )
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise Unauthorized("Invalid or expired token.", headers=_CHALLENGE) from exc


async def _from_session(request: Request, session_id: str) -> Principal:
    session = await run_in_threadpool(sessions.touch, session_id)  # 503 if Redis is down
    if session is None:
        raise Unauthorized("The session has expired or was logged out.", headers=_CHALLENGE)
    csrf.check(request, session.id)
    setattr(request.state, _STATE_KEY, session)
    return Principal(user_id=session.user_id, tenant_id=session.tenant_id, role=session.role)


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
        raise Unauthorized("Missing bearer token or session cookie.", headers=_CHALLENGE)
    context.bind(tenant_id=principal.tenant_id, user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


class NotASession(BadRequest):
    code = "not_a_session"
    message = (
        "This request is authenticated by a bearer token, not a session cookie; a bearer "
        "token cannot be revoked, it ends at its expiry (discard it)."
    )


async def current_browser_session(request: Request, _principal: CurrentPrincipal) -> BrowserSession:
    """The cookie session that authenticated this request (CSRF already checked)."""
    session = getattr(request.state, _STATE_KEY, None)
    if session is None:
        raise NotASession()
    return session


CurrentBrowserSession = Annotated[BrowserSession, Depends(current_browser_session)]
