"""Shared asyncio Redis clients, one per event loop and purpose (URL + timeout).

An asyncio client's connections belong to the loop that made them; the API has one loop
per process, a worker one, and the tests several (apps served in threads). Short timeouts
and one retry without backoff (a pooled connection gone stale after a Redis restart):
redis-py's default of backed-off retries would hold a request for seconds while Redis is
down.
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, float], aioredis.Redis]
]
_clients = weakref.WeakKeyDictionary()


def shared(url: str, *, timeout: float) -> aioredis.Redis:
    """The running loop's client for `url` with `timeout` (connect and each command)."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get((url, timeout))
    if client is None:
        client = per_loop[(url, timeout)] = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
    return client
