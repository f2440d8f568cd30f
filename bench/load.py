"""A small HTTP/1.1 load generator: N keep-alive connections, one request in flight on each.

Why our own and not httpx or locust: on a 2-core machine the client shares the CPU with the
server and Postgres, so it must be cheap. This one writes a pre-built request on a raw
asyncio transport (uvloop when available) and parses only the status line and
Content-Length of the answer. That is all it supports: responses must carry Content-Length
(FastAPI/uvicorn JSON responses do); chunked bodies are counted as errors.

Every response finishing inside the measuring window is counted and its latency (request
written → last byte read) recorded; percentiles are computed exactly from the full sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    request: bytes  # the whole HTTP/1.1 request, sent as is on every turn
    expect_status: int = 200


def build_request(
    method: str, host: str, port: int, path: str, *, headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sample (exact, no interpolation)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class LoadResult:
    target: str
    connections: int
    duration_s: float
    requests: int
    errors: int  # responses with another status than expected, plus broken connections
    statuses: dict[str, int]
    rps: float
    latency_ms: dict[str, float]  # p50 p95 p99 mean max
    cpu_percent: dict[str, float] = field(default_factory=dict)  # of ONE core, per process group

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "connections": self.connections,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "errors": self.errors,
            "statuses": self.statuses,
            "rps": round(self.rps, 1),
            "latency_ms": {k: round(v, 2) for k, v in self.latency_ms.items()},
            "cpu_percent": {k: round(v, 1) for k, v in self.cpu_percent.items()},
        }


class _Run:
    """Shared state of one measurement: the window, the sample, the stop signal."""

    def __init__(self, target: Target, measure_start: float, measure_end: float) -> None:
        self.target = target
        self.measure_start = measure_start
        self.measure_end = measure_end
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.broken = 0
        self.busy = 0
        self.idle = asyncio.get_running_loop().create_future()


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.request = run.target.request
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.need: int | None = None
        self.status = 0
        self.sent_at = 0.0
        self.in_flight = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> None:
        self.in_flight = True
        self.run.busy += 1
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)  # type: ignore[union-attr]

    def _finished(self) -> None:
        self.in_flight = False
        self.run.busy -= 1
        run = self.run
        if run.busy == 0 and not run.idle.done() and time.perf_counter() >= run.measure_end:
            run.idle.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.need is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.connection_lost(RuntimeError("response without Content-Length"))
                self.transport.close()  # type: ignore[union-attr]
                return
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop > 0 else len(head)])
            self.need = end + 4 + length
        if len(buffer) < self.need:
            return
        done_at = time.perf_counter()
        run = self.run
        if run.measure_start <= done_at < run.measure_end:
            run.latencies.append(done_at - self.sent_at)
            run.statuses[self.status] += 1
        del buffer[: self.need]
        self.need = None
        if done_at < run.measure_end:
            self.in_flight = False
            run.busy -= 1
            self.send()
        else:
            self._finished()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.run.broken += 1
            self._finished()


async def run_load(
    target: Target,
    *,
    connections: int,
    warmup_s: float,
    duration_s: float,
    watch_pids: dict[str, list[int]] | None = None,
) -> LoadResult:
    """Warm up for `warmup_s`, then measure for `duration_s`; return the figures.

    `watch_pids` names groups of processes (e.g. {"server": [pid], "postgres": [...]});
    their CPU use during the measuring window is reported, in percent of one core.
    """
    loop = asyncio.get_running_loop()
    begin = time.perf_counter()
    measure_start = begin + warmup_s
    measure_end = measure_start + duration_s
    run = _Run(target, measure_start, measure_end)
    conns: list[_Connection] = []
    for _ in range(connections):
        _transport, proto = await loop.create_connection(
            lambda: _Connection(run), target.host, target.port
        )
        conns.append(proto)
    for conn in conns:
        conn.send()

    await asyncio.sleep(max(0.0, measure_start - time.perf_counter()))
    watch = CpuWatch(watch_pids or {}, own_name="load generator")
    await asyncio.sleep(max(0.0, measure_end - time.perf_counter()))
    cpu = watch.stop()
    # Let the requests in flight finish so the next measurement starts on a quiet server.
    if run.busy:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.idle), timeout=30)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()

    sample = sorted(run.latencies)
    requests = len(sample)
    expected = run.statuses.get(target.expect_status, 0)
    ms = [v * 1000 for v in sample]
    return LoadResult(
        target=target.name,
        connections=connections,
        duration_s=duration_s,
        requests=requests,
        errors=requests - expected + run.broken,
        statuses={str(k): v for k, v in sorted(run.statuses.items())},
        rps=requests / duration_s,
        latency_ms={
            "p50": percentile(ms, 50),
            "p95": percentile(ms, 95),
            "p99": percentile(ms, 99),
            "mean": sum(ms) / requests if requests else math.nan,
            "max": ms[-1] if ms else math.nan,
        },
        cpu_percent=cpu,
    )


# --- CPU accounting of the processes under test ----------------------------------------------


def _cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) of each process in each group and of their children."""
    snapshot: dict[str, dict[int, float]] = {}
    for name, pids in groups.items():
        seen: dict[int, float] = {}
        for pid in pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                seen[proc.pid] = times.user + times.system
        snapshot[name] = seen
    return snapshot


class CpuWatch:
    """CPU used by named process groups (and their children), by this process, and by
    everything else on the machine, from now until stop(); in percent of one core."""

    def __init__(self, groups: dict[str, list[int]], own_name: str = "driver") -> None:
        self.groups = groups
        self.own_name = own_name
        self.before = _cpu_snapshot(groups)
        self.machine_before = _machine_busy()
        self.own_before = time.process_time()
        self.wall_before = time.perf_counter()

    def stop(self) -> dict[str, float]:
        after = _cpu_snapshot(self.groups)
        machine = _machine_busy() - self.machine_before
        own = time.process_time() - self.own_before
        wall = time.perf_counter() - self.wall_before
        cpu = {name: _cpu_delta(self.before[name], after[name]) / wall * 100 for name in after}
        cpu[self.own_name] = own / wall * 100
        # Everything else that ran meanwhile: other users' processes, Redis, the kernel...
        cpu["machine"] = machine / wall * 100
        cpu["other"] = max(0.0, cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine"))
        return cpu


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores), since boot."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")  # guest is inside user/nice
    return sum(getattr(times, name, 0.0) for name in busy)


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def pid_from_file(path: Path) -> int | None:
    """The pid on the first line of a pid file (postmaster.pid, redis.pid), if readable."""
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (uvicorn[standard] brings it): the cheapest client loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cpu_count() -> int:
    return os.cpu_count() or 1
