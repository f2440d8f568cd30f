"""Read-only mode (seed 001 §7.3): an operator switch shared by every API process.

On when READ_ONLY=true or when the Redis flag is set (`rampart maintenance read-only on`).
Writes then get 503 `read_only` with Retry-After; reads, /health and /ready keep working and
workers keep draining. The flag is read at most once a second per process; if Redis cannot
be asked, the READ_ONLY setting alone decides (Redis down must not block writes that the
outbox would keep safe).
"""

from __future__ import annotations

import time

import redis
from starlette.types import ASGIApp, Receive, Scope, Send

from rampart.kit import redis_clients
from rampart.kit.http_errors import envelope
from rampart.kit.logging import get_logger
from rampart.kit.settings import redis_settings

log = get_logger(__name__)

FLAG_KEY = "rampart:maintenance:read_only"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_SECONDS = 60
_CACHE_SECONDS = 1.0


def set_read_only(on: bool) -> None:
    url = redis_settings().require("redis_url")
    client = redis_clients.sync_client(url, redis_clients.OPERATOR)
    try:
        if on:
            client.set(FLAG_KEY, "1")
        else:
            client.delete(FLAG_KEY)
    finally:
        client.close()


def read_only_flag() -> bool:
    url = redis_settings().require("redis_url")
    client = redis_clients.sync_client(url, redis_clients.OPERATOR)
    try:
        return bool(client.exists(FLAG_KEY))
    finally:
        client.close()


class ReadOnlyGate:
    """ASGI middleware: refuses writes while read-only mode is on."""

    def __init__(self, app: ASGIApp, exempt_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.exempt_paths = exempt_paths
        self._cached: tuple[float, bool] = (0.0, False)

    async def _is_read_only(self) -> bool:
        settings = redis_settings()
        if settings.read_only:
            return True
        checked_at, value = self._cached
        if time.monotonic() - checked_at < _CACHE_SECONDS:
            return value
        client = redis_clients.shared(settings.require("redis_url"), redis_clients.HOT_PATH)
        try:
            value = bool(await client.exists(FLAG_KEY))
        except (redis.RedisError, OSError) as exc:
            log.warning("read_only_flag_unavailable", error=str(exc)[:200])
            value = False
        self._cached = (time.monotonic(), value)
        return value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in WRITE_METHODS
            and scope["path"] not in self.exempt_paths
            and await self._is_read_only()
        ):
            response = envelope(
                503,
                "read_only",
                "The service is in read-only maintenance mode; retry later.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
