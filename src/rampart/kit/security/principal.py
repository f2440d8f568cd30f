"""The caller, as the rest of the code sees it: a Principal (user, tenant, role, token
version). kit/security/auth.py makes one from a token or a session cookie; services take
one as their actor. No web framework here: workers and the CLI load the services that
take a Principal without loading FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass

from rampart.kit.db.transaction import Claims
from rampart.kit.errors import Unauthorized

CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """The caller. From a token or session: what it claims; from `CurrentActor`: what the
    database holds now (role, version, the tenant's plan, and whether the caller's email
    address is confirmed: unknown, so False, until the database says)."""

    user_id: str
    tenant_id: str
    role: str
    token_version: int = 0
    plan: str | None = None
    verified: bool = False

    @property
    def claims(self) -> Claims:
        return Claims(tenant_id=self.tenant_id, sub=self.user_id)


class TokenRevoked(Unauthorized):
    code = "token_revoked"
    message = "This token or session is no longer valid; log in again."
