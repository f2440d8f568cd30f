"""The results as a rich table (stdout) and as JSON (bench-results/latest.json)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

# Goals from the performance issue: p95 at 50 concurrent connections.
BUSY_OTHER_PERCENT = 20.0  # "other" CPU (not ours) above this during a window: say so
GOALS_P95_MS = {"GET /api/v1/assessments/{id}": 300.0, "POST /api/v1/assessments": 800.0}


def _ms(value: float | None) -> str:
    if value is None or value != value:  # NaN
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _ratio(ours: float, bare: float) -> str:
    return f"{ours / bare:.2f}" if bare else "-"


_SHORT = {
    "server": "srv",
    "api": "api",
    "relay": "relay",
    "worker": "worker",
    "postgres": "pg",
    "redis": "redis",
    "load generator": "gen",
    "driver": "driver",
    "other": "other",
}


def _cpu(cpu: dict[str, float], skip: tuple[str, ...] = ("redis",)) -> str:
    return " ".join(
        f"{short} {cpu[name]:.0f}"
        for name, short in _SHORT.items()
        if name in cpu and name not in skip
    )


def goals(results: dict) -> list[dict]:
    out = []
    for pair in results["http"]:
        goal = GOALS_P95_MS.get(pair["endpoint"])
        if goal is None:
            continue
        p95 = pair["ours"]["latency_ms"]["p95"]
        met = p95 <= goal and pair["ours"]["errors"] == 0
        out.append({"endpoint": pair["endpoint"], "p95_goal_ms": goal, "p95_ms": p95, "met": met})
    return out


def render(console: Console, results: dict) -> None:
    meta = results["meta"]
    console.print()
    console.rule("[bold]Rampart benchmark")
    console.print(
        f"{meta['date']}  ·  os.cpu_count() = {meta['cpu_count']} ({meta['cpu_model']}), "
        f"load avg at start {meta['loadavg_at_start']}  ·  Python {meta['python']}\n"
        f"[bold]{meta['cpu_count']} cores shared[/bold] by the server under test, the load "
        "generator, Postgres and Redis: absolute figures are low, the ratios are the point.\n"
        f"API: {meta['api']}\nBare: {meta['bare']}\n"
        f"Postgres: {meta['postgres']}  ·  LLM provider: offline"
    )

    http = Table(
        title=f"HTTP: {meta['connections']} keep-alive connections, {meta['duration_s']:g} s "
        f"each after {meta['warmup_s']:g} s warm-up ({meta['load_generator']})",
        title_justify="left",
    )
    for name, justify in [
        ("endpoint", "left"),
        ("server", "left"),
        ("req/s", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("p99 ms", "right"),
        ("errors", "right"),
        ("req/s ours/bare", "right"),
        ("p95 ours/bare", "right"),
        ("goal p95", "right"),
        ("met?", "center"),
        ("CPU % of 1 core (2 = 200)", "left"),
    ]:
        http.add_column(name, justify=justify)  # type: ignore[arg-type]
    goal_by_endpoint = {g["endpoint"]: g for g in results["goals"]}
    for pair in results["http"]:
        ours, bare = pair["ours"], pair["bare"]
        goal = goal_by_endpoint.get(pair["endpoint"])
        met = "-"
        if goal is not None:
            met = "[green]met[/green]" if goal["met"] else "[red]not met[/red]"
        http.add_row(
            pair["endpoint"],
            "Rampart",
            f"{ours['rps']:,.0f}",
            _ms(ours["latency_ms"]["p50"]),
            _ms(ours["latency_ms"]["p95"]),
            _ms(ours["latency_ms"]["p99"]),
            str(ours["errors"]),
            _ratio(ours["rps"], bare["rps"]),
            _ratio(ours["latency_ms"]["p95"], bare["latency_ms"]["p95"]),
            f"≤ {goal['p95_goal_ms']:.0f} ms" if goal else "-",
            met,
            _cpu(ours["cpu_percent"]),
        )
        http.add_row(
            f"  ceiling: {pair['bare_endpoint']}",
            "bare FastAPI",
            f"{bare['rps']:,.0f}",
            _ms(bare["latency_ms"]["p50"]),
            _ms(bare["latency_ms"]["p95"]),
            _ms(bare["latency_ms"]["p99"]),
            str(bare["errors"]),
            "",
            "",
            "",
            "",
            _cpu(bare["cpu_percent"]),
            end_section=True,
        )
    overload = results.get("overload")
    if overload:
        lat = overload["latency_ms"]
        http.add_row(
            f"GET /api/v1/assessments/{{id}} at {overload['connections']} connections",
            "Rampart",
            f"{overload['rps']:,.0f}",
            _ms(lat["p50"]),
            _ms(lat["p95"]),
            _ms(lat["p99"]),
            str(overload["errors"]),
            "",
            "",
            "-",
            "-",
            _cpu(overload["cpu_percent"]),
        )
    console.print()
    console.print(http)
    if overload and overload["errors"]:
        console.print(
            f"[yellow]At {overload['connections']} connections: {overload['errors']} of "
            f"{overload['requests']} responses were errors ({overload['statuses']}). "
            "See docs/performance.md (threadpool vs DB pool).[/yellow]"
        )

    pipe, noop = results["pipeline"], results["celery_noop"]
    table = Table(
        title=f"Background pipeline: Celery prefork, concurrency {pipe['worker_concurrency']}, "
        "same Redis broker",
        title_justify="left",
    )
    for name, justify in [
        ("measure", "left"),
        ("figure", "right"),
        ("detail", "left"),
        ("CPU % of 1 core", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_row(
        f"pipeline: {pipe['assessments']} assessments POST → completed",
        f"{pipe['assessments_per_s']:,.1f} /s",
        f"{pipe['elapsed_s']:.2f} s from first POST to all completed ({pipe['posting_s']:.2f} s "
        f"posting); per assessment p50 {pipe['end_to_end_ms']['p50']:,.0f} ms, "
        f"p95 {pipe['end_to_end_ms']['p95']:,.0f} ms; failed {pipe['failed']}",
        _cpu(pipe.get("cpu_percent", {}), skip=()),
    )
    table.add_row(
        f"ceiling: {noop['tasks']} no-op Celery tasks",
        f"{noop['tasks_per_s']:,.0f} /s",
        f"{noop['elapsed_s']:.2f} s from first send to all done "
        f"({noop['sending_s']:.2f} s sending)",
        _cpu(noop.get("cpu_percent", {}), skip=("postgres",)),
    )
    ratio = pipe["assessments_per_s"] / noop["tasks_per_s"]
    table.add_row(
        "ratio assessments/s ÷ no-op tasks/s",
        f"{ratio:.3f}",
        f"each assessment = 2 tasks + 7 DB transactions + 2 relay hops: 2 × ratio = "
        f"{2 * ratio:.2f} of the no-op task rate",
        "",
    )
    console.print()
    console.print(table)
    console.print(
        f"\nGoals (issue): reads p95 ≤ 300 ms, writes p95 ≤ 800 ms at {meta['connections']} "
        "connections, with no errors. "
        + "; ".join(
            f"{g['endpoint']}: p95 {g['p95_ms']:,.0f} ms → {'met' if g['met'] else 'NOT met'}"
            for g in results["goals"]
        )
    )
    windows = [
        (pair[key]["target"], pair[key]["cpu_percent"])
        for pair in results["http"]
        for key in ("ours", "bare")
    ]
    windows += [("pipeline", pipe.get("cpu_percent", {}))]
    windows += [("no-op tasks", noop.get("cpu_percent", {}))]
    busy = [
        f"{name} ({cpu['other']:.0f}%)"
        for name, cpu in windows
        if cpu.get("other", 0) > BUSY_OTHER_PERCENT
    ]
    if busy:
        console.print(
            "[yellow]Other processes on the machine used CPU while measuring: "
            + ", ".join(busy)
            + " of a core. Those figures are understated; rerun on a quiet machine.[/yellow]"
        )
    console.print(f"Total run time {results['total_s']:.0f} s.")


def write_json(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def render_llm_stage(console: Console, rows: list[dict]) -> None:
    """Score + roadmap through the provider chain; the breaker-open row should sit close to
    the offline row, the hanging row near attempts × timeout + backoff, twice (two calls)."""
    table = Table(title="LLM stage of one assessment (score + roadmap), in-process")
    for column in ("situation", "samples", "median ms", "max ms", "ratio to offline"):
        table.add_column(column)
    offline = rows[0]["median_ms"] or 1e-9
    for row in rows:
        table.add_row(
            row["situation"],
            str(row["samples"]),
            f"{row['median_ms']:.2f}",
            f"{row['max_ms']:.2f}",
            f"{row['median_ms'] / offline:.1f}×",
        )
    console.print(table)


def render_llm_concurrency(console: Console, row: dict) -> None:
    """Many assessments' LLM stages at once on one event loop (issue 10: >= 100 calls in
    flight per worker node, >= 25 assessments/s with a ~2 s model)."""
    table = Table(
        title=f"LLM stages at once on one loop ({row['loop']}), "
        f"model latency {row['model_latency_s']:g} s"
    )
    for column in (
        "assessments", "calls", "most in flight", "seconds", "assessments/s",
        "RSS KiB / call in flight", "traced KiB / call in flight",
    ):
        table.add_column(column)
    table.add_row(
        str(row["assessments"]),
        str(row["calls"]),
        str(row["max_in_flight"]),
        f"{row['elapsed_s']:.2f}",
        f"{row['assessments_per_s']:.1f}",
        f"{row['rss_kib_per_in_flight_call']:.1f}",
        f"{row['traced_kib_per_in_flight_call']:.1f}",
    )
    console.print(table)
