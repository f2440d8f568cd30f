"""The provider chain: try each configured provider in order; the offline one never fails.

``LLM_PROVIDERS`` orders the chain (e.g. ``openai,anthropic,offline``); it always ends in
the offline provider. Each real provider call goes

    circuit breaker (shared in Redis)  ->  retry policy (transient only)  ->  provider (HTTP)

- breaker open (or another process running the half-open trial): fail fast, next provider;
- transient error (timeout, connection, 429, 5xx): retried with backoff and jitter up to
  ``LLM_RETRY_ATTEMPTS`` tries, then next provider;
- definitive error (other 4xx, non-JSON or schema-invalid answer): next provider at once.

One failed call (after its retries) counts once toward the breaker, whatever the class: a
provider that keeps answering 401 or garbage is as useless as one that is down, and the
breaker stops paying for it. The result records who made it (``provider``, ``model``) and
``degraded=True`` when that is not the first provider in the chain. The callers only see
``Generated``.

Metrics (per provider): ``rampart_llm_requests_total{outcome}`` for each try (success,
error, timeout) and each refusal by the breaker (circuit_open), the duration of each try,
``rampart_llm_retries_total`` and ``rampart_circuit_breaker_state`` (0/1/2); per call of
``score``/``roadmap``, the whole chain's time by the provider that answered
(``rampart_assessment_score_duration_seconds``, ``rampart_roadmap_duration_seconds``).
Each try is an ``llm.call`` OpenTelemetry span.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

import redis
from prometheus_client import Histogram

from rampart.config import Settings, get_settings
from rampart.kit import metrics, tracing
from rampart.kit.logging import get_logger
from rampart.kit.resilience import BreakerState, CircuitBreaker, CircuitOpenError, RetryPolicy
from rampart.llm.base import DefinitiveLLMError, LLMError, LLMProvider, TransientLLMError
from rampart.llm.http import LLMTimeoutError
from rampart.llm.offline import OfflineProvider
from rampart.llm.schemas import RoadmapResult, ScoreResult

log = get_logger(__name__)
T = TypeVar("T")

_REDIS_TIMEOUT_SECONDS = 0.5  # a slow Redis must not slow every LLM call down


@dataclass(frozen=True)
class Generated(Generic[T]):
    result: T
    provider: str
    model: str
    degraded: bool
    duration_ms: int


class ProviderUnavailableError(LLMError):
    """The provider's circuit breaker refused the call (no request was made)."""


class GuardedProvider:
    """A real provider behind its circuit breaker and retry policy; an ``LLMProvider`` too."""

    def __init__(self, provider: LLMProvider, breaker: CircuitBreaker, retry: RetryPolicy):
        self.provider = provider
        self.name = provider.name
        self.model = provider.model
        self.breaker = breaker
        self.retry = retry

    def score(self, answers: dict[str, int], context: str | None) -> ScoreResult:
        return self._guarded(lambda: self.provider.score(answers, context))

    def roadmap(
        self, answers: dict[str, int], score: ScoreResult, context: str | None
    ) -> RoadmapResult:
        return self._guarded(lambda: self.provider.roadmap(answers, score, context))

    def _guarded(self, call: Callable[[], T]) -> T:
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as exc:
            metrics.LLM_REQUESTS.labels(self.name, "circuit_open").inc()
            _set_state_gauge(self.name, exc.state)
            raise ProviderUnavailableError(str(exc)) from None
        _set_state_gauge(self.name, permit.state)
        try:
            result = self.retry.call(self._measured, call)
        except LLMError:
            _set_state_gauge(self.name, self.breaker.record_failure(permit))
            raise
        except BaseException:
            self.breaker.release(permit)  # not the provider's fault: no verdict
            raise
        _set_state_gauge(self.name, self.breaker.record_success(permit))
        return result

    def _measured(self, call: Callable[[], T]) -> T:
        """One try, counted and timed."""
        t0 = time.perf_counter()
        outcome = "error"
        try:
            with _llm_call_span(self.name, self.model):
                result = call()
            outcome = "success"
            return result
        except LLMTimeoutError:
            outcome = "timeout"
            raise
        except LLMError:
            raise
        except Exception as exc:
            # A bug in a provider must not stop the chain from falling back: log it with
            # its traceback (no local variables) and treat it as a definitive failure.
            log.exception("llm_provider_unexpected_error", provider=self.name)
            raise DefinitiveLLMError(
                f"{self.name}: unexpected {type(exc).__name__} (see the logged traceback)"
            ) from exc
        finally:
            metrics.LLM_REQUESTS.labels(self.name, outcome).inc()
            metrics.LLM_DURATION.labels(self.name).observe(time.perf_counter() - t0)


@contextmanager
def _llm_call_span(provider: str, model: str) -> Iterator[None]:
    """One `llm.call` span per try (kit/tracing.py), with provider, model and outcome."""
    with tracing.span(
        "llm.call",
        kind=tracing.SpanKind.CLIENT,
        attributes={"gen_ai.system": provider, "gen_ai.request.model": model},
    ) as current:
        try:
            yield
        except LLMTimeoutError:
            current.set_attribute("rampart.llm.outcome", "timeout")
            raise
        except BaseException:
            current.set_attribute("rampart.llm.outcome", "error")
            raise
        current.set_attribute("rampart.llm.outcome", "success")


def _set_state_gauge(provider: str, state: BreakerState) -> None:
    metrics.CIRCUIT_BREAKER_STATE.labels(provider).set(state.level)


def _on_retry(provider: str) -> Callable[[BaseException, int, float], None]:
    def record(exc: BaseException, attempt: int, wait: float) -> None:
        metrics.LLM_RETRIES.labels(provider).inc()
        log.info(
            "llm_provider_retry",
            provider=provider,
            attempt=attempt,
            wait_seconds=round(wait, 3),
            error_class=type(exc).__name__,
            error=str(exc),
        )

    return record


def _redis_client(settings: Settings) -> redis.Redis | None:
    if settings.redis_url is None:
        return None
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


def _build(name: str, settings: Settings, client: redis.Redis | None) -> LLMProvider:
    if name == "offline":
        return OfflineProvider(latency_seconds=settings.llm_offline_latency_seconds)
    provider: LLMProvider
    if name == "openai":
        from rampart.llm.openai_compat import OpenAICompatProvider

        key = settings.openai_api_key
        provider = OpenAICompatProvider(
            base_url=settings.openai_base_url,
            api_key=key.get_secret_value() if key else None,
            model=settings.openai_model,
            timeout=settings.llm_timeout_seconds,
        )
    elif name == "anthropic":
        from rampart.llm.anthropic import AnthropicProvider

        key = settings.anthropic_api_key
        provider = AnthropicProvider(
            base_url=settings.anthropic_base_url,
            api_key=key.get_secret_value() if key else None,
            model=settings.anthropic_model,
            timeout=settings.llm_timeout_seconds,
        )
    else:
        raise ValueError(f"LLM_PROVIDERS: unknown provider {name!r}")
    retry = RetryPolicy(
        transient=(TransientLLMError,),
        attempts=settings.llm_retry_attempts,
        base_seconds=settings.llm_retry_base_seconds,
        max_seconds=settings.llm_retry_max_seconds,
        on_retry=_on_retry(name),
    )
    # The half-open trial lock outlives the longest guarded call (all tries and waits), so
    # a trial is only taken over when its process died.
    worst_call = (
        settings.llm_retry_attempts * settings.llm_timeout_seconds
        + (settings.llm_retry_attempts - 1) * settings.llm_retry_max_seconds
    )
    breaker = CircuitBreaker(
        f"llm.{name}",
        client,
        failure_threshold=settings.llm_breaker_failure_threshold,
        cooldown_seconds=settings.llm_breaker_cooldown_seconds,
        trial_ttl_seconds=worst_call + 5,
        failure_exceptions=(LLMError,),
    )
    return GuardedProvider(provider, breaker, retry)


@lru_cache
def provider_chain() -> tuple[LLMProvider, ...]:
    settings = get_settings()
    names = list(settings.provider_chain or ["offline"])
    if names[-1] != "offline":
        names.append("offline")  # the chain always ends in the provider that cannot fail
    client = _redis_client(settings) if names != ["offline"] else None
    return tuple(_build(name, settings, client) for name in names)


def _first_success(call: Callable[[LLMProvider], T], duration: Histogram) -> Generated[T]:
    """The first provider's answer down the chain; the whole chain's time is observed in
    `duration`, labelled by the provider that answered."""
    started = time.perf_counter()
    chain = provider_chain()
    for position, provider in enumerate(chain):
        t0 = time.perf_counter()
        try:
            if isinstance(provider, GuardedProvider):
                result = call(provider)
            else:  # the offline provider: measured here, it has no breaker or retries
                result = _measured_plain(provider, call)
        except LLMError as exc:
            log.warning(
                "llm_provider_failed",
                provider=provider.name,
                error_class=type(exc).__name__,
                error=str(exc),
                next_provider=chain[position + 1].name if position + 1 < len(chain) else None,
            )
            continue
        duration.labels(provider.name).observe(time.perf_counter() - started)
        return Generated(
            result=result,
            provider=provider.name,
            model=provider.model,
            degraded=position > 0,
            duration_ms=round((time.perf_counter() - t0) * 1000),
        )
    raise RuntimeError("no LLM provider answered")  # unreachable: offline never fails


def _measured_plain(provider: LLMProvider, call: Callable[[LLMProvider], T]) -> T:
    t0 = time.perf_counter()
    outcome = "error"
    try:
        with _llm_call_span(provider.name, provider.model):
            result = call(provider)
        outcome = "success"
        return result
    finally:
        metrics.LLM_REQUESTS.labels(provider.name, outcome).inc()
        metrics.LLM_DURATION.labels(provider.name).observe(time.perf_counter() - t0)


def score(answers: dict[str, int], context: str | None) -> Generated[ScoreResult]:
    return _first_success(lambda provider: provider.score(answers, context), metrics.SCORE_DURATION)


def roadmap(
    answers: dict[str, int], scored: ScoreResult, context: str | None
) -> Generated[RoadmapResult]:
    return _first_success(
        lambda provider: provider.roadmap(answers, scored, context), metrics.ROADMAP_DURATION
    )
