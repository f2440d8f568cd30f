"""The Celery ceiling: how fast bare Celery runs no-op tasks (bench/noop_celery.py: Rampart's
Celery settings, the same Redis broker) with a given pool: the pool and concurrency of
Rampart's worker (threads), and prefork for reference."""

from __future__ import annotations

import time

import redis

from bench.load import CpuWatch
from bench.procs import Procs


def _wait_counter(client: redis.Redis, key: str, target: int, timeout: float, worker) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = int(client.get(key) or 0)
        now = time.monotonic()
        if value >= target:
            return now
        if not worker.alive():
            raise RuntimeError(f"noop worker died:\n{worker.tail()}")
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
    """Drain a backlog: `warm` + `count` tasks are queued first, then the worker starts;
    the clock runs from the `warm`-th task done to the last (so neither the worker's boot
    nor this process's sending is timed: it sends slower than a threads pool runs)."""
    from bench import noop_celery  # needs REDIS_URL and Rampart's settings in os.environ

    warm = max(50, 2 * concurrency)
    client = redis.Redis.from_url(redis_url)
    client.delete(noop_celery.COUNTER_KEY)
    with noop_celery.app.producer_or_acquire() as producer:
        for _ in range(warm + count):
            noop_celery.app.send_task(noop_celery.TASK, retry=False, producer=producer)
    worker = procs.start(
        f"noop-worker-{pool}",
        [
            "-m", "celery", "-A", "bench.noop_celery", "worker",
            "--pool", pool, "--concurrency", str(concurrency), "-Q", noop_celery.QUEUE,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ],
    )
    try:
        started = _wait_counter(client, noop_celery.COUNTER_KEY, warm, 90, worker)
        cpu_watch = CpuWatch({**watch, "worker": [worker.pid]})
        done = _wait_counter(client, noop_celery.COUNTER_KEY, warm + count, 300, worker)
        cpu = cpu_watch.stop()
    finally:
        procs.stop(worker)
        client.delete(noop_celery.QUEUE)  # what is left if it failed
        client.close()
    elapsed = done - started
    return {
        "tasks": count,
        "warm_up_tasks": warm,
        "pool": pool,
        "worker_concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(count / elapsed, 1),
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
    }
