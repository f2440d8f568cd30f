"""The pipeline against a slow LLM: one worker process, the fake OpenAI-compatible server
(`rampart fake-llm`, rampart/llm/fake_server.py) answering every call after a fixed
latency, so throughput is bound by how many LLM calls one worker holds in flight.

Chain `openai,offline`; the fake answers what the offline provider would, so results are
valid. Warm-up with the fake answering at once, then the latency is set and the counters
reset. Memory per in-flight call = (the worker's peak RSS during the run − its RSS after
the warm-up) ÷ the most calls the fake server saw in flight at once.
"""

from __future__ import annotations

import contextlib
import time

import httpx
import psutil
import psycopg

from bench.accounts import Account
from bench.load import CpuWatch
from bench.pipeline import end_to_end_ms, job_latency, post_many, relay_and_worker, wait_completed
from bench.procs import Procs, wait_http


def _rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            total += proc.memory_info().rss
    return total


def max_in_flight(stats: dict) -> int | None:
    """The fake server's high-water mark of concurrent LLM calls (llm-async's fake server)."""
    for key in ("max_in_flight", "max_concurrency", "peak_in_flight"):
        if isinstance(stats.get(key), int):
            return stats[key]
    return None


def measure_llm_pipeline(
    procs: Procs,
    *,
    watch: dict[str, list[int]],
    base_url: str,
    admin_url: str,
    account: Account,
    body: bytes,
    count: int,
    concurrency: int,
    latency_s: float,
    fake_port: int,
) -> dict:
    fake = procs.start("fake-llm", ["-m", "rampart.cli", "fake-llm", "--port", str(fake_port)])
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = {
        "LLM_PROVIDERS": "openai,offline",
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "OPENAI_API_KEY": "bench-key",  # pragma: allowlist secret
        "WORKER_CONCURRENCY": str(concurrency),
    }
    try:
        wait_http(fake, f"{fake_url}/health")
        with (
            relay_and_worker(procs, concurrency, "llm-worker", env) as (relay, worker),
            psycopg.connect(admin_url, autocommit=True) as conn,
            httpx.Client(base_url=fake_url, timeout=10) as control,
        ):
            running = [fake, relay, worker]
            warm = post_many(base_url, account, body, 8)
            wait_completed(conn, warm, 90, running)
            control.post("/_reset").raise_for_status()
            control.post("/_faults", json={"mode": "latency", "latency": latency_s})
            idle_rss = _rss(worker.pid)
            peak_rss = idle_rss

            def sample() -> None:
                nonlocal peak_rss
                peak_rss = max(peak_rss, _rss(worker.pid))

            cpu_watch = CpuWatch(
                {**watch, "relay": [relay.pid], "worker": [worker.pid], "fake-llm": [fake.pid]}
            )
            started = time.monotonic()
            ids = post_many(base_url, account, body, count)
            posted = time.monotonic()
            done, failed = wait_completed(conn, ids, 120, running, on_poll=sample)
            cpu = cpu_watch.stop()
            stats = control.get("/_stats").json()
            degraded = conn.execute(
                "SELECT count(*) FILTER (WHERE degraded) FROM assessments"
                " WHERE id = ANY(%s::uuid[])",
                [ids],
            ).fetchone()[0]
            latency = job_latency(conn, ids)
            e2e = end_to_end_ms(conn, ids)
    finally:
        procs.stop(fake)
    elapsed = done - started
    in_flight = max_in_flight(stats)
    grown = max(0, peak_rss - idle_rss)
    return {
        "assessments": count,
        "worker": f"one rampart worker: Celery threads pool, concurrency {concurrency}",
        "worker_concurrency": concurrency,
        "llm_latency_s": latency_s,
        "elapsed_s": round(elapsed, 3),
        "posting_s": round(posted - started, 3),
        "failed": failed,
        "degraded": degraded,
        "assessments_per_s": round(count / elapsed, 1),
        "llm_calls": stats.get("total"),
        "max_llm_calls_in_flight": in_flight,
        "worker_rss_idle_mb": round(idle_rss / 2**20, 1),
        "worker_rss_peak_mb": round(peak_rss / 2**20, 1),
        "kb_per_call_in_flight": round(grown / 1024 / in_flight, 1) if in_flight else None,
        "end_to_end_ms": e2e,
        "job_latency": latency,
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
    }
