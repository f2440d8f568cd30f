"""Tokens of the links we mail (email verification, invitations): signed, expiring,
single-use, and stored only as a hash.

A link token is `<row id hex>.<HMAC-SHA256(key, purpose:id)>` (URL-safe base64). The key
is derived from JWT_SECRET for this use only, so the token is not a JWT key's output
anywhere else. The database row holds the expiry, the single use (`used_at`,
`accepted_at`) and `sha256(token)`; it never holds the token. The token is computed
again where the mail is rendered (the worker), from the row id in the job: neither the
job payload nor any table can produce a working link without the key.

Rotating JWT_SECRET voids the links still out (verification links live a day by
default, invitations a week): their holders ask for new ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from rampart.kit.settings import security_settings

_LABEL = b"rampart/mail-link-token/v1"


def _key() -> bytes:
    secret = security_settings().jwt_secret.get_secret_value().encode()
    return hmac.new(secret, _LABEL, hashlib.sha256).digest()


def link_token(purpose: str, row_id: uuid.UUID) -> str:
    """The token of the link for row `row_id` of `purpose` (`verify_email`, `invitation`)."""
    mac = hmac.new(_key(), f"{purpose}:{row_id.hex}".encode(), hashlib.sha256).digest()
    return f"{row_id.hex}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def token_hash(token: str) -> str:
    """What the database stores and looks up: the token's sha256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()
