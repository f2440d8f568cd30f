"""The provider chain: try each configured provider in order; the offline one never fails.

The result records who produced it and whether it is degraded (not the first choice).
Timeouts, retries and circuit breakers per provider plug in here (see docs/resilience.md
when the real providers land); the callers only see `Generated`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

from rampart.config import get_settings
from rampart.kit.logging import get_logger
from rampart.llm.base import LLMError, LLMProvider
from rampart.llm.offline import OfflineProvider
from rampart.llm.schemas import RoadmapResult, ScoreResult

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Generated(Generic[T]):
    result: T
    provider: str
    model: str
    degraded: bool
    duration_ms: int


def _build(name: str) -> LLMProvider:
    if name == "offline":
        return OfflineProvider(latency_seconds=get_settings().llm_offline_latency_seconds)
    raise ValueError(f"LLM_PROVIDERS: unknown provider {name!r} (known: offline)")


@lru_cache
def provider_chain() -> tuple[LLMProvider, ...]:
    names = get_settings().provider_chain or ["offline"]
    if names[-1] != "offline":
        names.append("offline")  # the chain always ends in the provider that cannot fail
    return tuple(_build(name) for name in names)


def _first_success(call: Callable[[LLMProvider], T]) -> Generated[T]:
    chain = provider_chain()
    for position, provider in enumerate(chain):
        t0 = time.perf_counter()
        try:
            result = call(provider)
        except LLMError as exc:
            log.warning("llm_provider_failed", provider=provider.name, error=str(exc))
            continue
        return Generated(
            result=result,
            provider=provider.name,
            model=provider.model,
            degraded=position > 0,
            duration_ms=round((time.perf_counter() - t0) * 1000),
        )
    raise RuntimeError("no LLM provider answered")  # unreachable: offline never fails


def score(answers: dict[str, int], context: str | None) -> Generated[ScoreResult]:
    return _first_success(lambda provider: provider.score(answers, context))


def roadmap(
    answers: dict[str, int], scored: ScoreResult, context: str | None
) -> Generated[RoadmapResult]:
    return _first_success(lambda provider: provider.roadmap(answers, scored, context))
