"""The load and soak report: a dated JSON file (the contract `rampart readiness` reads) and
a short table on the terminal.

    <RAMPART_HOME>/reports/load/<kind>-<UTC yyyymmddTHHMMSSZ>.json

    {"kind": "load"|"soak", "started_at": ISO 8601, "finished_at": ISO 8601,
     "git_commit": str, "passed": bool,
     "scenarios": [{"name", "target_rps": float|null, "duration_s", "achieved_rps",
                    "requests", "errors", "p50_ms", "p95_ms", "p99_ms",
                    "slo": {"p99_ms", "error_rate"}, "passed", "notes"}],
     soak only: "processes": [{"name", "rss_start_kb", "rss_end_kb", "growth_pct"}],
                "db_connections": {"min", "max", "start", "end"}}

Anything else a run learned (per-step details, samples) goes under "details", which the
contract does not cover and the gate does not read.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.loadtest.slo import Slo

KINDS = ("load", "soak")
SCENARIO_KEYS = {
    "name": str, "target_rps": (float, type(None)), "duration_s": float, "achieved_rps": float,
    "requests": int, "errors": int, "p50_ms": float, "p95_ms": float, "p99_ms": float,
    "slo": dict, "passed": bool, "notes": str,
}
PROCESS_KEYS = {"name": str, "rss_start_kb": int, "rss_end_kb": int, "growth_pct": float}
CONNECTION_KEYS = ("min", "max", "start", "end")


@dataclass
class Scenario:
    name: str
    target_rps: float | None
    duration_s: float
    achieved_rps: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    slo: Slo
    passed: bool
    notes: str = ""
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "target_rps": None if self.target_rps is None else float(self.target_rps),
            "duration_s": round(float(self.duration_s), 3),
            "achieved_rps": round(float(self.achieved_rps), 2),
            "requests": int(self.requests),
            "errors": int(self.errors),
            "p50_ms": _ms(self.p50_ms),
            "p95_ms": _ms(self.p95_ms),
            "p99_ms": _ms(self.p99_ms),
            "slo": {"p99_ms": float(self.slo.p99_ms), "error_rate": float(self.slo.error_rate)},
            "passed": bool(self.passed),
            "notes": self.notes,
        }


def _ms(value: float) -> float:
    # JSON has no NaN: a scenario without a single answer reports -1 (and fails).
    return -1.0 if value is None or math.isnan(value) else round(float(value), 2)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def git_commit(root: Path | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed git command
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            cwd=root or Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=10, check=True,
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build(
    kind: str,
    started: datetime,
    finished: datetime,
    scenarios: list[Scenario],
    *,
    commit: str,
    processes: list[dict] | None = None,
    db_connections: dict[str, int] | None = None,
    extra_checks: bool = True,
) -> dict:
    """The report document. `passed` needs every scenario passed and `extra_checks` (the
    soak's memory and connection bounds)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    doc: dict = {
        "kind": kind,
        "started_at": iso(started),
        "finished_at": iso(finished),
        "git_commit": commit,
        "passed": bool(scenarios) and all(s.passed for s in scenarios) and extra_checks,
        "scenarios": [s.as_dict() for s in scenarios],
    }
    if kind == "soak":
        doc["processes"] = processes or []
        doc["db_connections"] = db_connections or {k: 0 for k in CONNECTION_KEYS}
    details = {s.name: s.details for s in scenarios if s.details}
    if details:
        doc["details"] = details
    return doc


def problems(doc: dict) -> list[str]:
    """What in `doc` breaks the contract (empty: it holds)."""
    found = []
    for key, kind in (("kind", str), ("started_at", str), ("finished_at", str),
                      ("git_commit", str), ("passed", bool), ("scenarios", list)):
        if not isinstance(doc.get(key), kind):
            found.append(f"{key}: missing or not {kind.__name__}")
    if doc.get("kind") not in KINDS:
        found.append(f"kind: not one of {KINDS}")
    for i, scenario in enumerate(doc.get("scenarios") or []):
        for key, kind in SCENARIO_KEYS.items():
            value = scenario.get(key)
            if key not in scenario or not isinstance(value, kind) or (
                isinstance(value, bool) and kind is not bool and kind is not int
            ):
                found.append(f"scenarios[{i}].{key}: missing or wrong type")
        slo = scenario.get("slo") or {}
        if not all(isinstance(slo.get(k), float) for k in ("p99_ms", "error_rate")):
            found.append(f"scenarios[{i}].slo: needs float p99_ms and error_rate")
    if doc.get("kind") == "soak":
        for i, proc in enumerate(doc.get("processes") or []):
            for key, kind in PROCESS_KEYS.items():
                if not isinstance(proc.get(key), kind):
                    found.append(f"processes[{i}].{key}: missing or wrong type")
        if not isinstance(doc.get("processes"), list):
            found.append("processes: missing")
        conns = doc.get("db_connections")
        if not isinstance(conns, dict) or not all(
            isinstance(conns.get(k), int) for k in CONNECTION_KEYS
        ):
            found.append("db_connections: needs int min, max, start, end")
    return found


def write(home: Path, doc: dict, finished: datetime) -> Path:
    """Write `doc` under `<home>/reports/load/` (written aside, then renamed)."""
    broken = problems(doc)
    if broken:
        raise ValueError("report breaks the contract: " + "; ".join(broken))
    folder = Path(home) / "reports" / "load"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{doc['kind']}-{stamp(finished)}.json"
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(partial, path)
    return path


def newest(home: Path, kind: str) -> Path | None:
    """The newest report of `kind` (the stamp sorts as time does)."""
    found = sorted((Path(home) / "reports" / "load").glob(f"{kind}-*.json"))
    return found[-1] if found else None


def table(doc: dict) -> Table:
    out = Table(title=f"{doc['kind']}: {'PASSED' if doc['passed'] else 'FAILED'}"
                f"  ({doc['started_at']} → {doc['finished_at']})")
    for column in ("scenario", "target/s", "achieved/s", "requests", "errors",
                   "p50 ms", "p95 ms", "p99 ms", "SLO p99 / err", "pass"):
        out.add_column(column, justify="left" if column == "scenario" else "right")
    for s in doc["scenarios"]:
        out.add_row(
            s["name"],
            "-" if s["target_rps"] is None else f"{s['target_rps']:g}",
            f"{s['achieved_rps']:.1f}", str(s["requests"]), str(s["errors"]),
            f"{s['p50_ms']:.1f}", f"{s['p95_ms']:.1f}", f"{s['p99_ms']:.1f}",
            f"{s['slo']['p99_ms']:g} / {s['slo']['error_rate']:.1%}",
            "yes" if s["passed"] else "NO",
        )
    return out


def show(doc: dict, path: Path | None, console: Console | None = None) -> None:
    console = console or Console()
    console.print(table(doc))
    for s in doc["scenarios"]:
        if s["notes"]:
            console.print(f"[bold]{s['name']}[/bold]: {s['notes']}", highlight=False)
    if doc["kind"] == "soak":
        procs = Table(title="soak: memory (RSS) per process")
        for column in ("process", "start kB", "end kB", "growth %"):
            procs.add_column(column, justify="left" if column == "process" else "right")
        for p in doc["processes"]:
            procs.add_row(p["name"], str(p["rss_start_kb"]), str(p["rss_end_kb"]),
                          f"{p['growth_pct']:+.1f}")
        console.print(procs)
        c = doc["db_connections"]
        console.print(f"database connections: start {c['start']}, end {c['end']}, "
                      f"min {c['min']}, max {c['max']}", highlight=False)
    if path is not None:
        console.print(f"report: {path}", highlight=False)
