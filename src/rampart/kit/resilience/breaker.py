"""A circuit breaker whose state lives in Redis, so every process shares what one has learnt.

Our own small module on purpose: the well-known Python breakers keep their state in process
memory (aiobreaker, circuitbreaker, purgatory's default) or offer Redis storage that is
barely maintained and not atomic across processes (pybreaker's ``CircuitRedisStorage``
reads, decides and writes in separate round trips, so two processes can both run the
half-open trial). Here every decision is one Lua script, executed atomically by Redis.

States and transitions (per breaker name)::

    closed --N consecutive failures--> open --cool-down elapsed--> half-open
    half-open: exactly ONE caller, across all processes, gets a trial permit
    trial succeeds --> closed         trial fails --> open (a new cool-down starts)

While open (and while another caller holds the trial), ``allow()`` refuses at once: no
network call is made. A success while closed resets the failure count.

Redis keys (the ``{name}`` hash tag keeps both keys on one Redis Cluster slot):

- ``rampart:breaker:{<name>}:state`` hash ``state`` (``open`` or absent = closed),
  ``failures`` (consecutive failures while closed), ``opened_at_ms`` (Redis server time).
  Absent = closed with no failures; a success while closed deletes it.
- ``rampart:breaker:{<name>}:trial`` the half-open trial lock: ``SET NX PX`` holding the
  trial's random token, with a TTL (``trial_ttl_seconds``) longer than one guarded call, so
  a trial whose process died is retried after the TTL instead of never.

Time is Redis's own clock (``TIME`` inside the scripts), so processes with skewed clocks
agree on when the cool-down ends.

Redis is spoken to through ``redis.asyncio``: every method that touches Redis is a
coroutine, and the client comes from ``redis_client()``, called on each use, which must
return the *running* event loop's client (an asyncio client's connections belong to the
loop that opened them), e.g.
``functools.partial(redis_clients.shared, url, redis_clients.REQUEST)``.
The breaker itself holds no connection, so one instance serves any number of loops.

When Redis itself is unreachable (or slow past the client's ``socket_timeout``), the
breaker **fails open**: calls are allowed as if closed, failures and successes are not
recorded, and a warning is logged (at most once a minute per breaker). Rationale: the
breaker protects us from a sick dependency; losing Redis must not also take that dependency
away from us. The guarded call still has its own timeout and retry bound, so the worst case
is the unprotected behaviour, never an outage caused by the breaker.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from rampart.kit.logging import get_logger

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError", "Permit"]

log = get_logger(__name__)
T = TypeVar("T")
KEY_PREFIX = "rampart:breaker:"
_WARN_EVERY_SECONDS = 60.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def level(self) -> int:
        """0 closed, 1 half-open, 2 open (the value of a state gauge)."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


class CircuitOpenError(Exception):
    """The breaker refused the call: it is open, or another caller holds the half-open trial.

    ``retry_in`` is the rest of the cool-down in seconds (0 while a trial is running)."""

    def __init__(self, name: str, state: BreakerState, retry_in: float) -> None:
        super().__init__(f"circuit {name!r} is {state.value}; retry in {retry_in:.1f}s")
        self.name = name
        self.state = state
        self.retry_in = retry_in


@dataclass(frozen=True)
class Permit:
    """Leave to make one call. Hand it back with ``record_success``/``record_failure``.

    ``trial`` is set for the single half-open trial call; ``unguarded`` when Redis was
    unreachable and the call is allowed without shared state."""

    state: BreakerState
    token: str = ""
    unguarded: bool = False

    @property
    def trial(self) -> bool:
        return bool(self.token)


# KEYS[1] state hash, KEYS[2] trial lock. ARGV[1] cool-down ms, ARGV[2] trial TTL ms,
# ARGV[3] trial token. Returns {verdict, ms until the cool-down ends}.
_ALLOW = """
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return {'closed', 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at_ms')) or 0
local remaining = opened + tonumber(ARGV[1]) - now
if remaining > 0 then return {'open', remaining} end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then return {'trial', 0} end
return {'half_open', 0}
"""

# ARGV[1] threshold, ARGV[2] trial token ('' unless this call was the trial).
# Returns the state after recording.
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
  if state == 'open' then
    redis.call('HSET', KEYS[1], 'opened_at_ms', now)
    return 'open'
  end
end
if state == 'open' then return 'open' end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at_ms', now)
  return 'open'
end
return 'closed'
"""

# ARGV[1] trial token ('' unless this call was the trial). Returns the state after.
_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' then
  if ARGV[1] == '' then return 'open' end
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
end
redis.call('DEL', KEYS[1])
return 'closed'
"""

# ARGV[1] trial token: give the trial back without a verdict (the call neither succeeded
# nor failed in a way that counts), so the next caller can run the trial at once.
_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""


class CircuitBreaker:
    """A named breaker over Redis; cheap to create, safe to share between tasks and loops.

    Use ``await call(fn, *args)`` (``fn`` a coroutine function; raises ``CircuitOpenError``
    when refused; exceptions in ``failure_exceptions`` count as failures, anything else,
    cancellation included, releases a trial unjudged), or drive it yourself (``acquire()``
    is ``allow()`` raising ``CircuitOpenError``)::

        permit = await breaker.allow()    # None: refused, fail fast
        try:
            result = await do_it()
        except SomeError:
            await breaker.record_failure(permit)
            raise
        await breaker.record_success(permit)

    ``redis_client`` returns the running loop's client; None (no Redis configured): the
    breaker then always allows and warns, as when Redis is unreachable. ``on_state`` is
    told the state each step saw (a permit or a refusal, then the verdict): a state gauge.
    """

    def __init__(
        self,
        name: str,
        redis_client: Callable[[], aioredis.Redis] | None,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 300.0,
        trial_ttl_seconds: float = 60.0,
        failure_exceptions: tuple[type[BaseException], ...] = (Exception,),
        on_state: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not cooldown_seconds > 0 or not trial_ttl_seconds > 0:
            raise ValueError("cooldown_seconds and trial_ttl_seconds must be > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_ms = max(1, round(cooldown_seconds * 1000))
        self.trial_ttl_ms = max(1, round(trial_ttl_seconds * 1000))
        self.failure_exceptions = failure_exceptions
        self.keys = [f"{KEY_PREFIX}{{{name}}}:state", f"{KEY_PREFIX}{{{name}}}:trial"]
        self._redis_client = redis_client
        self._on_state = on_state
        self._last_warning = float("-inf")

    # --- the protocol ----------------------------------------------------------------------

    async def allow(self) -> Permit | None:
        """A permit to call, or None when the breaker refuses (open, or trial in progress)."""
        try:
            return await self.acquire()
        except CircuitOpenError:
            return None

    async def acquire(self) -> Permit:
        """A permit to call, or ``CircuitOpenError`` saying why not and for how long."""
        try:
            permit = await self._acquire()
        except CircuitOpenError as exc:
            self._saw(exc.state)
            raise
        self._saw(permit.state)
        return permit

    async def _acquire(self) -> Permit:
        if self._redis_client is None:
            self._warn(None)
            return Permit(BreakerState.CLOSED, unguarded=True)
        token = secrets.token_hex(8)
        raw = await self._run(_ALLOW, self.cooldown_ms, self.trial_ttl_ms, token)
        if raw is None:
            return Permit(BreakerState.CLOSED, unguarded=True)
        verdict = _text(raw[0])
        if verdict == "closed":
            return Permit(BreakerState.CLOSED)
        if verdict == "trial":
            return Permit(BreakerState.HALF_OPEN, token=token)
        if verdict == "open":
            raise CircuitOpenError(self.name, BreakerState.OPEN, int(raw[1]) / 1000)
        raise CircuitOpenError(self.name, BreakerState.HALF_OPEN, 0.0)

    async def record_success(self, permit: Permit) -> BreakerState:
        """The permitted call worked: closed (resets the failure count; ends a trial)."""
        state = BreakerState.CLOSED
        if not permit.unguarded:
            result = await self._run(_SUCCESS, permit.token)
            state = BreakerState(_text(result)) if result is not None else BreakerState.CLOSED
        return self._saw(state)

    async def record_failure(self, permit: Permit) -> BreakerState:
        """The permitted call failed: count it; open at the threshold; a failed trial reopens
        the breaker for a new cool-down."""
        state = BreakerState.CLOSED
        if not permit.unguarded:
            result = await self._run(_FAILURE, self.failure_threshold, permit.token)
            state = BreakerState(_text(result)) if result is not None else BreakerState.CLOSED
        return self._saw(state)

    async def release(self, permit: Permit) -> None:
        """Give back a trial permit without a verdict (e.g. the call was cancelled)."""
        if permit.trial and not permit.unguarded:
            await self._run(_RELEASE, permit.token)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` if allowed; raise ``CircuitOpenError`` (without calling it) if not."""
        permit = await self.acquire()
        try:
            result = await fn(*args, **kwargs)
        except self.failure_exceptions:
            await self.record_failure(permit)
            raise
        except BaseException:
            await self.release(permit)
            raise
        await self.record_success(permit)
        return result

    # --- inspection ------------------------------------------------------------------------

    async def state(self) -> BreakerState:
        """The shared state now (CLOSED when Redis cannot be read)."""
        if self._redis_client is None:
            return BreakerState.CLOSED
        client = self._redis_client()
        try:
            fields = await client.hmget(self.keys[0], ["state", "opened_at_ms"])
            if fields[0] not in (b"open", "open"):
                return BreakerState.CLOSED
            seconds, micros = await client.time()
        except redis.RedisError as exc:
            self._warn(exc)
            return BreakerState.CLOSED
        now_ms = seconds * 1000 + micros // 1000
        opened = int(float(fields[1] or 0))
        if now_ms - opened < self.cooldown_ms:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    async def failures(self) -> int:
        """Consecutive failures counted while closed (0 when Redis cannot be read)."""
        if self._redis_client is None:
            return 0
        try:
            return int(await self._redis_client().hget(self.keys[0], "failures") or 0)
        except redis.RedisError as exc:
            self._warn(exc)
            return 0

    async def reset(self) -> None:
        """Forget everything: closed, no failures, no trial (operators, tests)."""
        if self._redis_client is not None:
            await self._redis_client().delete(*self.keys)

    # --- internals -------------------------------------------------------------------------

    def _saw(self, state: BreakerState) -> BreakerState:
        if self._on_state is not None:
            self._on_state(state)
        return state

    async def _run(self, script: str, *args: object) -> Any:
        """Run one of the Lua scripts atomically (EVALSHA, loading it on first use); None
        when Redis cannot be reached (warned)."""
        assert self._redis_client is not None
        client = self._redis_client()
        try:
            return await client.register_script(script)(keys=self.keys, args=list(args))
        except redis.RedisError as exc:
            self._warn(exc)
            return None

    def _warn(self, exc: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._last_warning < _WARN_EVERY_SECONDS:
            return
        self._last_warning = now
        log.warning(
            "circuit_breaker_unguarded",
            breaker=self.name,
            reason="no Redis configured" if exc is None else f"Redis unreachable: {exc!r}",
            detail="calls are allowed without a shared breaker until Redis is back",
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
