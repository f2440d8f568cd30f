"""The retry policy: transient errors are retried with bounded backoff, definitive ones never.

Built on tenacity's ``AsyncRetrying``: the call is a coroutine and the waits are
``asyncio.sleep``, so a call waiting to retry holds no thread and blocks no event loop. The
caller says which exceptions are transient (the classification lives with whoever knows the
dependency); everything else (``asyncio.CancelledError`` included) propagates after the
first try.

- Backoff: exponential with jitter, ``base * 2**(retry-1) + uniform(0, base)`` capped at
  ``max_seconds`` (defaults: ~1 s, ~2 s, ~4 s, ... never above 8 s). It is the project's
  one backoff formula (``backoff``): job retries, which Celery schedules itself, take their
  countdown from ``backoff_seconds`` (kit/jobs/task.py).
- A hint from the failed call wins over the backoff: when the exception carries
  ``retry_after`` (seconds, e.g. an HTTP 429's ``Retry-After``), the next try waits that
  long, capped at ``max_seconds`` too, so a server cannot park a call for an hour.
- After ``attempts`` tries the last transient exception is re-raised unchanged (not a
  tenacity ``RetryError``), so callers see the real cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

__all__ = ["RetryPolicy", "backoff", "backoff_seconds", "retry_after_of"]

T = TypeVar("T")


def backoff(base_seconds: float, max_seconds: float) -> wait_base:
    """Retry n waits ``min(max_seconds, base_seconds * 2**(n-1) + uniform(0, base_seconds))``
    (tenacity's ``wait_exponential_jitter``)."""
    return wait_exponential_jitter(multiplier=base_seconds, jitter=base_seconds, max=max_seconds)


def backoff_seconds(retry: int, *, base_seconds: float, max_seconds: float) -> float:
    """The wait before retry number `retry` (1 = the first), for a caller that schedules
    its retries itself (a Celery task's countdown)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = retry
    return backoff(base_seconds, max_seconds)(state)


def retry_after_of(exc: BaseException) -> float | None:
    """The server's requested delay in seconds, if the exception carries one."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


class _wait_hint_or_backoff(wait_base):  # noqa: N801 - tenacity's naming style
    """Wait what the failed call asked for (capped), else the exponential backoff."""

    def __init__(
        self,
        backoff: wait_base,
        cap: float,
        hint: Callable[[BaseException], float | None],
    ) -> None:
        self.backoff = backoff
        self.cap = cap
        self.hint = hint

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        requested = self.hint(exc) if exc is not None else None
        if requested is not None:
            return min(requested, self.cap)
        return self.backoff(retry_state)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try and how long to wait; ``transient`` says what is worth it.

    ``on_retry(exc, attempt, wait_seconds)`` is called before each wait (metrics, logs);
    ``sleep`` (a coroutine function) is injectable for tests.
    """

    transient: tuple[type[BaseException], ...]
    attempts: int = 3
    base_seconds: float = 1.0
    max_seconds: float = 8.0
    retry_after: Callable[[BaseException], float | None] = retry_after_of
    on_retry: Callable[[BaseException, int, float], None] | None = None
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("base_seconds and max_seconds must be >= 0")

    def retrying(self) -> AsyncRetrying:
        """A fresh tenacity ``AsyncRetrying`` for this policy (one per call: it keeps state)."""
        return AsyncRetrying(
            retry=retry_if_exception_type(self.transient),
            stop=stop_after_attempt(self.attempts),
            wait=_wait_hint_or_backoff(
                backoff(self.base_seconds, self.max_seconds),
                cap=self.max_seconds,
                hint=self.retry_after,
            ),
            before_sleep=self._before_sleep if self.on_retry else None,
            sleep=self.sleep,
            reraise=True,
        )

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)``, retrying transient exceptions; re-raise the last
        one, or any other exception at once."""
        return await self.retrying()(fn, *args, **kwargs)

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        assert self.on_retry is not None
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        if exc is not None:
            self.on_retry(exc, retry_state.attempt_number, float(wait))
