"""Who is calling: the bearer token becomes a Principal (user, tenant, role)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rampart.kit import context
from rampart.kit.db.transaction import Claims
from rampart.kit.errors import Unauthorized
from rampart.kit.security.tokens import decode_access_token

_bearer = HTTPBearer(auto_error=False)


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


async def current_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("Missing bearer token.", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = decode_access_token(credentials.credentials)
        principal = Principal(
            user_id=str(uuid.UUID(claims["sub"])),
            tenant_id=str(uuid.UUID(claims["tenant_id"])),
            role=str(claims["role"]),
        )
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise Unauthorized(
            "Invalid or expired token.", headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    context.bind(tenant_id=principal.tenant_id, user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
