"""How many invitations a tenant may send: each one mails an address the tenant chooses, so
the bound keeps one account (or a stolen one) from mailing anyone through our domain. The
rule is the domain's; the limiter (moving window in Redis, fail-open) is the kit's."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Request
from limits import RateLimitItem, parse

from rampart.config import get_settings
from rampart.kit.security.auth import CurrentPrincipal
from rampart.kit.security.ratelimit import request_limiter


@lru_cache(maxsize=4)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


async def invitation_rate_limit(request: Request, principal: CurrentPrincipal) -> None:
    """Per tenant (RATE_LIMIT_INVITATIONS_PER_TENANT), whoever of it invites."""
    item = _item(get_settings().rate_limit_invitations_per_tenant)
    await request_limiter(request).check("invitations", item, principal.tenant_id)
