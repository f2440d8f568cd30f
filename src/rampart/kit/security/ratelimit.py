"""Abuse limits: the `limits` library, moving window, buckets in Redis shared by every API
process.

Moving window, not fixed: a fixed window lets a client spend a whole window's budget at
the end of one window and again at the start of the next (10 logins in seconds against a
5/15 min limit). The moving window counts the hits of the last N seconds exactly and says
exactly when the oldest one leaves, which is our `Retry-After`. It keeps one timestamp per
hit, so its Redis cost is O(limit) per bucket: trivial for limits of tens.

Where each limit applies:
- `RateLimitMiddleware`: the base limit per client IP on every request except the probes
  and the paths the app exempts (routes with their own limit count against it too).
  An exempt machine endpoint (the incident webhook: one Alertmanager may send bursts, and
  it does not retry a 429) counts only its failed authentications, with
  `limit_failed_attempts`, against the same per-IP limit.
- Route dependencies: `login_rate_limit`, `signup_rate_limit` (counts every accepted
  signup, no rejected body), `upload_rate_limit`. A domain with a limit of its own (the
  assessments' per-plan limit, assessments/limits.py) writes its dependency with
  `request_limiter(request).check(...)`: the kit is the mechanism, the domain the rule.

If Redis cannot be asked the check fails open (the request proceeds) with a warning log
and a metric, and checks pause briefly so a dead Redis costs one timeout, not one per
request: abuse limits must never take the API down with Redis.
"""

from __future__ import annotations

import hashlib
import math
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.types import ASGIApp, Receive, Scope, Send

from rampart.kit import redis_clients
from rampart.kit.errors import AppError
from rampart.kit.http_errors import envelope
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import RATE_LIMIT_FAIL_OPEN, RATE_LIMITED
from rampart.kit.security.auth import CurrentPrincipal
from rampart.kit.security.client_ip import client_ip, ip_bucket
from rampart.kit.security.emails import canonical_email
from rampart.kit.settings import SecuritySettings, security_settings

log = get_logger(__name__)

KEY_PREFIX = "rampart:ratelimit"
# Not /metrics: it is no route of the public port (the metrics have their own listener).
EXEMPT_PATHS = frozenset({"/health", "/ready"})
FAIL_OPEN_PAUSE_SECONDS = 5.0
_STATE_KEY = "rate_limiter"


class RateLimited(AppError):
    code, status, message = "rate_limited", 429, "Too many requests; retry later."


@dataclass(frozen=True)
class Limits:
    """The configured limits, parsed once per app."""

    default_per_ip: RateLimitItem
    login_per_ip_email: RateLimitItem
    login_per_ip: RateLimitItem
    signup_per_ip: RateLimitItem
    uploads_per_user: RateLimitItem

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> Limits:
        return cls(
            default_per_ip=parse(settings.rate_limit_default_per_ip),
            login_per_ip_email=parse(settings.rate_limit_login_per_ip_email),
            login_per_ip=parse(settings.rate_limit_login_per_ip),
            signup_per_ip=parse(settings.rate_limit_signup_per_ip),
            uploads_per_user=parse(settings.rate_limit_uploads_per_user),
        )


def _async_redis_uri(url: str) -> str:
    if url.startswith("unix://"):
        return "async+redis+unix://" + url.removeprefix("unix://")
    return "async+" + url


class RateLimiter:
    """Moving-window checks against Redis; None storage means limits are off."""

    def __init__(self, limits: Limits, redis_url: str | None) -> None:
        self.limits = limits
        self._strategy: MovingWindowRateLimiter | None = None
        if redis_url:
            storage = RedisStorage(
                _async_redis_uri(redis_url),
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=KEY_PREFIX,
                socket_timeout=redis_clients.HOT_PATH.timeout,
                socket_connect_timeout=redis_clients.HOT_PATH.timeout,
            )
            self._strategy = MovingWindowRateLimiter(storage)
        self._paused_until = 0.0

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> RateLimiter:
        limits = Limits.from_settings(settings)
        if not settings.rate_limit_enabled:
            return cls(limits, None)
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        if redis_url is None:
            log.warning("rate_limits_off", reason="REDIS_URL is not set")
        return cls(limits, redis_url)

    async def retry_after(
        self, name: str, item: RateLimitItem, *identifiers: str, count: bool = True
    ) -> int | None:
        """Count one hit (only look, with count=False); None if allowed, else the seconds
        until a hit would be allowed."""
        if self._strategy is None or time.monotonic() < self._paused_until:
            return None
        try:
            look = self._strategy.hit if count else self._strategy.test
            if await look(item, name, *identifiers):
                return None
            reset_at, _remaining = await self._strategy.get_window_stats(item, name, *identifiers)
        except (StorageError, redis.RedisError, OSError, TimeoutError) as exc:
            self._paused_until = time.monotonic() + FAIL_OPEN_PAUSE_SECONDS
            RATE_LIMIT_FAIL_OPEN.inc()
            log.warning(
                "rate_limit_fail_open",
                limit=name,
                error=str(exc)[:200],
                paused_seconds=FAIL_OPEN_PAUSE_SECONDS,
            )
            return None
        # Counted, not logged: the access log already has each 429, and a flood of refusals
        # must not become a flood of log lines.
        RATE_LIMITED.labels(name).inc()
        return max(1, math.ceil(reset_at - time.time()))

    async def check(
        self, name: str, item: RateLimitItem, *identifiers: str, count: bool = True
    ) -> None:
        """Count one hit (only look, with count=False); raise RateLimited (429 with
        Retry-After) when over the limit."""
        wait = await self.retry_after(name, item, *identifiers, count=count)
        if wait is not None:
            raise RateLimited(headers={"Retry-After": str(wait)})


class RateLimitMiddleware:
    """Pure ASGI: the base limit per client IP, and the limiter the route dependencies use
    (put in the request state, so each app, and its event loop, has its own client)."""

    def __init__(self, app: ASGIApp, exempt: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.limiter = RateLimiter.from_settings(security_settings())
        self.exempt = EXEMPT_PATHS | exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE_KEY] = self.limiter
        if scope["path"] not in self.exempt:
            wait = await self.limiter.retry_after(
                "default", self.limiter.limits.default_per_ip, ip_bucket(client_ip(scope))
            )
            if wait is not None:
                response = envelope(
                    429,
                    RateLimited.code,
                    RateLimited.message,
                    headers={"Retry-After": str(wait)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def request_limiter(request: Request) -> RateLimiter:
    """The app's limiter (RateLimitMiddleware puts it in the request state)."""
    limiter = request.scope.get("state", {}).get(_STATE_KEY)
    if limiter is None:
        raise RuntimeError("RateLimitMiddleware is not installed")
    return limiter


def _ip(request: Request) -> str:
    return ip_bucket(client_ip(request.scope))


async def limit_failed_attempts(request: Request, name: str) -> None:
    """Count one failed authentication on a path exempt from the base limit, against that
    limit per client IP; 429 when over (guessing a token costs what any request costs)."""
    limiter = request_limiter(request)
    await limiter.check(name, limiter.limits.default_per_ip, _ip(request))


async def _login_email(request: Request) -> str:
    """The email of a login body in its canonical form (kit/security/emails.py: the one the
    account is stored and looked up under, so every spelling of one address is one
    bucket), digested: buckets never hold clear PII. FastAPI has read and cached the body
    already; an unreadable one counts under the empty email, and a string that is no
    address (the request then gets 422) under its NFKC-casefolded self."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str):
        email = ""
    try:
        email = canonical_email(email)
    except ValueError:
        email = unicodedata.normalize("NFKC", email.strip()).casefold()
    return hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()[:32]


async def login_rate_limit(request: Request) -> None:
    """Per (IP, email) against guessing one account, per IP against spraying many."""
    limiter, ip = request_limiter(request), _ip(request)
    email = await _login_email(request)
    await limiter.check("login_ip_email", limiter.limits.login_per_ip_email, ip, email)
    await limiter.check("login_ip", limiter.limits.login_per_ip, ip)


CountSignup = Callable[[], Awaitable[None]]


async def signup_rate_limit(request: Request) -> CountSignup:
    """Per IP, counting every signup the service accepts and no rejected body (422), so a
    newcomer who fixes a typo is not locked out. A signup with a taken address counts like
    a new one: both answer the same 202, and the limit must not tell them apart (an
    oracle), nor let one IP mail an address's owner "someone tried" without bound. The
    request is refused up front when the IP has no signup left; the service calls the
    returned function once the body is valid, which counts the signup and, if another
    request of the IP took the last one meanwhile, raises 429 (nothing is written)."""
    limiter, ip = request_limiter(request), _ip(request)
    item = limiter.limits.signup_per_ip
    await limiter.check("signup_ip", item, ip, count=False)

    async def count_signup() -> None:
        await limiter.check("signup_ip", item, ip)

    return count_signup


async def upload_rate_limit(request: Request, principal: CurrentPrincipal) -> None:
    """Per user: evidence uploads are stored and scanned."""
    limiter = request_limiter(request)
    await limiter.check("uploads", limiter.limits.uploads_per_user, principal.user_id)
