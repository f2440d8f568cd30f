"""The LLM stage of assessments (score + roadmap through the provider chain), in-process.

`measure_llm_stage`, one assessment at a time in three situations (issue 3): the offline
provider alone; the primary provider hanging with its breaker closed (every call waits out
the timeout and retries before falling back); the primary down with its breaker open
(calls fail fast, no network, straight to offline).

`measure_llm_concurrency`, many at once (issue 10): N assessments' LLM stages on ONE event
loop (uvloop, as in a worker process) against a fake model taking `latency_s` per call,
served by another process (its threads and memory are not counted). It reports the most
calls the model saw in flight at once, throughput, and the memory each in-flight call
costs, divided by N: this process's RSS growth from idle to all N calls in flight on the
first burst (new connections included), and the Python allocations live at that moment
on a later burst (tracemalloc), against idle.

Breaker state lives in this run's Redis, as in production."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import psutil

from bench.load import new_event_loop
from bench.procs import Procs, wait_http
from rampart.questionnaire import QUESTIONNAIRE

T = TypeVar("T")
TIMEOUT_S = 1.0
RETRY_BASE_S = 0.2
ANSWERS = {q.id: (i % 6) for i, q in enumerate(QUESTIONNAIRE.questions)}


def _settings(chain: str, fake_url: str, threshold: int, timeout_s: float = TIMEOUT_S):
    return {
        "LLM_PROVIDERS": chain,
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "OPENAI_API_KEY": "bench-key",  # pragma: allowlist secret
        "LLM_TIMEOUT_SECONDS": str(timeout_s),
        "LLM_RETRY_BASE_SECONDS": str(RETRY_BASE_S),
        "LLM_BREAKER_FAILURE_THRESHOLD": str(threshold),
        "LLM_BREAKER_COOLDOWN_SECONDS": "3600",
    }


def _reset() -> None:
    from rampart.config import get_settings
    from rampart.llm.service import provider_chain

    get_settings.cache_clear()
    provider_chain.cache_clear()


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main()` on a fresh uvloop, closing its LLM connections before the loop ends."""
    from rampart.llm import service

    async def wrapped() -> T:
        try:
            return await main()
        finally:
            await service.aclose()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(wrapped())


async def _stage() -> None:
    from rampart.llm import service

    scored = await service.score(ANSWERS, None)
    await service.roadmap(ANSWERS, scored.result, None)


def _stage_ms(samples: int) -> list[float]:
    async def main() -> list[float]:
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            await _stage()
            times.append((time.perf_counter() - t0) * 1000)
        return times

    return _run(main)


def _summary(name: str, times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "situation": name,
        "samples": len(times),
        "median_ms": round(statistics.median(ordered), 2),
        "max_ms": round(ordered[-1], 2),
    }


def measure_llm_stage(samples: int = 20, hang_samples: int = 2) -> list[dict]:
    from rampart.llm.fake_server import FakeLLMServer

    saved = dict(os.environ)
    rows = []
    try:
        with FakeLLMServer() as fake:
            os.environ.update(_settings("offline", fake.url, 5))
            _reset()
            rows.append(_summary("offline provider alone", _stage_ms(samples)))

            fake.set_fault("hang")
            # A threshold the run never reaches: the breaker stays closed.
            os.environ.update(_settings("openai,offline", fake.url, 10_000))
            _reset()
            _flush_breakers()
            rows.append(_summary("primary hangs, breaker closed", _stage_ms(hang_samples)))

            os.environ.update(_settings("openai,offline", fake.url, 1))
            _reset()
            _flush_breakers()
            _stage_ms(1)  # one failure opens the breaker
            calls_before = fake.calls()
            rows.append(_summary("primary down, breaker open", _stage_ms(samples)))
            rows[-1]["calls_to_primary_while_open"] = fake.calls() - calls_before
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _reset()
    return rows


def measure_llm_concurrency(
    procs: Procs, *, assessments: int = 200, latency_s: float = 2.0, port: int
) -> dict:
    """`assessments` LLM stages at once on one loop; the fake model runs in a child process."""
    fake_url = f"http://127.0.0.1:{port}"
    fake = procs.start("fake-llm", ["-m", "rampart.cli", "fake-llm", "--port", str(port)])
    saved = dict(os.environ)
    try:
        wait_http(fake, f"{fake_url}/health")
        os.environ.update(_settings("openai,offline", fake_url, 10_000, timeout_s=60))
        _reset()
        _flush_breakers()
        control = httpx.Client(base_url=fake_url, timeout=10)
        control.post("/_faults", json={"mode": "latency", "latency": latency_s})

        async def burst(sample: Callable[[], dict], latency: float = latency_s) -> dict:
            control.post("/_reset")
            control.post("/_faults", json={"mode": "latency", "latency": latency})
            t0 = time.perf_counter()
            tasks = [asyncio.create_task(_stage()) for _ in range(assessments)]
            at_peak = await _when_all_in_flight(control, assessments, sample)
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - t0
            stats = control.get("/_stats").json()
            return {"elapsed_s": elapsed, "stats": stats, **at_peak}

        def rss() -> int:
            gc.collect()
            return psutil.Process().memory_info().rss

        async def main() -> dict:
            await _stage()  # first use: imports, prompt caches, one connection
            rss_idle = rss()
            cold = await burst(lambda: {"rss": psutil.Process().memory_info().rss})
            warm = await burst(dict)  # connections and Lua scripts in place
            gc.collect()
            tracemalloc.start()
            traced_idle = tracemalloc.get_traced_memory()[0]
            # Tracing slows every call down: a longer model latency keeps all N in flight.
            traced = await burst(
                lambda: {"traced": tracemalloc.get_traced_memory()[0]}, latency=5 * latency_s
            )
            tracemalloc.stop()
            return {
                "cold": cold,
                "warm": warm,
                # the first burst: RSS growth, new connections (HTTP and Redis) included
                "rss_per_call": (cold["rss"] - rss_idle) / assessments,
                # live Python allocations at the peak of a later burst, against idle
                "traced_per_call": (traced["traced"] - traced_idle) / assessments,
            }

        result = _run(main)
        warm = result["warm"]
        calls = warm["stats"]["total"]
        return {
            "assessments": assessments,
            "model_latency_s": latency_s,
            "calls": calls,
            "max_in_flight": warm["stats"]["max_in_flight"],
            "elapsed_s": round(warm["elapsed_s"], 2),
            "assessments_per_s": round(assessments / warm["elapsed_s"], 1),
            "cold_elapsed_s": round(result["cold"]["elapsed_s"], 2),
            "rss_kib_per_in_flight_call": round(result["rss_per_call"] / 1024, 1),
            "traced_kib_per_in_flight_call": round(result["traced_per_call"] / 1024, 1),
            "loop": "uvloop, one event loop, one process",
        }
    finally:
        procs.stop(fake)
        os.environ.clear()
        os.environ.update(saved)
        _reset()


async def _when_all_in_flight(
    control: httpx.Client, expected: int, sample: Callable[[], dict]
) -> dict:
    """Poll the fake model until `expected` calls are in flight, then take the sample (the
    poll is a blocking ~1 ms request every 50 ms: negligible next to the calls)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if control.get("/_stats").json()["in_flight"] >= expected:
            return sample()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"never saw {expected} calls in flight at the fake model")


def _flush_breakers() -> None:
    import redis

    from rampart.config import get_settings

    client = redis.Redis.from_url(get_settings().require("redis_url"))
    for key in client.scan_iter("rampart:breaker:*"):
        client.delete(key)
    client.close()
