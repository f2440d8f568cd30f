"""The goal table and the detail tables (stdout), and the JSON (bench-results/latest.json)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

BUSY_OTHER_PERCENT = 20.0  # "other" CPU (not ours) above this during a window: say so
WEBHOOK_GOAL_RATE = 1000
KEPT_UP = 0.99  # open loop: achieved ≥ 99 % of the offered rate counts as keeping up

_SHORT = {
    "server": "srv",
    "api": "api",
    "relay": "relay",
    "worker": "worker",
    "fake-llm": "fake",
    "postgres": "pg",
    "redis": "redis",
    "load generator": "gen",
    "driver": "driver",
    "other": "other",
}


def _cpu(cpu: dict[str, float]) -> str:
    return " ".join(f"{short} {cpu[name]:.0f}" for name, short in _SHORT.items() if name in cpu)


def _ms(value: float | None) -> str:
    if value is None or value != value:  # NaN
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _check(missed: list[str], ok: bool, what: str) -> None:
    if not ok:
        missed.append(what)


# --- goals -----------------------------------------------------------------------------------


def _http_goal(row: dict, rps: float, cpu_ms: float, p95: float) -> tuple[str, list[str]]:
    ours = row["ours"]
    cpu = ours.get("server_cpu_ms_per_request")
    missed: list[str] = []
    _check(missed, ours["rps"] >= rps, "req/s")
    _check(missed, cpu is not None and cpu <= cpu_ms, "CPU/req")
    _check(missed, ours["latency_ms"]["p95"] <= p95, "p95")
    _check(missed, ours["errors"] == 0, "errors")
    measured = (
        f"{ours['rps']:,.0f} req/s, {cpu:.2f} ms API CPU/req, "
        f"p95 {_ms(ours['latency_ms']['p95'])} ms, {ours['errors']} errors"
    )
    return measured, missed


def _ping_goal(row: dict) -> tuple[str, list[str]]:
    ours, bare = row["ours"], row["bare"]
    ratio = ours["rps"] / bare["rps"] if bare["rps"] else 0.0
    missed: list[str] = []
    _check(missed, ratio >= 0.60, "ratio")
    _check(missed, ours["errors"] == 0, "errors")
    measured = (
        f"{ours['rps']:,.0f} req/s = {ratio:.0%} of the bare GET's {bare['rps']:,.0f} "
        f"({ours.get('server_cpu_ms_per_request', 0):.2f} vs "
        f"{bare.get('server_cpu_ms_per_request', 0):.2f} ms CPU/req)"
    )
    return measured, missed


def _webhook_goal(webhooks: dict) -> tuple[str, list[str]]:
    rows = [r for r in webhooks["rows"] if r["offered_rps"] == WEBHOOK_GOAL_RATE]
    if not rows:
        return f"not measured at {WEBHOOK_GOAL_RATE}/s", ["rate"]
    row = rows[0]
    events = row["events"]
    missed: list[str] = []
    _check(missed, row["rps"] >= KEPT_UP * WEBHOOK_GOAL_RATE, "req/s")
    _check(missed, row["latency_ms"]["p99"] < 100, "p99")
    _check(missed, events["lost"] == 0 and events["doubled"] == 0, "lost/doubled")
    _check(missed, row["errors"] == 0, "errors")
    measured = (
        f"offered {WEBHOOK_GOAL_RATE:,}/s: achieved {row['rps']:,.0f}/s, "
        f"p99 {_ms(row['latency_ms']['p99'])} ms, {row['errors']} errors, "
        f"lost {events['lost']}, doubled {events['doubled']} of {events['sent']:,}"
    )
    return measured, missed


def _pipeline_goal(pipe: dict, noop: dict) -> tuple[str, list[str]]:
    ratio = pipe["assessments_per_s"] / noop["tasks_per_s"]
    missed: list[str] = []
    _check(missed, ratio >= 0.20, "ratio")
    _check(missed, pipe["failed"] == 0, "failed")
    measured = (
        f"{pipe['assessments_per_s']:,.1f} assessments/s ÷ {noop['tasks_per_s']:,.0f} no-op "
        f"tasks/s ({noop['pool']}, concurrency {noop['worker_concurrency']}) = {ratio:.3f}"
        + (f"; {pipe['failed']} failed" if pipe["failed"] else "")
    )
    return measured, missed


def _llm_goal(llm: dict) -> tuple[str, list[str]]:
    in_flight = llm["max_llm_calls_in_flight"]
    missed: list[str] = []
    _check(missed, llm["assessments_per_s"] >= 25, "assessments/s")
    _check(missed, in_flight is not None and in_flight >= 100, "in flight")
    _check(missed, llm["failed"] == 0, "failed")
    per_call = llm["kb_per_call_in_flight"]
    measured = (
        f"{llm['assessments_per_s']:,.1f} assessments/s, "
        f"{in_flight if in_flight is not None else '?'} LLM calls in flight at most, "
        + (f"{per_call:,.0f} KB RSS per call in flight" if per_call is not None else "KB/call ?")
        + (f"; {llm['failed']} failed" if llm["failed"] else "")
    )
    return measured, missed


def _relay_goal(pipe: dict) -> tuple[str, list[str]]:
    score = pipe["job_latency"].get("score_assessment")
    if not score:
        return "no score job started", ["p95"]
    total = score["accepted_to_started_ms"]
    missed: list[str] = []
    _check(missed, total["p95"] is not None and total["p95"] <= 25, "p95")
    measured = (
        f"p50 {_ms(total['p50'])} ms, p95 {_ms(total['p95'])} ms over {score['jobs']} score "
        f"jobs of the offline pipeline run (accepted→published p95 "
        f"{_ms(score['accepted_to_published_ms']['p95'])} ms, published→started p95 "
        f"{_ms(score['published_to_started_ms']['p95'])} ms)"
    )
    return measured, missed


GOALS = [
    # (row, goal, inputs, how to judge them)
    ("authenticated GET /api/v1/assessments/{id}, 50 conns",
     ">= 1,000 req/s with one API process, <= 1.0 ms API CPU/req, p95 <= 100 ms",
     ("http",), lambda r: _http_goal(r["http"]["get"], 1000, 1.0, 100)),
    ("POST /api/v1/assessments (assessment + job + outbox, durable commit)",
     ">= 500 req/s, <= 2.0 ms CPU/req, p95 <= 150 ms",
     ("http",), lambda r: _http_goal(r["http"]["post"], 500, 2.0, 150)),
    ("every middleware on a trivial route (auth'd ping)",
     ">= 60 % of the bare endpoint's req/s",
     ("http",), lambda r: _ping_goal(r["http"]["ping"])),
    ("Stripe webhook ingest (verify, replay check, dedupe, persist)",
     ">= 1,000 req/s, p99 < 100 ms, 0 lost or doubled",
     ("webhooks",), lambda r: _webhook_goal(r["webhooks"])),
    ("pipeline, offline provider: assessments/s ÷ no-op Celery tasks/s",
     ">= 0.20",
     ("pipeline", "noop_threads"), lambda r: _pipeline_goal(r["pipeline"], r["noop_threads"])),
    ("pipeline with a fake LLM at 2 s per call, one worker node",
     ">= 25 assessments/s (>= 100 LLM calls in flight), memory per in-flight call stated",
     ("llm_pipeline",), lambda r: _llm_goal(r["llm_pipeline"])),
    ("accepted → worker starts (relay latency), p95",
     "<= 25 ms",
     ("pipeline",), lambda r: _relay_goal(r["pipeline"])),
]


def goals(results: dict) -> list[dict]:
    out = []
    for path, goal, inputs, judge in GOALS:
        failed = [k for k in inputs if "error" in results.get(k, {"error": "not run"})]
        if failed:
            errors = "; ".join(f"{k}: {results.get(k, {}).get('error', 'not run')}" for k in failed)
            out.append({"path": path, "goal": goal, "measured": f"error ({errors})",
                        "met": False, "missed": ["error"]})
            continue
        measured, missed = judge(results)
        out.append({"path": path, "goal": goal, "measured": measured, "met": not missed,
                    "missed": missed})
    return out


# --- rendering -------------------------------------------------------------------------------


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    return table


def render(console: Console, results: dict) -> None:
    meta = results["meta"]
    console.print()
    console.rule("[bold]Rampart benchmark")
    console.print(
        f"{meta['date']}  ·  commit {meta['commit']}  ·  os.cpu_count() = {meta['cpu_count']} "
        f"({meta['cpu_model']}), load avg at start {meta['loadavg_at_start']}  ·  "
        f"Python {meta['python']}\n"
        f"[bold]{meta['cpu_count']} cores shared[/bold] by the server under test, the load "
        "generator, Postgres and Redis (and whatever else runs: the \"other\" CPU column).\n"
        f"API: {meta['api']}\nBare: {meta['bare']}\nPostgres: {meta['postgres']}\n"
        f"Settings: {meta['settings']}"
    )
    table = _table("Goals", [("path", "left"), ("goal", "left"), ("measured", "left"),
                             ("met?", "left")])
    for goal in results["goals"]:
        met = "[green]met[/green]" if goal["met"] else (
            "[red]not met[/red] (" + ", ".join(goal["missed"]) + ")"
        )
        table.add_row(goal["path"], goal["goal"], goal["measured"], met, end_section=True)
    console.print()
    console.print(table)

    _render_http(console, results)
    _render_webhooks(console, results)
    _render_pipeline(console, results)
    _warn_busy(console, results)
    console.print(f"Total run time {results['total_s']:.0f} s.")


def _render_http(console: Console, results: dict) -> None:
    http = results.get("http", {})
    if "error" in http or not http:
        return
    meta = results["meta"]
    table = _table(
        f"HTTP, closed loop: {meta['connections']} keep-alive connections, one request in "
        f"flight on each; {meta['warmup_s']:g} s warm-up, {meta['duration_s']:g} s measured",
        [("endpoint", "left"), ("req/s", "right"), ("p50 ms", "right"), ("p95 ms", "right"),
         ("p99 ms", "right"), ("errors", "right"), ("server CPU ms/req", "right"),
         ("req/s ours/bare", "right"), ("CPU % of 1 core", "left")],
    )
    for row in ("get", "ping", "post"):
        ours, bare = http[row]["ours"], http[row]["bare"]
        for result, ratio in ((ours, f"{ours['rps'] / bare['rps']:.2f}"), (bare, "")):
            if result is bare and row == "ping":
                continue  # the same bare GET as the GET row
            lat = result["latency_ms"]
            table.add_row(
                result["target"], f"{result['rps']:,.0f}", _ms(lat["p50"]), _ms(lat["p95"]),
                _ms(lat["p99"]), str(result["errors"]),
                f"{result.get('server_cpu_ms_per_request', 0):.3f}", ratio,
                _cpu(result["cpu_percent"]), end_section=result is not ours,
            )
    console.print()
    console.print(table)


def _render_webhooks(console: Console, results: dict) -> None:
    hooks = results.get("webhooks", {})
    if "error" in hooks or not hooks:
        return
    table = _table(
        f"Stripe webhooks, open loop ({hooks['connections']} keep-alive connections; latency "
        f"from each request's scheduled send time), {hooks['duration_s']:g} s per rate, "
        f"{hooks['tenants']} tenants",
        [("offered/s", "right"), ("achieved/s", "right"), ("p50 ms", "right"),
         ("p95 ms", "right"), ("p99 ms", "right"), ("max ms", "right"),
         ("refused (statuses)", "right"), ("recorded once", "right"), ("lost", "right"),
         ("doubled", "right"),
         ("server CPU ms/req", "right"), ("CPU % of 1 core", "left")],
    )
    for row in hooks["rows"]:
        lat, events = row["latency_ms"], row["events"]
        table.add_row(
            f"{row['offered_rps']:,}", f"{row['rps']:,.0f}", _ms(lat["p50"]), _ms(lat["p95"]),
            _ms(lat["p99"]), _ms(lat["max"]), _refused(row),
            f"{events['recorded_once']:,}/{events['sent']:,}", str(events["lost"]),
            str(events["doubled"]), f"{row.get('server_cpu_ms_per_request', 0):.3f}",
            _cpu(row["cpu_percent"]),
        )
    console.print()
    console.print(table)


NOT_OURS = ("driver", "load generator", "machine", "other")


def _cpu_ms_each(measure: dict, items: int) -> str:
    """CPU of the processes under test per item (assessment, task) over the measure's
    window: the sum of their groups, and the split."""
    cpu = {k: v for k, v in measure["cpu_percent"].items() if k not in NOT_OURS}
    each = {k: v / 100 * measure["elapsed_s"] / items * 1000 for k, v in cpu.items()}
    split = ", ".join(f"{_SHORT.get(k, k)} {v:.1f}" for k, v in each.items() if v >= 0.05)
    return f"{sum(each.values()):.1f} ms CPU each ({split})"


def _refused(row: dict) -> str:
    others = {k: v for k, v in row["statuses"].items() if k != "200"}
    refused = row["events"]["refused"]
    return f"{refused} ({', '.join(f'{v}×{k}' for k, v in others.items())})" if refused else "0"


def _latency_text(job_latency: dict) -> str:
    parts = []
    for job_type, lat in job_latency.items():
        total, pub = lat["accepted_to_started_ms"], lat["accepted_to_published_ms"]
        parts.append(
            f"{job_type}: accepted→started p50 {_ms(total['p50'])} / p95 {_ms(total['p95'])} "
            f"ms (→published p95 {_ms(pub['p95'])}); {lat['retried']} retried"
        )
    return "; ".join(parts)


def _render_pipeline(console: Console, results: dict) -> None:
    table = _table("Background pipeline (same Redis broker, same Postgres)",
                   [("measure", "left"), ("figure", "right"), ("detail", "left"),
                    ("CPU % of 1 core", "left")])
    pipe = results.get("pipeline", {})
    if "error" not in pipe and pipe:
        table.add_row(
            f"pipeline, offline LLM: {pipe['assessments']} assessments POST → completed",
            f"{pipe['assessments_per_s']:,.1f} /s",
            f"{pipe['worker']}; {pipe['elapsed_s']:.2f} s ({pipe['posting_s']:.2f} s posting); "
            f"per assessment p50 {_ms(pipe['end_to_end_ms']['p50'])} ms, p95 "
            f"{_ms(pipe['end_to_end_ms']['p95'])} ms; failed {pipe['failed']}; "
            + _cpu_ms_each(pipe, pipe["assessments"]) + "; "
            + _latency_text(pipe["job_latency"]),
            _cpu(pipe["cpu_percent"]), end_section=True,
        )
    for key in ("noop_threads", "noop_prefork"):
        noop = results.get(key, {})
        if "error" in noop or not noop:
            continue
        table.add_row(
            f"ceiling: {noop['tasks']:,} no-op Celery tasks, {noop['pool']} pool, "
            f"concurrency {noop['worker_concurrency']}",
            f"{noop['tasks_per_s']:,.0f} /s",
            f"a queued backlog drained in {noop['elapsed_s']:.2f} s (after "
            f"{noop['warm_up_tasks']} warm-up tasks); " + _cpu_ms_each(noop, noop["tasks"]),
            _cpu(noop["cpu_percent"]), end_section=key == "noop_prefork",
        )
    llm = results.get("llm_pipeline", {})
    if "error" not in llm and llm:
        table.add_row(
            f"pipeline, fake LLM at {llm['llm_latency_s']:g} s per call: {llm['assessments']} "
            "assessments",
            f"{llm['assessments_per_s']:,.1f} /s",
            f"{llm['worker']}; {llm['elapsed_s']:.2f} s ({llm['posting_s']:.2f} s posting); "
            f"{llm['llm_calls']} LLM calls, at most {llm['max_llm_calls_in_flight']} in flight; "
            f"worker RSS {llm['worker_rss_idle_mb']:.0f} MB idle → {llm['worker_rss_peak_mb']:.0f}"
            f" MB peak; failed {llm['failed']}, degraded {llm['degraded']}; "
            f"per assessment p50 {_ms(llm['end_to_end_ms']['p50'])} ms; "
            + _cpu_ms_each(llm, llm["assessments"]) + "; "
            + _latency_text(llm["job_latency"]),
            _cpu(llm["cpu_percent"]),
        )
    console.print()
    console.print(table)


def _windows(results: dict) -> list[tuple[str, dict]]:
    out = []
    for row in results.get("http", {}).values():
        if isinstance(row, dict):
            out += [(row[side]["target"], row[side]["cpu_percent"]) for side in ("ours", "bare")]
    for row in results.get("webhooks", {}).get("rows", []):
        out.append((f"webhooks {row['offered_rps']}/s", row["cpu_percent"]))
    for key in ("pipeline", "noop_threads", "noop_prefork", "llm_pipeline"):
        if "cpu_percent" in results.get(key, {}):
            out.append((key, results[key]["cpu_percent"]))
    return out


def _warn_busy(console: Console, results: dict) -> None:
    busy = sorted({
        f"{name} ({cpu['other']:.0f}%)"
        for name, cpu in _windows(results)
        if cpu.get("other", 0) > BUSY_OTHER_PERCENT
    })
    if busy:
        console.print(
            "[yellow]Other processes on the machine used CPU while measuring: "
            + ", ".join(busy)
            + " of a core. Those figures are understated; rerun on a quiet machine.[/yellow]"
        )


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
