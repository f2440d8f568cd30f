"""Per-process observability setup: OpenTelemetry, Sentry and `rampart_build_info`.

Called once by each process that does work: the API app (`create_app`), the worker
(`worker_init`; Sentry itself starts on `celeryd_init`), the relay. Metrics endpoints are
kit/metrics/exposition.py. Its start is then over: the cycle collector, paused while it
imported (kit/gc_startup.py), runs again.
"""

from __future__ import annotations

from rampart.kit import gc_startup, tracing
from rampart.kit.metrics.exposition import record_build_info
from rampart.kit.sentry import init_sentry


def setup_process(service: str, *, sentry: bool = True) -> None:
    tracing.configure(service)
    if sentry:
        init_sentry(service)
    record_build_info()
    gc_startup.resume()
