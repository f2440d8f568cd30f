"""`rampart trace TRACE_ID`: what happened under one trace id, in time order.

Two sources, merged into one timeline:

- the JSON log files of the API, worker and relay (`LOG_FILE`; `rampart up` writes
  `<RAMPART_HOME>/logs/{api,worker,relay}.log`), rotated files (`api.log.1`, ...) included.
  A line belongs to the trace when its `trace_id` is the id asked for, or its
  `request_id` is (a client's own X-Request-ID; its trace ids are then looked up too);
- the database, across tenants, through `app.trace_lookup(trace_id)` (migration 0006):
  assessments, jobs (created, started, finished), outbox rows (enqueued, published), dead
  letters (quarantined, replayed, discarded), audit and billing events.

Our own module: no library reads structlog JSON lines and database rows into one timeline.
Lines are filtered by a substring test before any JSON parsing, so large files stay cheap.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

_LOG_NAME = re.compile(r".*\.log(\.\d+)?$")
# Keys every line has, or that the timeline shows elsewhere.
_HIDDEN = {"timestamp", "level", "event", "service", "env", "version", "trace_id", "span_id"}
# Shown first, in this order; the rest follow alphabetically.
_FIRST = (
    "method",
    "route",
    "status",
    "duration_ms",
    "task",
    "job_type",
    "job_id",
    "attempt",
    "assessment_id",
    "roadmap_id",
    "provider",
    "outcome",
    "error_type",
    "error",
    "reason",
    "detail",
)
_SOURCE_STYLE = {"api": "cyan", "relay": "magenta", "worker": "green", "db": "yellow"}
_LEVEL_STYLE = {"error": "bold red", "critical": "bold red", "warning": "yellow"}


@dataclass
class Entry:
    at: datetime
    source: str  # api, worker, relay (the line's service) or db
    event: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the file, or the database
    order: int = 0  # position in its source, to keep ties stable

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "source": self.source,
            "event": self.event,
            "level": self.level,
            "origin": self.origin,
            **self.fields,
        }


@dataclass
class Timeline:
    trace_id: str
    entries: list[Entry]
    files: list[Path]
    trace_ids: set[str]
    problems: list[str]
    database: bool = False  # searched successfully


def log_files(locations: Iterable[Path]) -> list[Path]:
    """The log files in these directories (or these files), rotated ones included."""
    found: list[Path] = []
    for location in locations:
        if location.is_file():
            found.append(location)
        elif location.is_dir():
            found.extend(
                sorted(p for p in location.iterdir() if p.is_file() and _LOG_NAME.match(p.name))
            )
    return found


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_logs(trace_id: str, files: Iterable[Path]) -> tuple[list[Entry], set[str]]:
    """Log lines under `trace_id` (as trace id or request id), and the trace ids they carry."""
    entries: list[Entry] = []
    trace_ids: set[str] = set()
    order = 0
    for path in files:
        try:
            handle = path.open(encoding="utf-8", errors="replace")
        except OSError:
            continue
        with handle:
            for raw in handle:
                if trace_id not in raw:
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(line, dict):
                    continue
                if line.get("trace_id") != trace_id and line.get("request_id") != trace_id:
                    continue
                at = _parse_time(line.get("timestamp"))
                if at is None:
                    continue
                if isinstance(line.get("trace_id"), str):
                    trace_ids.add(line["trace_id"])
                order += 1
                fields = {k: v for k, v in line.items() if k not in _HIDDEN}
                if isinstance(fields.get("exception"), str):  # the traceback's last line
                    fields["exception"] = fields["exception"].strip().splitlines()[-1]
                entries.append(
                    Entry(
                        at=at,
                        source=str(line.get("service") or path.name.split(".")[0]),
                        event=str(line.get("event", "?")),
                        level=str(line.get("level", "info")),
                        fields=fields,
                        origin=path.name,
                        order=order,
                    )
                )
    return entries, trace_ids


def from_database(trace_ids: Iterable[str]) -> list[Entry]:
    """Rows under these trace ids, across tenants (app.trace_lookup, migration 0006; the
    operator's role, OPERATOR_DATABASE_URL)."""
    return asyncio.run(_from_database(sorted(trace_ids)))


async def _from_database(trace_ids: list[str]) -> list[Entry]:
    from rampart.kit.db.operator import operator_connection

    entries: list[Entry] = []
    async with operator_connection() as conn:
        await conn.execute("SET LOCAL statement_timeout = 5000")
        for trace_id in trace_ids:
            rows = await conn.fetch(
                "SELECT * FROM app.trace_lookup($1) WHERE at IS NOT NULL", trace_id
            )
            for order, row in enumerate(rows):
                entries.append(
                    Entry(
                        at=row["at"].astimezone(UTC),
                        source="db",
                        event=f"{row['kind']}.{row['status']}",
                        level="error" if row["status"] in ("quarantined", "failed") else "info",
                        fields={
                            "id": row["id"],
                            "detail": row["detail"],
                            "tenant_id": str(row["tenant_id"]),
                        },
                        origin="database",
                        order=order,
                    )
                )
    return entries


def gather(trace_id: str, locations: Iterable[Path], *, database: bool = True) -> Timeline:
    files = log_files(locations)
    entries, trace_ids = from_logs(trace_id, files)
    trace_ids.add(trace_id)
    problems: list[str] = []
    searched = False
    if database:
        try:
            entries += from_database(trace_ids)
            searched = True
        except Exception as exc:  # the logs alone are still worth showing
            problems.append(f"database not searched ({type(exc).__name__}: {exc})"[:300])
    # Stable: same instant → database rows, then log lines in file order.
    entries.sort(key=lambda e: (e.at, e.source != "db", e.order))
    return Timeline(trace_id, entries, files, trace_ids, problems, searched)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _details(fields: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in _FIRST:
        if key in fields and fields[key] not in (None, ""):
            yield key, _value(fields[key])
    for key in sorted(set(fields) - set(_FIRST)):
        if fields[key] not in (None, ""):
            yield key, _value(fields[key])


def render(timeline: Timeline, console: Console) -> None:
    """The timeline, one line per event: time, offset, source, event, key fields."""
    sources = sorted({e.source for e in timeline.entries})
    header = Text.assemble(
        ("trace ", "bold"),
        (timeline.trace_id, "bold"),
        f"  {len(timeline.entries)} event(s) from {len(timeline.files)} log file(s)"
        + (" and the database" if timeline.database else "")
        + f"  [{', '.join(sources) or 'nothing found'}]",
    )
    console.print(header)
    for problem in timeline.problems:
        console.print(Text(f"warning: {problem}", style="yellow"))
    if not timeline.entries:
        return
    first = timeline.entries[0].at
    day = None
    for entry in timeline.entries:
        if entry.at.date() != day:
            day = entry.at.date()
            console.print(Text(f"{day.isoformat()} (UTC)", style="dim"))
        offset_ms = (entry.at - first).total_seconds() * 1000
        line = Text()
        line.append(entry.at.strftime("%H:%M:%S.%f")[:-3])
        line.append(f"  +{offset_ms:>8.1f}ms  ", style="dim")
        line.append(f"{entry.source:<7}", style=_SOURCE_STYLE.get(entry.source, ""))
        line.append(f" {entry.event:<28}", style=_LEVEL_STYLE.get(entry.level, "bold"))
        for key, value in _details(entry.fields):
            line.append(f" {key}=", style="dim")
            line.append(value)
        console.print(line)
