"""The one way to get a Redis client: `shared(url, profile)` (asyncio, one per event loop
and purpose) and `sync_client(url, profile)` (a CLI command, a scrape-time collector).

An asyncio client's connections belong to the loop that made them; the API has one loop
per process, a worker one, and the tests several (apps served in threads). Every client
has a named profile: a short timeout (connect, each command, and waiting for a pooled
connection) and one retry without backoff (a pooled connection gone stale after a Redis
restart). redis-py's default of backed-off retries would hold a request for seconds while
Redis is down. The rate limiter is the one exception: the `limits` library builds its own
client, with the HOT_PATH timeout (kit/security/ratelimit.py); Celery's broker connection
is kombu's (kit/jobs/broker.py).

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
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

MAX_CONNECTIONS = 256  # per loop and purpose: above a worker loop's ~200 calls in flight


@dataclass(frozen=True)
class Profile:
    """How long a Redis command may take (connect, each command, waiting for a pooled
    connection), and how many immediate retries a connection error gets."""

    timeout: float
    retries: int = 1


# Checked on every request (the read-only flag, rate limits): a sick Redis costs little.
HOT_PATH = Profile(timeout=0.3)
# One step of a request or a job: sessions, webhook nonces, circuit-breaker state.
REQUEST = Profile(timeout=0.5)
# What a Prometheus scrape reads (the relay's queue length).
SCRAPE = Profile(timeout=1.0)
# A readiness probe, an operator's command: worth waiting a little longer for an answer.
PROBE = Profile(timeout=2.0)
OPERATOR = Profile(timeout=2.0)

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, Profile], aioredis.Redis]
]
_clients = weakref.WeakKeyDictionary()


def shared(url: str, profile: Profile) -> aioredis.Redis:
    """The running loop's client for `url` with `profile`."""
    for loop in [loop for loop in list(_clients) if loop.is_closed()]:
        # Its connections refer to their loop, so the entry would outlive it: drop it.
        _clients.pop(loop, None)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get((url, profile))
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=profile.timeout,  # waiting for a free connection
            socket_timeout=profile.timeout,
            socket_connect_timeout=profile.timeout,
            retry=AsyncRetry(NoBackoff(), profile.retries),
        )
        client = per_loop[(url, profile)] = aioredis.Redis.from_pool(pool)
    return client


def sync_client(url: str, profile: Profile) -> redis.Redis:
    """A blocking client of its own for `url` with `profile` (the caller closes it)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=profile.timeout,
        socket_connect_timeout=profile.timeout,
        retry=Retry(NoBackoff(), profile.retries),
    )


async def aclose_clients() -> None:
    """Close the running loop's clients (before the loop ends: shutdown, a test's teardown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()
