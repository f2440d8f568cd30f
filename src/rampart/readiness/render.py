"""The readiness table for people, and the JSON document for CI."""

from __future__ import annotations

import json
from datetime import datetime

from rich.console import Console
from rich.table import Table

from rampart.readiness.model import Result, Status, human_age, verdict

STYLE = {Status.GO: "green", Status.WARN: "yellow", Status.NO_GO: "red"}


def table(results: list[Result], now: datetime, console: Console, strict: bool = False) -> None:
    grid = Table(show_lines=True, expand=False)
    for column in ("area", "check", "status", "evidence (figure; age; source)", "fix"):
        grid.add_column(column, overflow="fold")
    for r in results:
        age = "-" if r.evidence.startswith("not available") else _age(r, now)
        evidence = f"{r.evidence}\n[dim]{age} · {r.source}[/dim]"
        fix = f"{r.fix}\n[dim]{r.doc}[/dim]" if r.fix or r.doc else ""
        grid.add_row(
            r.area,
            r.check,
            f"[{STYLE[r.status]}]{r.status}[/{STYLE[r.status]}]",
            _escape(evidence),
            _escape(fix),
        )
    console.print(grid)
    overall = verdict(results, strict)
    counted = {s: sum(1 for r in results if r.status == s) for s in Status}
    console.print(
        f"[bold {STYLE[overall]}]{overall}[/]: {counted[Status.GO]} go, "
        f"{counted[Status.WARN]} warn, {counted[Status.NO_GO]} no-go"
        + ("" if strict else " (--allow-warn: warn does not fail)")
    )


def _age(result: Result, now: datetime) -> str:
    """How old the evidence is: `live` when the check measured it just now."""
    age = result.age(now)
    return "live" if age is None else f"{human_age(age)} old"


def _escape(text: str) -> str:
    """Markup only where we put it: `[` in evidence (an IPv6 host, a list) stays text."""
    from rich.markup import escape

    kept = {"[dim]": "\0d", "[/dim]": "\0e"}
    for tag, mark in kept.items():
        text = text.replace(tag, mark)
    text = escape(text)
    for tag, mark in kept.items():
        text = text.replace(mark, tag)
    return text


def as_json(results: list[Result], now: datetime, strict: bool = False) -> str:
    return json.dumps(
        {
            "verdict": str(verdict(results, strict)),
            "strict": strict,
            "checked_at": now.isoformat(),
            "checks": [r.as_json(now) for r in results],
        },
        indent=2,
    )
