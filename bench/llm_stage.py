"""The LLM stage of one assessment (score + roadmap through the provider chain), in-process,
in three situations (issue 3): the offline provider alone; the primary provider hanging with
its breaker closed (every call waits out the timeout and retries before falling back); the
primary down with its breaker open (calls fail fast, no network, straight to offline).
Breaker state lives in this run's Redis, as in production."""

from __future__ import annotations

import os
import statistics
import time

from rampart.assessments.questionnaire import QUESTIONNAIRE

TIMEOUT_S = 1.0
RETRY_BASE_S = 0.2


def _settings(chain: str, fake_url: str, threshold: int) -> dict[str, str]:
    return {
        "LLM_PROVIDERS": chain,
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "OPENAI_API_KEY": "bench-key",  # pragma: allowlist secret
        "LLM_TIMEOUT_SECONDS": str(TIMEOUT_S),
        "LLM_RETRY_BASE_SECONDS": str(RETRY_BASE_S),
        "LLM_BREAKER_FAILURE_THRESHOLD": str(threshold),
        "LLM_BREAKER_COOLDOWN_SECONDS": "3600",
    }


def _reset() -> None:
    from rampart.config import get_settings
    from rampart.llm.service import provider_chain

    get_settings.cache_clear()
    provider_chain.cache_clear()


def _stage_ms(samples: int) -> list[float]:
    from rampart.llm import service

    answers = {q.id: (i % 6) for i, q in enumerate(QUESTIONNAIRE.questions)}
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        scored = service.score(answers, None)
        service.roadmap(answers, scored.result, None)
        times.append((time.perf_counter() - t0) * 1000)
    return times


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


def _flush_breakers() -> None:
    import redis

    from rampart.config import get_settings

    client = redis.Redis.from_url(get_settings().require("redis_url"))
    for key in client.scan_iter("rampart:breaker:*"):
        client.delete(key)
    client.close()
