"""How many assessments a user may create, by their tenant's plan: creating one costs LLM
calls. The rule is the domain's; the limiter (moving window in Redis, fail-open) is the
kit's (kit/security/ratelimit.py)."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Request
from limits import RateLimitItem, parse

from rampart.config import get_settings
from rampart.kit.security.auth import CurrentPrincipal, load_actor
from rampart.kit.security.ratelimit import request_limiter
from rampart.kit.security.request_tx import TenantTx


@lru_cache(maxsize=8)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


def per_plan(plan: str | None) -> RateLimitItem:
    """RATE_LIMIT_ASSESSMENTS_PRO for the pro plan, RATE_LIMIT_ASSESSMENTS_FREE else."""
    settings = get_settings()
    if plan == "pro":
        return _item(settings.rate_limit_assessments_pro)
    return _item(settings.rate_limit_assessments_free)


async def assessment_rate_limit(
    request: Request, tx: TenantTx, principal: CurrentPrincipal
) -> None:
    """Per user, by the tenant's plan (read in the request's own transaction, so an upgrade
    applies on the next request)."""
    actor = await load_actor(tx, principal)
    await request_limiter(request).check("assessments", per_plan(actor.plan), actor.user_id)
