"""Waiting in tests: poll a condition until a deadline, never sleep a fixed time and hope.

    wait_until(lambda: broker.llen(QUEUE) == 0, 30, 0.1, message="the queue to drain")
    await wait_until_async(check, 5, 0.02)

The timeout is a deadline for giving up, not a speed target (those live in benchmarks,
`make bench`). It scales with how busy the machine is (`time_scale`): the same test on a
2-core machine running a parallel suite and three other engineers' tests gets longer to
give up than on an idle one, so contention makes a test slower, never red. A wait that
asserts a bound on purpose (a timeout the product promises) passes `scale=False`.

`stays(predicate, seconds)` is the one negative wait: "nothing happens for a while", for
the few checks that cannot be turned into an event to wait for.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Never stretch a deadline more than this: a test's longest waits (90 s) must still give up
# with their own message (what they waited for, the last value) before pytest-timeout
# (300 s) kills the test with only a stack.
MAX_TIME_SCALE = 3.0


class WaitTimeout(AssertionError):
    """A condition polled by `wait_until` did not become true in time."""


def time_scale() -> float:
    """How much longer than on an idle machine to wait: RAMPART_TEST_TIME_SCALE when set,
    else the 1-minute load per CPU (at least 1, at most MAX_TIME_SCALE). Read at each wait,
    so a deadline set while the machine is busy is a longer one."""
    forced = os.environ.get("RAMPART_TEST_TIME_SCALE")
    if forced:
        return max(1.0, float(forced))
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return 1.0
    return min(MAX_TIME_SCALE, max(1.0, load))


def scaled(seconds: float) -> float:
    """`seconds` stretched by `time_scale()`: a deadline that scales with the machine."""
    return seconds * time_scale()


def _describe(predicate: Any, message: str | Callable[[], str]) -> str:
    what = message() if callable(message) else message
    return what or getattr(predicate, "__name__", "condition")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.1,
    *,
    message: str | Callable[[], str] = "",
    ignore: tuple[type[BaseException], ...] = (),
    scale: bool = True,
) -> T:
    """Call `predicate` until it returns something truthy, and return that value.

    Exceptions of the types in `ignore` count as "not yet" (e.g. httpx.ConnectError while a
    server starts); any other exception propagates. On timeout (stretched by `time_scale()`
    unless `scale=False`), raises WaitTimeout naming `message`, the last value and the last
    ignored exception.
    """
    limit = scaled(timeout) if scale else timeout
    deadline = time.monotonic() + limit
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            last = predicate()
            error = None
        except ignore as exc:
            error = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            detail = f"last value {last!r}" + (f", last error {error!r}" if error else "")
            raise WaitTimeout(
                f"timed out after {limit:g}s waiting for {_describe(predicate, message)} "
                f"({detail})"
            )
        time.sleep(interval)


async def wait_until_async(
    check: Callable[[], Awaitable[T]],
    timeout: float = 5.0,
    interval: float = 0.02,
    *,
    message: str | Callable[[], str] = "",
    scale: bool = True,
) -> T:
    """`wait_until` for a coroutine function, polled on the running loop."""
    limit = scaled(timeout) if scale else timeout
    deadline = time.monotonic() + limit
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {limit:g}s waiting for {_describe(check, message)} "
                f"(last value {last!r})"
            )
        await asyncio.sleep(interval)


def stays(predicate: Callable[[], Any], seconds: float, interval: float = 0.05) -> bool:
    """Whether `predicate` stays truthy for `seconds` (checked every `interval`): the one
    negative wait. Returns False as soon as it is falsy, so a failure is quick."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(interval)
    return bool(predicate())
