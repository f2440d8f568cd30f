"""The Celery ceiling: how fast bare Celery runs no-op tasks (bench/noop_celery.py: Rampart's
Celery settings, the same Redis broker) with a given pool. Measured with the pool and
concurrency of Rampart's worker (threads), and with prefork for reference."""

from __future__ import annotations

import time

import redis

from bench.load import CpuWatch
from bench.procs import Procs


def _wait_counter(client: redis.Redis, key: str, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = int(client.get(key) or 0)
        now = time.monotonic()
        if value >= target:
            return now
        if now > deadline:
            raise RuntimeError(f"noop tasks: only {value}/{target} done after {timeout:.0f}s")
        time.sleep(0.005)


def measure_noop(
    procs: Procs,
    *,
    watch: dict[str, list[int]],
    redis_url: str,
    count: int,
    pool: str,
    concurrency: int,
) -> dict:
    from bench import noop_celery  # needs REDIS_URL and Rampart's settings in os.environ

    worker = procs.start(
        f"noop-worker-{pool}",
        [
            "-m", "celery", "-A", "bench.noop_celery", "worker",
            "--pool", pool, "--concurrency", str(concurrency), "-Q", noop_celery.QUEUE,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ],
    )
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(noop_celery.COUNTER_KEY)
        for _ in range(20):  # warm-up: worker booted, broker connections open
            noop_celery.app.send_task(noop_celery.TASK, retry=False)
        _wait_counter(client, noop_celery.COUNTER_KEY, 20, timeout=90)
        client.delete(noop_celery.COUNTER_KEY)

        cpu_watch = CpuWatch({**watch, "worker": [worker.pid]})
        started = time.monotonic()
        for _ in range(count):
            noop_celery.app.send_task(noop_celery.TASK, retry=False)
        sent = time.monotonic()
        done = _wait_counter(client, noop_celery.COUNTER_KEY, count, timeout=300)
        cpu = cpu_watch.stop()
        if not worker.alive():
            raise RuntimeError(f"noop worker died:\n{worker.tail()}")
    finally:
        procs.stop(worker)
        client.close()
    elapsed = done - started
    return {
        "tasks": count,
        "pool": pool,
        "worker_concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "sending_s": round(sent - started, 3),
        "tasks_per_s": round(count / elapsed, 1),
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
    }
