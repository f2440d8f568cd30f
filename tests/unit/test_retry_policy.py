"""The retry policy: transient errors are retried with bounded, jittered backoff (or the
server's Retry-After, capped); definitive errors are never retried. The policy is async:
the call is a coroutine and the waits are awaited (recorded here instead of slept)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rampart.kit.resilience import RetryPolicy
from rampart.llm.base import DefinitiveLLMError, TransientLLMError
from rampart.llm.http import LLMRateLimitedError, parse_retry_after


class Flaky:
    """A coroutine function that fails with the given exceptions in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Policy:
    """A RetryPolicy whose waits are recorded in `sleeps`; `call` runs it on a fresh loop."""

    def __init__(self, sleeps: list[float], **overrides) -> None:
        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        options = {
            "transient": (TransientLLMError,),
            "attempts": 3,
            "base_seconds": 1.0,
            "max_seconds": 8.0,
            "sleep": sleep,
        }
        self.policy = RetryPolicy(**{**options, **overrides})

    def call(self, fn: Flaky) -> str:
        return asyncio.run(self.policy.call(fn))


def policy(sleeps: list[float], **overrides) -> Policy:
    return Policy(sleeps, **overrides)


def test_a_transient_error_is_retried_until_success():
    sleeps: list[float] = []
    fn = Flaky(TransientLLMError("503"), TransientLLMError("503"))
    assert policy(sleeps).call(fn) == "ok"
    assert fn.calls == 3
    assert len(sleeps) == 2


def test_backoff_is_exponential_with_bounded_jitter():
    sleeps: list[float] = []
    fn = Flaky(*[TransientLLMError("down") for _ in range(6)])
    with pytest.raises(TransientLLMError):
        policy(sleeps, attempts=6, max_seconds=100).call(fn)
    # base * 2**(n-1) + uniform(0, base): ~1 s, 2 s, 4 s, 8 s, 16 s
    for n, wait in enumerate(sleeps, start=1):
        nominal = 2 ** (n - 1)
        assert nominal <= wait <= nominal + 1.0, (n, wait)


def test_backoff_never_exceeds_the_cap():
    sleeps: list[float] = []
    fn = Flaky(*[TransientLLMError("down") for _ in range(10)])
    with pytest.raises(TransientLLMError):
        policy(sleeps, attempts=10, max_seconds=3.0).call(fn)
    assert len(sleeps) == 9
    assert max(sleeps) <= 3.0
    assert sleeps[-1] == 3.0


def test_jitter_spreads_the_waits():
    waits = set()
    for _ in range(20):
        sleeps: list[float] = []
        policy(sleeps).call(Flaky(TransientLLMError("x")))
        waits.add(round(sleeps[0], 6))
    assert len(waits) > 1, "every client would retry at the same instant"


def test_exhausted_retries_reraise_the_last_transient_error_itself():
    sleeps: list[float] = []
    last = TransientLLMError("third")
    fn = Flaky(TransientLLMError("first"), TransientLLMError("second"), last)
    with pytest.raises(TransientLLMError) as info:
        policy(sleeps).call(fn)
    assert info.value is last
    assert fn.calls == 3


@pytest.mark.parametrize(
    "error", [DefinitiveLLMError("401"), ValueError("bug"), KeyError("x")], ids=type
)
def test_anything_not_transient_is_not_retried(error):
    sleeps: list[float] = []
    fn = Flaky(error)
    with pytest.raises(type(error)):
        policy(sleeps).call(fn)
    assert fn.calls == 1
    assert sleeps == []


def test_a_retry_after_hint_replaces_the_backoff():
    sleeps: list[float] = []
    fn = Flaky(LLMRateLimitedError("429", 429, retry_after=5.0))
    assert policy(sleeps).call(fn) == "ok"
    assert sleeps == [5.0]


def test_a_retry_after_hint_is_capped():
    sleeps: list[float] = []
    fn = Flaky(LLMRateLimitedError("429", 429, retry_after=3600.0))
    policy(sleeps, max_seconds=8.0).call(fn)
    assert sleeps == [8.0]


def test_a_429_without_retry_after_uses_the_backoff():
    sleeps: list[float] = []
    policy(sleeps).call(Flaky(LLMRateLimitedError("429", 429, retry_after=None)))
    assert 1.0 <= sleeps[0] <= 2.0


def test_one_attempt_means_no_retry():
    sleeps: list[float] = []
    fn = Flaky(TransientLLMError("x"))
    with pytest.raises(TransientLLMError):
        policy(sleeps, attempts=1).call(fn)
    assert fn.calls == 1


def test_on_retry_hears_each_retry_with_its_wait():
    sleeps: list[float] = []
    heard: list[tuple[str, int, float]] = []
    fn = Flaky(TransientLLMError("a"), TransientLLMError("b"))
    policy(sleeps, on_retry=lambda exc, n, wait: heard.append((str(exc), n, wait))).call(fn)
    assert [(h[0], h[1]) for h in heard] == [("a", 1), ("b", 2)]
    assert [h[2] for h in heard] == sleeps


def test_invalid_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(transient=(Exception,), attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(transient=(Exception,), base_seconds=-1)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_is_read_in_seconds(headers, expected):
    assert parse_retry_after(httpx.Headers(headers)) == expected


def test_retry_after_as_a_future_http_date():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(httpx.Headers({"retry-after": when}))
    assert seconds is not None and 25 <= seconds <= 31


def test_the_waits_are_asyncio_sleeps_that_leave_the_loop_free():
    """With the default sleep, other tasks of the loop run while a call waits to retry."""
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.005)

    async def main() -> tuple[str, int]:
        retry = RetryPolicy(transient=(TransientLLMError,), base_seconds=0.1, max_seconds=0.2)
        other = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = len(ticks)
        result = await retry.call(Flaky(TransientLLMError("503")))
        other.cancel()
        return result, len(ticks) - before

    result, ticked_meanwhile = asyncio.run(main())
    assert result == "ok"
    assert ticked_meanwhile >= 5  # a blocking sleep of >= 0.1 s would allow none


def test_cancellation_is_never_retried():
    sleeps: list[float] = []
    fn = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        policy(sleeps, transient=(Exception,)).call(fn)
    assert fn.calls == 1
    assert sleeps == []
