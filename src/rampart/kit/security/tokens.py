"""Access tokens: HS256 JWTs carrying the user, tenant and role (PyJWT)."""

from __future__ import annotations

import time
import uuid

import jwt

from rampart.config import get_settings

_ALGORITHM = "HS256"
_AUDIENCE = "rampart-api"


def issue_access_token(*, user_id: str, tenant_id: str, role: str) -> tuple[str, int]:
    settings = get_settings()
    now = int(time.time())
    ttl = settings.jwt_ttl_seconds
    claims = {
        "sub": user_id,
        "tenant_id": tenant_id,
        "role": role,
        "aud": _AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), _ALGORITHM), ttl


def decode_access_token(token: str) -> dict:
    """The verified claims; raises jwt.InvalidTokenError on anything wrong or expired."""
    return jwt.decode(
        token,
        get_settings().jwt_secret.get_secret_value(),
        algorithms=[_ALGORITHM],
        audience=_AUDIENCE,
        options={"require": ["sub", "tenant_id", "role", "exp"]},
    )
