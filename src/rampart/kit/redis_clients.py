"""Shared asyncio Redis clients, one per event loop and purpose (URL + timeout).

An asyncio client's connections belong to the loop that made them; the API has one loop
per process, a worker one, and the tests several (apps served in threads). Short timeouts
and one retry without backoff (a pooled connection gone stale after a Redis restart):
redis-py's default of backed-off retries would hold a request for seconds while Redis is
down.

Each client's pool holds up to ``MAX_CONNECTIONS`` connections (opened as needed) and
*blocks* (up to the timeout) for a free one beyond that. redis-py's default asyncio pool
raises ``MaxConnectionsError`` at once past 100 connections in use, so a loop running more
than 100 commands at once (a worker holding 200 LLM calls, each asking its circuit
breaker) saw Redis errors from a healthy Redis. Waiting is no cure either when the burst
outgrows the pool: the loop is then busy with the burst, and waiters time out (measured:
of 200 simultaneous LLM calls, 120 breaker steps failed open with a pool of 100, none with
200). Hence a pool above the commands one loop runs at once.
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

MAX_CONNECTIONS = 256  # per loop and purpose: above a worker loop's ~200 calls in flight

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, float], aioredis.Redis]
]
_clients = weakref.WeakKeyDictionary()


def shared(url: str, *, timeout: float) -> aioredis.Redis:
    """The running loop's client for `url` with `timeout` (connect and each command)."""
    for loop in [loop for loop in list(_clients) if loop.is_closed()]:
        # Its connections refer to their loop, so the entry would outlive it: drop it.
        _clients.pop(loop, None)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get((url, timeout))
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,  # waiting for a free connection
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        client = per_loop[(url, timeout)] = aioredis.Redis.from_pool(pool)
    return client


async def aclose_clients() -> None:
    """Close the running loop's clients (before the loop ends: shutdown, a test's teardown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()
