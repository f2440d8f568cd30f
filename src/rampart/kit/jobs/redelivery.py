"""Hand the deliveries of a dead worker back to the queue now, not after the visibility
timeout.

kombu's Redis transport keeps each message a worker took but has not acknowledged in the
hash `unacked` (delivery tag → message) with its delivery time in the sorted set
`unacked_index`. Only when a delivery is older than the visibility timeout
(CELERY_VISIBILITY_TIMEOUT_SECONDS, 1 h: it must outlast the longest task) does kombu put it
back in the queue. So a task whose worker was SIGKILLed, OOM-killed or lost with its host
waits up to an hour, its job `processing` (the relay reports the wait as
`rampart_jobs_processing_oldest_age_seconds`).

`release_unacked()` puts every unacknowledged delivery back at once, with kombu's own
`QoS.restore_by_tag` (one Redis transaction per message, under kombu's `unacked_mutex`, the
lock its own restorer takes), and returns how many. It is only right when **no worker that
consumes from this broker is alive**: a live worker's running task would be delivered a
second time (tasks are idempotent, so no second score is written, but it can cost a second
LLM call). `rampart up` calls it for its own embedded Redis, which no other worker can reach
(password), before its worker starts and before it restarts a crashed one.
"""

from __future__ import annotations

from kombu import Connection
from kombu.transport.redis import Mutex, MutexHeld


class BrokerBusy(RuntimeError):
    """kombu's own restorer holds the unacked lock: try again in a moment."""


def release_unacked(broker_url: str) -> int:
    """Put every unacknowledged delivery back in its queue; return how many."""
    with Connection(broker_url, connect_timeout=5) as connection:
        channel = connection.default_channel
        client = channel.client
        try:
            with Mutex(client, channel.unacked_mutex_key, channel.unacked_mutex_expire):
                tags = client.hkeys(channel.unacked_key)
                for tag in tags:
                    channel.qos.restore_by_tag(tag, client)
        except MutexHeld:
            raise BrokerBusy("another process is restoring unacked messages") from None
    return len(tags)
