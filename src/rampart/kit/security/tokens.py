"""Access tokens: HS256 JWTs carrying the user, tenant, role and token version (PyJWT).

The signature proves we issued a token; the claims are then validated as a model, so a
validly signed token with a malformed claim (`"tenant_id": 5`, a sub that is not a UUID,
a negative version) is a 401 like any other bad token, never a 500. `ver` is the user's
token version when it was issued: bumping the version (member removed, password or role
changed) revokes every older token at once (kit/security/auth.py checks it per request).
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rampart.kit.settings import security_settings

_ALGORITHM = "HS256"
_AUDIENCE = "rampart-api"


class AccessClaims(BaseModel):
    """The claims of a valid access token (extra claims are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    sub: uuid.UUID = Field(strict=False)
    tenant_id: uuid.UUID = Field(strict=False)
    role: Literal["owner", "admin", "member", "viewer"]
    ver: int = Field(0, ge=0)
    exp: int
    aud: str


def issue_access_token(
    *, user_id: str, tenant_id: str, role: str, version: int = 0
) -> tuple[str, int]:
    settings = security_settings()
    now = int(time.time())
    ttl = settings.jwt_ttl_seconds
    claims = {
        "sub": user_id,
        "tenant_id": tenant_id,
        "role": role,
        "ver": version,
        "aud": _AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), _ALGORITHM), ttl


def decode_access_token(token: str) -> AccessClaims:
    """The verified claims; raises jwt.InvalidTokenError on anything wrong or expired."""
    claims = _verified(token, security_settings().jwt_secret.get_secret_value())
    if claims.exp <= time.time():  # a remembered token is checked for expiry every time
        raise jwt.ExpiredSignatureError("Signature has expired")
    return claims


@lru_cache(maxsize=8192)
def _verified(token: str, secret: str) -> AccessClaims:
    """Verify once per token and key: a client sends the same token with every request, and
    PyJWT's verification is a good part of a request's CPU. Only tokens that verified are
    remembered (a failure raises, and lru_cache keeps no exception), under the key they
    verified with, so a rotated JWT_SECRET verifies anew."""
    raw = jwt.decode(
        token,
        secret,
        algorithms=[_ALGORITHM],
        audience=_AUDIENCE,
        options={"require": ["sub", "tenant_id", "role", "exp"]},
    )
    try:
        return AccessClaims.model_validate(raw)
    except ValidationError as exc:
        raise jwt.InvalidTokenError("malformed claims") from exc
