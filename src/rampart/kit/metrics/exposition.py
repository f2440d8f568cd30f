"""How metrics leave a process: prometheus-client multiprocess mode, one endpoint per service.

Why multiprocess mode (not per-process endpoints): `rampart api --workers N` runs N uvicorn
processes behind one port, and `rampart worker` runs a Celery prefork pool whose children do
the work. A scrape must see every process of the service, through one address:

- `rampart api|worker|relay` call `prepare_multiprocess_dir(service)` first thing, before
  prometheus_client is imported (it picks its value class at import time). That gives the
  service a fresh, empty directory `<PROMETHEUS_MULTIPROC_DIR or a temp dir>/<service>-<pid>/`,
  exported as `PROMETHEUS_MULTIPROC_DIR` so every child (uvicorn workers, pool processes)
  writes its metrics there as mmap files. It is removed when the service exits; leftovers
  of services that died are removed by the next start in the same base directory.
- Each service exposes ONE endpoint that aggregates its own directory: a small HTTP server
  (`serve`) on METRICS_HOST and METRICS_PORT (API), WORKER_METRICS_PORT or
  RELAY_METRICS_PORT, run by the service's main process: `rampart api` starts it before
  uvicorn starts any worker (with `--workers N`, uvicorn's supervisor holds it and the N
  workers only write files), the worker's runs in the Celery main process and reports the
  pool children. The API's public port has no /metrics. Different services never share a
  directory, so nothing is counted twice.
- Counters and histograms of dead processes keep counting (their files stay). Gauges are
  declared with an explicit `multiprocess_mode` (kit/metrics/instruments.py); the `live*` ones must
  forget processes that are gone: `mark_process_dead(pid)` runs when a Celery pool process
  shuts down, and at every scrape for any process whose pid no longer runs (that also
  covers SIGKILLed processes and uvicorn workers, which have no exit hook).

Without PROMETHEUS_MULTIPROC_DIR in the environment (in-process tests, `create_app()` used
as a library) everything falls back to prometheus_client's default single-process registry.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from rampart.kit.processes import pid_alive

ENV = "PROMETHEUS_MULTIPROC_DIR"
_MARKER = "RAMPART_METRICS_DIR"  # set with ENV by prepare: "this dir was made for us"
_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
_SERVICE_DIR = re.compile(r"^([a-z]+)-(\d+)$")


def prepare_multiprocess_dir(service: str, base: str | None = None) -> Path:
    """Give this service a fresh multiprocess directory and export it; idempotent.

    Must run before prometheus_client is imported in this process. `base` defaults to the
    PROMETHEUS_MULTIPROC_DIR setting, else a new temporary directory.
    """
    current = os.environ.get(ENV)
    if current and os.environ.get(_MARKER) == current and Path(current).is_dir():
        return Path(current)
    if base is None:
        from rampart.kit.settings import telemetry_settings

        base = telemetry_settings().prometheus_multiproc_dir
    if base:
        root = Path(base)
        root.mkdir(parents=True, exist_ok=True)
        for old in root.iterdir():  # directories of services that died without cleaning up
            match = _SERVICE_DIR.match(old.name)
            if match and old.is_dir() and not pid_alive(int(match.group(2))):
                shutil.rmtree(old, ignore_errors=True)
        directory = root / f"{service}-{os.getpid()}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        cleanup: Path = directory
    else:
        directory = Path(tempfile.mkdtemp(prefix=f"rampart-metrics-{service}-"))
        cleanup = directory
    os.environ[ENV] = os.environ[_MARKER] = str(directory)
    owner = os.getpid()

    def _remove() -> None:
        if os.getpid() == owner:  # not in forked children that happen to run atexit
            shutil.rmtree(cleanup, ignore_errors=True)

    atexit.register(_remove)
    return directory


def multiprocess_dir() -> str | None:
    path = os.environ.get(ENV)
    return path if path and os.path.isdir(path) else None


def mark_dead(pid: int | None = None) -> None:
    """Forget a (dead) process's live gauges; no-op outside multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid if pid is not None else os.getpid(), path)


def reap_dead_processes(path: str) -> list[int]:
    """mark_process_dead for every process with live-gauge files that no longer runs."""
    pids = set()
    with contextlib.suppress(OSError):
        for name in os.listdir(path):
            match = _LIVE_FILE.match(name)
            if match:
                pids.add(int(match.group(1)))
    dead = sorted(pid for pid in pids if pid != os.getpid() and not pid_alive(pid))
    if dead:
        from prometheus_client import multiprocess

        for pid in dead:
            multiprocess.mark_process_dead(pid, path)
    return dead


class _ReapingMultiProcessCollector:
    """MultiProcessCollector that first forgets the live gauges of dead processes."""

    def __init__(self, path: str) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector

        self._path = path
        self._inner = MultiProcessCollector(None, path=path)

    def collect(self) -> Iterable[Any]:
        reap_dead_processes(self._path)
        return self._inner.collect()


def registry(extra_collectors: Iterable[Any] = ()) -> Any:
    """The registry a service exposes: every process of the service, plus `extra`."""
    from prometheus_client import REGISTRY, CollectorRegistry

    path = multiprocess_dir()
    extra = list(extra_collectors)
    if path is None and not extra:
        return REGISTRY
    result = CollectorRegistry(auto_describe=False)  # never collect just to register
    if path is not None:
        result.register(_ReapingMultiProcessCollector(path))
    else:
        result.register(_DefaultRegistryCollector())
    for collector in extra:
        result.register(collector)
    return result


class _DefaultRegistryCollector:
    """The default registry's metrics, as one collector (single-process mode)."""

    def collect(self) -> Iterable[Any]:
        from prometheus_client import REGISTRY

        return REGISTRY.collect()


def render(reg: Any | None = None) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(reg if reg is not None else registry()), CONTENT_TYPE_LATEST


def serve(port: int, host: str, extra_collectors: Iterable[Any] = ()) -> Any | None:
    """Serve /metrics on host:port in a daemon thread (port 0: disabled); the server."""
    if not port:
        return None
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry(extra_collectors))
    return server


@lru_cache
def git_commit() -> str:
    """GIT_COMMIT, else `git rev-parse` of the source checkout, else "unknown"."""
    from rampart.kit.settings import telemetry_settings

    configured = telemetry_settings().git_commit
    if configured:
        return configured.strip()[:40]
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,40}", commit) else "unknown"


def record_build_info() -> None:
    from rampart.kit.metrics.instruments import BUILD_INFO
    from rampart.kit.settings import telemetry_settings

    BUILD_INFO.labels(telemetry_settings().version, git_commit()).set(1)
