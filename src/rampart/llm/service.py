"""The provider chain: try each configured provider in order; the offline one never fails.

``score`` and ``roadmap`` are coroutines, async end to end (breaker in Redis through
``redis.asyncio``, retry waits with ``asyncio.sleep``, HTTP through ``httpx.AsyncClient``):
a call waiting for its model holds no thread, so one event loop keeps hundreds of calls in
flight. Nothing in the chain is bound to a loop: the Redis and HTTP clients are looked up
for the running loop on each use (``kit.redis_clients.shared``, ``http.shared_client``), so
``provider_chain()`` may be built once and used from any loop. ``aclose()`` closes the
running loop's HTTP connections before the loop ends.

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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from prometheus_client import Histogram

from rampart.config import Settings, get_settings
from rampart.kit import redis_clients, tracing
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import CIRCUIT_BREAKER_STATE
from rampart.kit.resilience import BreakerState, CircuitBreaker, CircuitOpenError, RetryPolicy
from rampart.llm import metrics
from rampart.llm.base import DefinitiveLLMError, LLMError, LLMProvider, TransientLLMError
from rampart.llm.http import HTTPProvider, LLMTimeoutError, aclose_clients
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

    async def score(self, answers: dict[str, int], context: str | None) -> ScoreResult:
        return await self._guarded(lambda: self.provider.score(answers, context))

    async def roadmap(
        self, answers: dict[str, int], score: ScoreResult, context: str | None
    ) -> RoadmapResult:
        return await self._guarded(lambda: self.provider.roadmap(answers, score, context))

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """`CircuitBreaker.call` around the retried, measured tries: an `LLMError` after the
        retries counts as one failure; anything else (e.g. the task was cancelled) gives a
        trial back with no verdict. The breaker reports each state it sees to the gauge."""
        try:
            return await self.breaker.call(self.retry.call, _measured, self, call)
        except CircuitOpenError as exc:
            metrics.LLM_REQUESTS.labels(self.name, "circuit_open").inc()
            raise ProviderUnavailableError(str(exc)) from None


async def _measured(provider: LLMProvider, call: Callable[[], Awaitable[T]]) -> T:
    """One try of `provider`, counted and timed (every provider, guarded or offline)."""
    t0 = time.perf_counter()
    outcome = "error"
    try:
        with _llm_call_span(provider.name, provider.model):
            result = await call()
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
        log.exception("llm_provider_unexpected_error", provider=provider.name)
        raise DefinitiveLLMError(
            f"{provider.name}: unexpected {type(exc).__name__} (see the logged traceback)"
        ) from exc
    finally:
        metrics.LLM_REQUESTS.labels(provider.name, outcome).inc()
        metrics.LLM_DURATION.labels(provider.name).observe(time.perf_counter() - t0)


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


def _state_gauge(provider: str) -> Callable[[BreakerState], None]:
    def record(state: BreakerState) -> None:
        CIRCUIT_BREAKER_STATE.labels(provider).set(state.level)

    return record


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


def _redis_client(settings: Settings) -> Callable[[], aioredis.Redis] | None:
    """What returns the running loop's Redis client for the breakers (None: no Redis)."""
    if settings.redis_url is None:
        return None
    # The REQUEST profile: a slow Redis must not slow every LLM call down.
    return partial(
        redis_clients.shared, settings.redis_url.get_secret_value(), redis_clients.REQUEST
    )


def _build(
    name: str, settings: Settings, redis_client: Callable[[], aioredis.Redis] | None
) -> LLMProvider:
    if name == "offline":
        return OfflineProvider(latency_seconds=settings.llm_offline_latency_seconds)
    provider_class: type[HTTPProvider]
    if name == "openai":
        from rampart.llm.openai_compat import OpenAICompatProvider as provider_class

        base_url, key, model = (
            settings.openai_base_url,
            settings.openai_api_key,
            settings.openai_model,
        )
    elif name == "anthropic":
        from rampart.llm.anthropic import AnthropicProvider as provider_class

        base_url, key, model = (
            settings.anthropic_base_url,
            settings.anthropic_api_key,
            settings.anthropic_model,
        )
    else:
        raise ValueError(f"LLM_PROVIDERS: unknown provider {name!r}")
    provider = provider_class(
        base_url=base_url,
        api_key=key.get_secret_value() if key else None,
        model=model,
        timeout=settings.llm_timeout_seconds,
        max_connections=settings.llm_max_connections,
    )
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
        redis_client,
        failure_threshold=settings.llm_breaker_failure_threshold,
        cooldown_seconds=settings.llm_breaker_cooldown_seconds,
        trial_ttl_seconds=worst_call + 5,
        failure_exceptions=(LLMError,),
        on_state=_state_gauge(name),
    )
    return GuardedProvider(provider, breaker, retry)


def build_chain(settings: Settings, *, shared_breakers: bool = True) -> tuple[LLMProvider, ...]:
    """The chain `settings` describe. `shared_breakers=False`: its breakers keep no state
    in Redis (a probe, e.g. `rampart readiness` proving the fallback with the primary down,
    must not open the breakers the workers share)."""
    names = list(settings.provider_chain or ["offline"])
    if names[-1] != "offline":
        names.append("offline")  # the chain always ends in the provider that cannot fail
    use_redis = shared_breakers and names != ["offline"]
    redis_client = _redis_client(settings) if use_redis else None
    return tuple(_build(name, settings, redis_client) for name in names)


@lru_cache
def provider_chain() -> tuple[LLMProvider, ...]:
    """The configured chain, built once from the settings (``provider_chain.cache_clear()``
    forgets it, e.g. after the settings changed). It holds no client: usable from any loop."""
    return build_chain(get_settings())


async def aclose() -> None:
    """Close the running loop's pooled HTTP connections to the providers (call it before
    the loop ends, e.g. at worker shutdown; the next call opens new ones)."""
    await aclose_clients()


def any_provider(_name: str) -> bool:
    return True


async def _first_success(
    call: Callable[[LLMProvider], Awaitable[T]],
    duration: Histogram,
    allows: Callable[[str], bool],
    chain: tuple[LLMProvider, ...] | None = None,
) -> Generated[T]:
    """The first answer down the chain (default: the configured one) of the providers
    `allows` lets the caller use (the tenant's plan; the offline scorer always); the whole
    chain's time is observed in `duration`, labelled by the provider that answered."""
    started = time.perf_counter()
    chain = tuple(p for p in (chain or provider_chain()) if p.name == "offline" or allows(p.name))
    for position, provider in enumerate(chain):
        t0 = time.perf_counter()
        try:
            if isinstance(provider, GuardedProvider):
                result = await call(provider)
            else:  # the offline provider: measured here, it has no breaker or retries
                result = await _measured(provider, partial(call, provider))
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


async def score(
    answers: dict[str, int],
    context: str | None,
    allows: Callable[[str], bool] = any_provider,
    chain: tuple[LLMProvider, ...] | None = None,
) -> Generated[ScoreResult]:
    """Score the answers with the first provider of the chain (default: the configured
    one, else e.g. `build_chain(...)`'s) that can and is allowed."""
    return await _first_success(
        lambda provider: provider.score(answers, context),
        metrics.SCORE_DURATION,
        allows,
        chain,
    )


async def roadmap(
    answers: dict[str, int],
    scored: ScoreResult,
    context: str | None,
    allows: Callable[[str], bool] = any_provider,
) -> Generated[RoadmapResult]:
    """Write the roadmap with the first provider of the chain that can (and is allowed)."""
    return await _first_success(
        lambda provider: provider.roadmap(answers, scored, context),
        metrics.ROADMAP_DURATION,
        allows,
    )
