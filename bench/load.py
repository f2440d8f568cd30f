"""A small HTTP/1.1 load generator on keep-alive connections, in two modes:

- closed loop (`run_load`): N connections, one request in flight on each; a connection
  sends its next request as soon as the answer to the last one is in. Latency = request
  written → last byte read.
- open loop (`run_open_loop`): requests are scheduled at a fixed arrival rate, whatever
  the server does; each goes out on the first free connection, and waits (client side)
  while all are busy. Latency = scheduled send time → last byte read, so a slow server is
  charged for the requests it kept waiting (no coordinated omission).

Why our own and not httpx or locust: on a 2-core machine the client shares the CPU with the
server and Postgres, so it must be cheap. This one writes pre-built requests on a raw
asyncio transport (uvloop when available) and parses only the status line and
Content-Length of the answer. That is all it supports: responses must carry Content-Length
(FastAPI/uvicorn JSON responses do); chunked bodies are counted as errors. Percentiles are
exact (nearest rank over every request).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import Counter, deque
from collections.abc import Sequence
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


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50 p95 p99 mean max, in ms, of a sample in seconds."""
    ms = sorted(v * 1000 for v in seconds)
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms) if ms else math.nan,
        "max": ms[-1] if ms else math.nan,
    }


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
    cpu_window_s: float = 0.0  # how long the CPU was watched
    offered_rps: float | None = None  # open loop: the scheduled arrival rate
    status_of: list[int] | None = None  # open loop: each request's status (0: no answer)

    def cpu_ms_per_request(self, group: str = "server") -> float | None:
        """CPU time of a process group per request answered while it was watched."""
        if group not in self.cpu_percent or not self.requests:
            return None
        return self.cpu_percent[group] / 100 * self.cpu_window_s / self.requests * 1000

    def as_dict(self) -> dict:
        out = {
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
        server_ms = self.cpu_ms_per_request()
        if server_ms is not None:
            out["server_cpu_ms_per_request"] = round(server_ms, 3)
        if self.offered_rps is not None:
            out["offered_rps"] = self.offered_rps
        return out


class _Connection(asyncio.Protocol):
    """One keep-alive connection; tells its run about each answer (or its loss)."""

    def __init__(self, run: _ClosedRun | _OpenRun) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.need: int | None = None
        self.status = 0
        self.started_at = 0.0  # closed loop: when sent; open loop: when scheduled
        self.index = -1  # open loop: which request is in flight
        self.in_flight = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, started_at: float, index: int = -1) -> None:
        self.in_flight = True
        self.started_at = started_at
        self.index = index
        self.transport.write(request)  # type: ignore[union-attr]

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
        del buffer[: self.need]
        self.need = None
        self.in_flight = False
        self.run.answered(self, self.status, time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.in_flight:
            self.in_flight = False
            self.run.broke(self)
        self.run.lost(self)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()


async def _connect(run: _ClosedRun | _OpenRun, target: Target, n: int) -> list[_Connection]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        _transport, proto = await loop.create_connection(
            lambda: _Connection(run), target.host, target.port
        )
        conns.append(proto)
    return conns


def _close(conns: list[_Connection]) -> None:
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()


class _ClosedRun:
    """Every connection resends as soon as it is answered, until the window ends."""

    def __init__(self, target: Target, measure_start: float, measure_end: float) -> None:
        self.request = target.request
        self.measure_start = measure_start
        self.measure_end = measure_end
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.broken = 0
        self.busy = 0
        self.idle = asyncio.get_running_loop().create_future()

    def start(self, conn: _Connection) -> None:
        self.busy += 1
        conn.send(self.request, time.perf_counter())

    def _stopped(self) -> None:
        self.busy -= 1
        if self.busy == 0 and not self.idle.done() and time.perf_counter() >= self.measure_end:
            self.idle.set_result(None)

    def answered(self, conn: _Connection, status: int, done_at: float) -> None:
        if self.measure_start <= done_at < self.measure_end:
            self.latencies.append(done_at - conn.started_at)
            self.statuses[status] += 1
        if done_at < self.measure_end:
            conn.send(self.request, time.perf_counter())
        else:
            self._stopped()

    def broke(self, _conn: _Connection) -> None:
        self.broken += 1
        self._stopped()

    def lost(self, _conn: _Connection) -> None:
        pass  # a closed loop does not replace its connections


async def run_load(
    target: Target,
    *,
    connections: int,
    warmup_s: float,
    duration_s: float,
    watch_pids: dict[str, list[int]] | None = None,
) -> LoadResult:
    """Closed loop: warm up for `warmup_s`, then measure for `duration_s`.

    `watch_pids` names groups of processes (e.g. {"server": [pid], "postgres": [...]});
    their CPU use during the measuring window is reported, in percent of one core.
    """
    begin = time.perf_counter()
    measure_start = begin + warmup_s
    measure_end = measure_start + duration_s
    run = _ClosedRun(target, measure_start, measure_end)
    conns = await _connect(run, target, connections)
    for conn in conns:
        run.start(conn)

    await asyncio.sleep(max(0.0, measure_start - time.perf_counter()))
    watch = CpuWatch(watch_pids or {}, own_name="load generator")
    await asyncio.sleep(max(0.0, measure_end - time.perf_counter()))
    cpu = watch.stop()
    # Let the requests in flight finish so the next measurement starts on a quiet server.
    if run.busy:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.idle), timeout=30)
    _close(conns)

    requests = len(run.latencies)
    return LoadResult(
        target=target.name,
        connections=connections,
        duration_s=duration_s,
        requests=requests,
        errors=requests - run.statuses.get(target.expect_status, 0) + run.broken,
        statuses={str(k): v for k, v in sorted(run.statuses.items())},
        rps=requests / duration_s,
        latency_ms=latency_summary(run.latencies),
        cpu_percent=cpu,
        cpu_window_s=watch.wall,
    )


class _OpenRun:
    """Requests arrive on a schedule; a free connection takes the oldest waiting one. A
    connection that closes (keep-alive timeout, a break) is replaced by a new one."""

    def __init__(self, total: int, target: Target | None = None) -> None:
        self.total = total
        self.target = target
        self.conns: list[_Connection] = []  # every connection opened, for the final close
        self.closing = False
        self.reconnects = 0
        # Idle connections, the longest idle first: a run uses all of them in turn, so none
        # sits idle long enough for the server's keep-alive timeout (uvicorn: 5 s) to close
        # it just as a request goes out on it.
        self.free: deque[_Connection] = deque()
        self.waiting: deque[tuple[bytes, float, int]] = deque()
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.status_of = [0] * total  # per request: its answer's status, 0 if none
        self.broken = 0
        self.last_done = 0.0
        self.all_done = asyncio.get_running_loop().create_future()

    def arrive(self, request: bytes, scheduled_at: float, index: int) -> None:
        while self.free:
            conn = self.free.popleft()
            if conn.usable():
                conn.send(request, scheduled_at, index)
                return
        self.waiting.append((request, scheduled_at, index))

    def lost(self, conn: _Connection) -> None:
        """A connection closed (the server's keep-alive timeout on an idle one, or a break):
        open another in its place, so a long run keeps its number of connections."""
        with contextlib.suppress(ValueError):
            self.free.remove(conn)
        if self.closing or self.target is None:
            return
        self.reconnects += 1
        asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        target = self.target
        try:
            _transport, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self), target.host, target.port  # type: ignore[union-attr]
            )
        except OSError:
            return  # the pool shrinks by one; waiting requests go out on the others
        if self.closing:
            conn.transport.close()  # type: ignore[union-attr]
            return
        self.conns.append(conn)
        self._next(conn)

    def _next(self, conn: _Connection | None) -> None:
        if conn is not None and conn.usable():
            if self.waiting:
                conn.send(*self.waiting.popleft())
            else:
                self.free.append(conn)
        if len(self.latencies) + self.broken >= self.total and not self.all_done.done():
            self.all_done.set_result(None)

    def answered(self, conn: _Connection, status: int, done_at: float) -> None:
        self.latencies.append(done_at - conn.started_at)
        self.statuses[status] += 1
        self.status_of[conn.index] = status
        self.last_done = done_at
        self._next(conn)

    def broke(self, _conn: _Connection) -> None:
        self.broken += 1  # its request is lost; the connection is not reused
        self._next(None)


async def run_open_loop(
    target: Target,
    requests: Sequence[bytes],
    *,
    rate: float,
    connections: int,
    watch_pids: dict[str, list[int]] | None = None,
    drain_timeout_s: float = 60.0,
) -> LoadResult:
    """Open loop: send `requests` in order, request i scheduled at start + i / `rate`.

    Every request is answered (or the connection breaks, or `drain_timeout_s` passes after
    the last one was scheduled). `rps` is the achieved rate: answers with the expected
    status ÷ (last answer − first scheduled send); `duration_s` is that span; `status_of`
    the status each request got, in order.
    """
    run = _OpenRun(len(requests), target)
    conns = await _connect(run, target, connections)
    run.conns = list(conns)
    run.free = deque(conns)
    watch = CpuWatch(watch_pids or {}, own_name="load generator")
    start = time.perf_counter()
    for i, request in enumerate(requests):
        scheduled_at = start + i / rate
        delay = scheduled_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        run.arrive(request, scheduled_at, i)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(run.all_done), timeout=drain_timeout_s)
    cpu = watch.stop()
    run.closing = True
    _close(run.conns)

    answered = len(run.latencies)
    ok = run.statuses.get(target.expect_status, 0)
    span = max(run.last_done - start, 1e-9)
    return LoadResult(
        target=target.name,
        connections=connections,
        duration_s=span,
        requests=answered,
        errors=len(requests) - ok,  # other statuses, broken connections, never answered
        statuses={str(k): v for k, v in sorted(run.statuses.items())},
        rps=ok / span,
        latency_ms=latency_summary(run.latencies),
        cpu_percent=cpu,
        cpu_window_s=watch.wall,
        offered_rps=rate,
        status_of=run.status_of,
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
        self.wall = 0.0  # seconds watched, once stopped

    def stop(self) -> dict[str, float]:
        after = _cpu_snapshot(self.groups)
        machine = _machine_busy() - self.machine_before
        own = time.process_time() - self.own_before
        self.wall = wall = time.perf_counter() - self.wall_before
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


def run(coroutine):
    """Run a load coroutine to completion on a fresh uvloop loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coroutine)
