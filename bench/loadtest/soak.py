"""`make soak`: the mixed workload (plus signed Stripe webhooks) at a steady rate for a
long window, in back-to-back slices of `slice_s` (webhook signatures are only good for
the tolerance window, so each slice's requests are signed just before it). Meanwhile, every
`sample_every_s`: the RSS of each stack process's tree (/proc) and the database's client
connections (pg_stat_activity). Passes when every slice meets the soak SLO with zero
errors, no process grew beyond the bound (slo.py) between the end of the warm-up and the
end, and the connections stayed flat."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg

from bench import load
from bench.loadtest import rss, slo, workload
from bench.loadtest.report import Scenario
from bench.loadtest.scenarios import Say, mixed_tenants
from bench.loadtest.target import Stack

SOAK_WEIGHTS = {"read-one": 45, "list": 15, "me": 10, "create": 8, "upload": 4, "webhook": 18}
CONNECTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


@dataclass
class SoakConfig:
    duration_s: float = 1800.0
    rate: float = 30.0
    warmup_s: float = 60.0
    slice_s: float = 60.0
    sample_every_s: float = 10.0
    connections: int = 50


class Monitor(threading.Thread):
    def __init__(self, stack: Stack, every: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.every = stack, every
        self.start_at = time.monotonic()
        self.rss: list[tuple[float, dict[str, int | None]]] = []
        self.connections: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def sample(self) -> None:
        at = round(time.monotonic() - self.start_at, 1)
        self.rss.append((at, rss.tree_rss_kb(self.stack.pids)))
        try:
            with psycopg.connect(self.stack.superuser_url, autocommit=True,
                                 connect_timeout=10) as conn:
                self.connections.append((at, int(conn.execute(CONNECTIONS_SQL).fetchone()[0])))
        except psycopg.Error:
            pass

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sample()
            self.stopped.wait(self.every)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=60)
        self.sample()


def _slice_batch(stack: Stack, tenants: list[workload.Tenant], count: int, seed: int
                 ) -> workload.Batch:
    web = round(count * SOAK_WEIGHTS["webhook"] / sum(SOAK_WEIGHTS.values()))
    rest = {k: v for k, v in SOAK_WEIGHTS.items() if k != "webhook"}
    mixed = workload.mixed_batch(stack.api_host, stack.api_port, tenants, count - web, seed,
                                 rest)
    hooks = workload.webhook_batch(stack.api_host, stack.api_port,
                                   [t.customer for t in tenants], web, stack.webhook_secret, seed)
    # Interleave: webhooks spread evenly through the slice, order kept within each kind.
    batch = workload.Batch()
    step = count / web if web else 0
    marks = {round(i * step) for i in range(web)}
    m = h = 0
    for i in range(count):
        if i in marks and h < web:
            source, j = hooks, h
            h += 1
        elif m < len(mixed.requests):
            source, j = mixed, m
            m += 1
        else:
            source, j = hooks, h
            h += 1
        batch.add(source.requests[j], source.expected[j], source.kinds[j])
    return batch


def run_soak(stack: Stack, config: SoakConfig, say: Say
             ) -> tuple[Scenario, list[dict], dict[str, int], bool, dict]:
    total = config.warmup_s + config.duration_s
    creates = workload.creates_in(round(config.rate * total), SOAK_WEIGHTS)
    tenants = mixed_tenants(stack, creates, say)
    target = load.Target("soak", stack.api_host, stack.api_port, b"")
    monitor = Monitor(stack, config.sample_every_s)
    monitor.start()
    latencies_ok, slices, seed = True, [], 1000
    sent = errors = 0
    worst = {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    began = time.monotonic()
    measured_from: float | None = None
    all_statuses: dict[str, int] = {}
    wrong_total: dict[str, int] = {}
    while True:
        elapsed = time.monotonic() - began
        if total - elapsed < min(1.0, config.slice_s):
            break
        if measured_from is None and elapsed >= config.warmup_s:
            measured_from = time.monotonic() - monitor.start_at
        span = min(config.slice_s, total - elapsed)
        count = max(1, round(config.rate * span))
        seed += 1
        batch = _slice_batch(stack, tenants, count, seed)
        result = load.run(load.run_open_loop(target, batch.requests, rate=config.rate,
                                             connections=config.connections,
                                             drain_timeout_s=60.0))
        wrong = batch.errors(result.status_of or [0] * count)
        for k, v in wrong.items():
            wrong_total[k] = wrong_total.get(k, 0) + v
        for k, v in result.statuses.items():
            all_statuses[k] = all_statuses.get(k, 0) + v
        n_err = sum(wrong.values())
        sent += count
        errors += n_err
        lat = result.latency_ms
        for key in worst:
            worst[key] = max(worst[key], lat[key])
        slices.append({"t": round(elapsed, 1), "requests": count, "errors": n_err,
                       "p50_ms": round(lat["p50"], 2), "p99_ms": round(lat["p99"], 2),
                       "achieved_rps": round(result.rps, 2)})
        latencies_ok &= lat["p99"] <= slo.SOAK.p99_ms
        say(f"soak: +{elapsed:.0f}s of {total:.0f}s, slice p99 {lat['p99']:.0f} ms, "
            f"errors {n_err}")
    duration = time.monotonic() - began
    monitor.stop()
    measured_from = measured_from if measured_from is not None else 0.0

    processes = []
    memory_ok = True
    after_warmup = [s for s in monitor.rss if s[0] >= measured_from] or monitor.rss
    for name in stack.pids:
        values = [s[1].get(name) for s in after_warmup if s[1].get(name) is not None]
        if not values:
            continue
        start_kb, end_kb = int(values[0]), int(values[-1])
        ok = slo.memory_ok(start_kb, end_kb)
        memory_ok &= ok
        processes.append({"name": name, "rss_start_kb": start_kb, "rss_end_kb": end_kb,
                          "growth_pct": round(slo.growth_pct(start_kb, end_kb), 2)})
    conns = [c for at, c in monitor.connections if at >= measured_from] or [
        c for _, c in monitor.connections]
    connections = ({"min": min(conns), "max": max(conns), "start": conns[0], "end": conns[-1]}
                   if conns else {"min": 0, "max": 0, "start": 0, "end": 0})
    flat = slo.connections_flat(conns)
    # Percentiles per slice are exact; across the soak the worst slice's is reported.
    passed = latencies_ok and errors == 0 and sent > 0
    good = sent - errors
    notes = (f"{len(slices)} slices of {config.slice_s:g}s (first {config.warmup_s:g}s warm-up, "
             "excluded from memory and connection bounds); latency = the worst slice's "
             f"percentile; memory {'within' if memory_ok else 'OVER'} bound "
             f"(+{slo.MEMORY_GROWTH_PCT:g}% or +{slo.MEMORY_GROWTH_FLOOR_KB // 1024} MB); "
             f"connections {'without' if flat else 'WITH'} an upward trend (last third's "
             f"mean vs the first's, bound +{slo.CONNECTION_SPREAD}; min {connections['min']}, "
             f"max {connections['max']})")
    if wrong_total:
        notes += f"; wrong answers (kind:status): {workload.json_dump(wrong_total)}"
    scenario = Scenario(
        name="soak", target_rps=config.rate, duration_s=duration, achieved_rps=good / duration,
        requests=sent, errors=errors, p50_ms=worst["p50"], p95_ms=worst["p95"],
        p99_ms=worst["p99"], slo=slo.SOAK, passed=passed, notes=notes,
        details={"slices": slices, "statuses": all_statuses,
                 "rss_samples": monitor.rss[:: max(1, len(monitor.rss) // 200)],
                 "connection_samples": monitor.connections},
    )
    return scenario, processes, connections, memory_ok and flat, {}
