"""The Redis broker transport: kombu's, with two fixes so a broker outage or hang cannot stop
a worker. Only for `redis://` URLs: a `rediss://` URL keeps kombu's own transport, whose TLS
defaults depend on the scheme name. Remove this module once kombu no longer needs it.

1. A broker that hangs must not cost the worker its prefetch window (issue 18, item 1).

   kombu 5.7's Redis transport emulates acknowledgements. Its `QoS` keeps every message it
   handed to Celery in `_delivered` (delivery tag -> message); `can_consume()` says whether
   another may be fetched: `len(_delivered) - len(_dirty) < prefetch_count`, where `_dirty`
   holds the tags acked or rejected since. Before each event-loop tick the poller sends
   BRPOP only while `can_consume()` holds, and pauses a BRPOP already sent when it does not
   (`MultiChannelPoller.on_poll_start` / `_update_brpop_polling`).

   `QoS.ack(tag)` first removes the tag from Redis (ZREM `unacked_index` + HDEL `unacked`,
   one pipeline) and only then marks it done locally (`virtual.QoS.ack`: `_dirty.add`);
   `reject` the same. When Redis is frozen (SIGSTOP, a stalled host, a saturated network)
   the pipeline raises `redis.exceptions.TimeoutError` after `socket_timeout` (5 s), so the
   local step never runs. Celery acknowledges through `Message.ack_log_error`, which logs
   `Couldn't ack '<tag>', reason:network:TimeoutError` at critical and swallows the error:
   it is a connection error, but raised outside the consumer's `drain_events`, so Celery
   neither restarts the consumer nor closes the channel. The tag therefore stays in
   `_delivered` forever. Our prefetch is WORKER_CONCURRENCY x 1 (2 by default): two acks
   lost in one hang and `can_consume()` is false for the life of the process. The BRPOP
   connection is never asked for anything again; the event loop runs on (timers, the
   metrics server, `/ready` of the API all fine), the queue grows. A Redis that *crashes*
   does not do this: its refused or reset connections break the BRPOP read, Celery
   restarts the consumer, and the new channel gets a new, empty `QoS`.

   Here `ack` and `reject` give the slot back (`_dirty`) whether or not Redis answered, and
   still raise, so Celery still logs the lost ack. That is safe because the worker really
   is done with the message: the task finished (ack) or is given up (reject). What Redis
   holds is unchanged: if the pipeline reached Redis it runs when Redis wakes up (measured:
   after a SIGSTOP the acks sent into the frozen socket are applied on SIGCONT); if not,
   the message stays in `unacked` and a worker hands it out again after
   CELERY_VISIBILITY_TIMEOUT_SECONDS, where the job runner skips it as already done (or, for
   a reject with requeue, runs it). Nothing is lost; the worst case is one skipped
   redelivery an hour later. The fix is in the transport, so it does not depend on the pool
   (prefork or threads): whichever pool ran the task, Celery acks and rejects through the
   consumer's channel in the main process (via its event loop when it has one), and the
   slot is released with kombu's own thread-safe step (`_dirty.add`).

2. A broker connection that drops must not kill the worker (chaos suite, scenario 6).

   When the broker connection drops while a worker holds delivered but unacknowledged
   messages, Celery's consumer first `collect()`s the broken connection, which sets the
   transport's `client` to None, and then closes it. Closing the channel tries to hand the
   unacknowledged messages back, needs a new Redis client, and kombu builds its parameters
   from `transport.client`: `AttributeError: 'NoneType' object has no attribute
   'hostname'`, which Celery treats as unrecoverable, so the worker process exits (status 0)
   instead of reconnecting. Here a channel whose connection is already gone raises the
   Redis `ConnectionError` it would meet anyway. Celery ignores that, reconnects when Redis
   is back, and the unacknowledged messages stay in Redis until the visibility timeout
   hands them out again (tasks are idempotent).

Both are proven against real Redis: tests/integration/test_broker.py (the transport alone,
a frozen Redis) and tests/chaos/test_resilience.py (scenarios 6 and 10, real workers).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["QoS", "Transport", "broker_transport"]


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS whose ack and reject always free the prefetch slot (fix 1)."""

    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)
        finally:
            self._quick_ack(delivery_tag)  # `_dirty.add`: a set, so twice is harmless

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        finally:
            self._quick_ack(delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS

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
