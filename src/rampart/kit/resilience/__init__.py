"""Resilience primitives that know no domain, both async (asyncio): a Redis-backed circuit
breaker shared by all processes, and a retry policy that retries transient errors only."""

from rampart.kit.resilience.breaker import BreakerState, CircuitBreaker, CircuitOpenError, Permit
from rampart.kit.resilience.retry import RetryPolicy, retry_after_of

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Permit",
    "RetryPolicy",
    "retry_after_of",
]
