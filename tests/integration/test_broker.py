"""The broker transport (rampart/kit/jobs/broker.py) against a real Redis that hangs.

A Redis of its own (started by the devstack code, like every embedded Redis), so freezing it
cannot disturb anything else. The consumer is kombu's, as Celery drives it, with a prefetch
of one: after one lost acknowledgement kombu's own Redis QoS would never fetch again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Message, Producer, Queue
from kombu.transport import redis as kombu_redis
from tests.support.chaos import frozen_redis
from tests.support.wait import wait_until

from rampart.devstack.ports import free_port
from rampart.devstack.redis import EmbeddedRedis
from rampart.kit.jobs.broker import Transport, broker_transport

pytestmark = pytest.mark.integration

SOCKET_TIMEOUT = 0.5  # how long each Redis command waits on the frozen server
QUEUE = Queue("hang-test", Exchange("hang-test", "direct"), routing_key="hang-test")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    redis_server = EmbeddedRedis(tmp_path / "redis", free_port(), fast=True)
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()


class Received:
    """A kombu consumer with prefetch 1 on its own connection, and what it got."""

    def __init__(self, url: str, transport: type, visibility_timeout: float = 3600) -> None:
        self.connection = Connection(
            url,
            transport=transport,
            transport_options={
                "socket_timeout": SOCKET_TIMEOUT,
                "socket_connect_timeout": SOCKET_TIMEOUT,
                "visibility_timeout": visibility_timeout,
            },
        )
        self.channel = self.connection.channel()
        self.channel.basic_qos(0, 1, False)
        self.messages: list[Message] = []
        self.consumer = Consumer(
            self.channel, queues=[QUEUE], callbacks=[self._got], accept=["json"]
        )
        self.consumer.consume()

    def _got(self, _body: object, message: Message) -> None:
        self.messages.append(message)

    def next(self, timeout: float = 5.0) -> Message:
        """Drain events until one more message arrives (fails after `timeout`)."""
        before = len(self.messages)
        deadline = time.monotonic() + timeout
        while len(self.messages) == before:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no message within {timeout:g}s"
            try:
                self.connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        return self.messages[-1]

    def close(self) -> None:
        self.connection.release()


def publish(url: str, *bodies: str) -> None:
    with Connection(url) as connection:
        producer = Producer(connection.channel())
        for body in bodies:
            producer.publish(
                body,
                serializer="json",
                exchange=QUEUE.exchange,
                routing_key="hang-test",
                declare=[QUEUE],
            )


def test_the_transport_is_ours_for_redis_urls_only():
    assert broker_transport("redis://127.0.0.1:6379/0") == "rampart.kit.jobs.broker:Transport"
    assert broker_transport("rediss://broker.example:6380/0") is None


def test_an_ack_that_times_out_in_a_frozen_redis_frees_the_slot_and_consuming_goes_on(
    server: EmbeddedRedis,
):
    """The issue's hang in miniature: Redis is frozen while a finished message is acked. The
    ack fails (and says so), but the prefetch slot comes back: once Redis answers again the
    next message is fetched. The ack itself reached Redis before the freeze's timeout and is
    applied when Redis wakes up, so nothing stays unacknowledged."""
    publish(server.url, "first", "second")
    consumer = Received(server.url, Transport)
    try:
        first = consumer.next()
        assert first.payload == "first"
        assert not consumer.channel.qos.can_consume()  # prefetch 1: the slot is taken

        with frozen_redis(server), pytest.raises(redis.exceptions.TimeoutError):
            first.ack()
        assert consumer.channel.qos.can_consume()

        second = consumer.next()
        assert second.payload == "second"
        second.ack()
        check = redis.Redis.from_url(server.url)
        wait_until(
            lambda: (check.llen("hang-test"), check.hlen("unacked")) == (0, 0),
            2,
            0.05,
            message=lambda: f"an empty broker (unacked: {check.hkeys('unacked')})",
        )
    finally:
        consumer.close()


def test_a_requeue_that_times_out_frees_the_slot_and_the_message_comes_back(
    server: EmbeddedRedis,
):
    """A reject with requeue (Celery's answer to a lost pool process) in a frozen Redis: the
    slot comes back at once; the message never reached the queue again, so it waits in
    `unacked` until its visibility timeout and is then handed out again: nothing is lost."""
    visibility = 2.0
    publish(server.url, "only")
    consumer = Received(server.url, Transport, visibility_timeout=visibility)
    try:
        message = consumer.next()
        with frozen_redis(server), pytest.raises(redis.exceptions.TimeoutError):
            message.reject(requeue=True)
        assert consumer.channel.qos.can_consume()
        check = redis.Redis.from_url(server.url)
        assert check.hlen("unacked") == 1  # the requeue never ran

        time.sleep(visibility + 0.5)  # the visibility timeout itself, not an assertion
        consumer.channel.qos.restore_visible(interval=1)
        again = consumer.next()
        assert again.payload == "only"
        again.ack()
        wait_until(lambda: check.hlen("unacked") == 0, 5, 0.05, message="the ack")
    finally:
        consumer.close()


def test_kombus_own_redis_transport_still_keeps_the_slot_of_a_failed_ack(
    server: EmbeddedRedis,
):
    """What broker.py works around, on kombu's own transport: after one ack lost in a hang
    the consumer (prefetch 1) may never fetch again. When this fails, kombu has fixed it:
    drop QoS from broker.py."""
    publish(server.url, "first", "second")
    consumer = Received(server.url, kombu_redis.Transport)
    try:
        first = consumer.next()
        with frozen_redis(server), pytest.raises(redis.exceptions.TimeoutError):
            first.ack()
        assert not consumer.channel.qos.can_consume()
        with pytest.raises(AssertionError, match="no message"):
            consumer.next(timeout=3)
    finally:
        consumer.close()


def test_a_sweeper_killed_mid_sweep_blocks_redelivery_for_seconds_not_minutes(
    server: EmbeddedRedis,
) -> None:
    """A worker killed while it restores old deliveries never releases kombu's sweep lock;
    with our transport options that lock lapses after 30 s (kombu's default: 300 s, during
    which no worker hands any stranded delivery out again)."""
    from rampart.kit.jobs.celery_app import transport_options

    connection = Connection(
        server.url,
        transport=broker_transport(server.url),
        transport_options=transport_options(visibility_timeout=3600),
    )
    try:
        channel = connection.channel()
        client = channel.client
        # What the killed sweeper left behind: the lock, taken as kombu's QoS takes it.
        with kombu_redis.Mutex(client, channel.unacked_mutex_key, channel.unacked_mutex_expire):
            left_for = client.ttl(channel.unacked_mutex_key)
            with (
                pytest.raises(kombu_redis.MutexHeld),
                kombu_redis.Mutex(client, channel.unacked_mutex_key, 30),
            ):
                pass
        assert 0 < left_for <= 30, f"the sweep lock of a dead worker would hold {left_for}s"
    finally:
        connection.release()
