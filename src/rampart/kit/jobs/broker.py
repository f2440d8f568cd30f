"""The Redis broker transport: kombu's, with one fix so a broker outage cannot kill a worker.

kombu 5.7 / Celery 5.7: when the broker connection drops while a worker holds delivered but
unacknowledged messages (a task running, or one prefetched: any worker with concurrency > 1
under load), Celery's consumer first `collect()`s the broken connection, which sets the
transport's `client` to None, and then closes it. Closing the channel tries to hand the
unacknowledged messages back, needs a new Redis client, and kombu builds its parameters from
`transport.client`: `AttributeError: 'NoneType' object has no attribute 'hostname'`, which
Celery treats as unrecoverable, so the worker process exits (status 0) instead of
reconnecting. Found by the chaos suite (tests/chaos, scenario 6).

Here a channel whose connection is already gone raises the Redis `ConnectionError` it would
meet anyway. Celery ignores that, reconnects when Redis is back, and the unacknowledged
messages stay in Redis until the visibility timeout hands them out again (tasks are
idempotent). Only for `redis://` URLs: a `rediss://` URL keeps kombu's own transport, whose
TLS defaults depend on the scheme name. Remove this module once kombu no longer needs it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["Transport", "broker_transport"]


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # collected: this connection is closed for good
            raise RedisConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def broker_transport(broker_url: str) -> str | None:
    """The transport for Celery's `broker_transport` setting (None: from the URL's scheme)."""
    if urlsplit(broker_url).scheme == "redis":
        return f"{__name__}:Transport"
    return None
