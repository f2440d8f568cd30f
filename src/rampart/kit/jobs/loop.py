"""One asyncio event loop per worker process, in a thread of its own: all job work runs
on it, and Celery's threads pool only hands tasks over and waits.

Why: job work is I/O (the database, Redis, LLM calls of seconds). A Celery thread per
task that waits on a future costs a blocked thread and no CPU, while the loop holds every
in-flight LLM call and database round trip of the process at once — hundreds of LLM calls
in flight per worker process instead of one per prefork child (docs/performance.md).
The loop is uvloop's, as in the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def start() -> asyncio.AbstractEventLoop:
    """This process's job loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or not (_thread and _thread.is_alive()):
            loop = uvloop.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_serve, args=(loop, ready), name="rampart-jobs-loop", daemon=True
            )
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on the job loop and wait for its result (from any other thread)."""
    return asyncio.run_coroutine_threadsafe(coroutine, start()).result()


def stop(timeout: float = 10.0) -> None:
    """Close the loop's database pool and Redis clients and stop it (the worker is shutting
    down; a domain's own clients are closed by the worker first, worker.py)."""
    global _loop, _thread
    with _lock:
        loop, thread, _loop, _thread = _loop, _thread, None, None
    if loop is None or thread is None:
        return
    from rampart.kit.db.pool import close_pool
    from rampart.kit.redis_clients import aclose_clients

    # Shutting down: if closing fails, the servers drop our connections anyway.
    for close in (close_pool, aclose_clients):
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout)
