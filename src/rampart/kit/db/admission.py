"""Admission: no more requests in the database path than the pool has connections.

FastAPI runs the sync session dependency and the sync endpoint as separate hops in anyio's
threadpool (40 threads), and a request holds its pooled connection between them. With more
requests in flight than threads + connections, every thread can block in pool checkout
while the requests that hold the connections wait for a thread: nothing moves until the
pool timeout turns the waiters into 503s (docs/performance.md measured the cliff at 56
connections). Queueing the excess here, in the event loop, before any thread or connection
is taken, keeps every admitted request's checkout immediate: past capacity the API gets
slower, not stuck. A request that waits longer than DB_POOL_TIMEOUT_SECONDS for admission
gets 503 `overloaded` with Retry-After.
"""

from __future__ import annotations

import asyncio
import weakref

from starlette.types import ASGIApp, Receive, Scope, Send

from rampart.kit.errors import envelope
from rampart.kit.logging import get_logger
from rampart.kit.metrics import DB_ADMISSION_WAITING

log = get_logger(__name__)

# Probes and scrapes must answer under load; they do not hold a request's session.
EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})


class DbAdmissionMiddleware:
    def __init__(self, app: ASGIApp, capacity: int, wait_seconds: float) -> None:
        self.app = app
        self.capacity = capacity
        self.wait_seconds = wait_seconds
        # One semaphore per event loop: tests serve several apps in threads of one process.
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._gates = weakref.WeakKeyDictionary()

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.capacity)
        return gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        gate = self._gate()
        DB_ADMISSION_WAITING.inc()
        try:
            await asyncio.wait_for(gate.acquire(), self.wait_seconds)
        except TimeoutError:
            log.warning("request_not_admitted", capacity=self.capacity)
            response = envelope(
                503,
                "overloaded",
                "The service is at capacity; retry shortly.",
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        finally:
            DB_ADMISSION_WAITING.dec()
        try:
            await self.app(scope, receive, send)
        finally:
            gate.release()
