"""`rampart trace TRACE_ID`: what happened under one trace id, in time order.

Two sources, merged into one timeline:

- the JSON log files of the API, worker and relay (`LOG_FILE`; `rampart up` writes
  `<RAMPART_HOME>/logs/{api,worker,relay}.log`), rotated files (`api.log.1`, ...) included.
  A line belongs to the trace when its `trace_id` is the id asked for, or its
  `request_id` or `client_trace_id` is (ids a client chose: an X-Request-ID, an untrusted
  caller's traceparent); the traces such lines belong to are then shown too;
- the database, across tenants, through `app.trace_lookup(trace_id)` (migration 0006):
  assessments, jobs (created, started, finished), outbox rows (enqueued, published), dead
  letters (quarantined, replayed, discarded), audit and billing events.

A client can choose its request id, and a trusted gateway may pass a caller's trace id on:
two tenants can end up under one id, by accident or on purpose (to plant events in another
tenant's incident timeline). So every event carries its tenant (a log line without one
takes its span's), says how it was found (`matched_by`: trace_id, request_id,
client_trace_id, or trace_of_match for the rest of a trace a client-chosen id led to), and
a timeline with more than one tenant says so and is shown per tenant: never merged
silently.

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


# How an event was found: by the id asked for as our trace id, or through an id a client
# chose (then the rest of that request's trace is `trace_of_match`).
BY_TRACE_ID = "trace_id"
CLIENT_KEYS = ("request_id", "client_trace_id")
TRACE_OF_MATCH = "trace_of_match"


@dataclass
class Entry:
    at: datetime
    source: str  # api, worker, relay (the line's service) or db
    event: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the file, or the database
    order: int = 0  # position in its source, to keep ties stable
    trace_id: str | None = None
    span_id: str | None = None
    tenant_id: str | None = None  # its own, or its span's
    matched_by: str = BY_TRACE_ID
    cross_tenant: bool = False  # the timeline holds events of more than one tenant

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "source": self.source,
            "event": self.event,
            "level": self.level,
            "origin": self.origin,
            **self.fields,
            "trace_id": self.trace_id,
            "tenant_id": self.tenant_id,
            "matched_by": self.matched_by,
            "cross_tenant": self.cross_tenant,
        }


@dataclass
class Timeline:
    trace_id: str
    entries: list[Entry]
    files: list[Path]
    trace_ids: set[str]
    problems: list[str]
    database: bool = False  # searched successfully

    def tenants(self) -> dict[str | None, list[Entry]]:
        """The events per tenant (None: no tenant known), the asked trace's own first."""
        groups: dict[str | None, list[Entry]] = {}
        for entry in self.entries:
            groups.setdefault(entry.tenant_id, []).append(entry)

        def rank(item: tuple[str | None, list[Entry]]) -> tuple[int, int]:
            tenant, entries = item
            own = any(e.matched_by == BY_TRACE_ID for e in entries)
            return (0 if own else 1, 1 if tenant is None else 0)

        return dict(sorted(groups.items(), key=rank))


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


def _scan(files: Iterable[Path], needles: set[str], pick) -> Iterator[tuple[Path, dict]]:
    """The JSON lines holding any of `needles` (a substring test before any parsing) for
    which `pick(line)` is true."""
    for path in files:
        try:
            handle = path.open(encoding="utf-8", errors="replace")
        except OSError:
            continue
        with handle:
            for raw in handle:
                if not any(needle in raw for needle in needles):
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict) and pick(line):
                    yield path, line


def _how(line: dict, wanted: str, traces: set[str]) -> str | None:
    if line.get("trace_id") == wanted:
        return BY_TRACE_ID
    for key in CLIENT_KEYS:
        if line.get(key) == wanted:
            return key
    if line.get("trace_id") in traces:
        return TRACE_OF_MATCH
    return None


def _entry(path: Path, line: dict, matched_by: str, order: int) -> Entry | None:
    at = _parse_time(line.get("timestamp"))
    if at is None:
        return None
    fields = {k: v for k, v in line.items() if k not in _HIDDEN}
    if isinstance(fields.get("exception"), str):  # the traceback's last line
        fields["exception"] = fields["exception"].strip().splitlines()[-1]
    tenant = line.get("tenant_id")
    return Entry(
        at=at,
        source=str(line.get("service") or path.name.split(".")[0]),
        event=str(line.get("event", "?")),
        level=str(line.get("level", "info")),
        fields=fields,
        origin=path.name,
        order=order,
        trace_id=line.get("trace_id") if isinstance(line.get("trace_id"), str) else None,
        span_id=line.get("span_id") if isinstance(line.get("span_id"), str) else None,
        tenant_id=tenant if isinstance(tenant, str) and tenant else None,
        matched_by=matched_by,
    )


def from_logs(trace_id: str, files: Iterable[Path]) -> tuple[list[Entry], set[str]]:
    """Log lines under `trace_id` (as trace id, request id or client trace id), the lines of
    the traces a client-chosen match led to, and the trace ids they all carry."""
    files = list(files)
    entries: list[Entry] = []
    trace_ids: set[str] = set()
    led_to: set[str] = set()
    for path, line in _scan(files, {trace_id}, lambda line: _how(line, trace_id, set())):
        how = _how(line, trace_id, set())
        entry = _entry(path, line, how or BY_TRACE_ID, len(entries) + 1)
        if entry is None:
            continue
        entries.append(entry)
        if entry.trace_id:
            trace_ids.add(entry.trace_id)
            if how in CLIENT_KEYS and entry.trace_id != trace_id:
                led_to.add(entry.trace_id)
    if led_to:  # the rest of those traces (a worker's lines carry the trace id only)

        def rest(line: dict) -> bool:
            return line.get("trace_id") in led_to and _how(line, trace_id, set()) is None

        for path, line in _scan(files, led_to, rest):
            entry = _entry(path, line, TRACE_OF_MATCH, len(entries) + 1)
            if entry is not None:
                entries.append(entry)
    return entries, trace_ids


def from_database(trace_ids: Iterable[str], asked: str | None = None) -> list[Entry]:
    """Rows under these trace ids, across tenants (app.trace_lookup, migration 0006; the
    operator's role, OPERATOR_DATABASE_URL)."""
    return asyncio.run(_from_database(sorted(trace_ids), asked))


async def _from_database(trace_ids: list[str], asked: str | None) -> list[Entry]:
    from rampart.kit.db.operator import operator_connection

    entries: list[Entry] = []
    async with operator_connection() as conn:
        await conn.execute("SET LOCAL statement_timeout = 5000")
        for trace_id in trace_ids:
            rows = await conn.fetch(
                "SELECT * FROM app.trace_lookup($1) WHERE at IS NOT NULL", trace_id
            )
            for order, row in enumerate(rows):
                tenant = str(row["tenant_id"]) if row["tenant_id"] is not None else None
                entries.append(
                    Entry(
                        at=row["at"].astimezone(UTC),
                        source="db",
                        event=f"{row['kind']}.{row['status']}",
                        level="error" if row["status"] in ("quarantined", "failed") else "info",
                        fields={"id": row["id"], "detail": row["detail"], "tenant_id": tenant},
                        origin="database",
                        order=order,
                        trace_id=trace_id,
                        tenant_id=tenant,
                        matched_by=(
                            BY_TRACE_ID if asked is None or trace_id == asked else TRACE_OF_MATCH
                        ),
                    )
                )
    return entries


def _attribute_tenants(entries: list[Entry]) -> None:
    """A log line without a tenant (the access log line, say) takes its span's."""
    by_span = {
        (e.trace_id, e.span_id): e.tenant_id
        for e in entries
        if e.tenant_id and e.span_id and e.trace_id
    }
    for entry in entries:
        if entry.tenant_id is None and entry.span_id:
            entry.tenant_id = by_span.get((entry.trace_id, entry.span_id))


def _cross_tenant(timeline: Timeline) -> None:
    groups = timeline.tenants()
    tenants = [t for t in groups if t is not None]
    if len(tenants) > 1:
        for entry in timeline.entries:
            entry.cross_tenant = True
        counts = ", ".join(f"{t} ({len(groups[t])} events)" for t in tenants)
        timeline.problems.append(
            f"events of {len(tenants)} tenants under {timeline.trace_id}: {counts}. A "
            "client-chosen id (X-Request-ID, a client's trace id) or a trace id passed on by a "
            "trusted gateway was used by more than one tenant, by accident or to plant events "
            "in another tenant's timeline: shown per tenant below; check which tenant the "
            "incident is about before acting on it"
        )
    chosen = sorted({e.matched_by for e in timeline.entries} & set(CLIENT_KEYS))
    if chosen:
        traces = sorted(
            {e.trace_id for e in timeline.entries if e.matched_by in CLIENT_KEYS and e.trace_id}
        )
        timeline.problems.append(
            f"{timeline.trace_id} matched as a client-chosen {' and '.join(chosen)} (any "
            f"caller can send it) in trace(s) {', '.join(traces)}"
        )


def gather(trace_id: str, locations: Iterable[Path], *, database: bool = True) -> Timeline:
    files = log_files(locations)
    entries, trace_ids = from_logs(trace_id, files)
    trace_ids.add(trace_id)
    problems: list[str] = []
    searched = False
    if database:
        try:
            entries += from_database(trace_ids, trace_id)
            searched = True
        except Exception as exc:  # the logs alone are still worth showing
            problems.append(f"database not searched ({type(exc).__name__}: {exc})"[:300])
    _attribute_tenants(entries)
    # Stable: same instant → database rows, then log lines in file order.
    entries.sort(key=lambda e: (e.at, e.source != "db", e.order))
    timeline = Timeline(trace_id, entries, files, trace_ids, problems, searched)
    _cross_tenant(timeline)
    return timeline


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
    groups = timeline.tenants()
    if len([t for t in groups if t is not None]) < 2:
        _render_entries(timeline.entries, timeline.entries[0].at, console)
        return
    first = timeline.entries[0].at
    for tenant, entries in groups.items():
        console.print(Text(_group_title(tenant, entries), style="bold magenta"))
        _render_entries(entries, first, console)


def _group_title(tenant: str | None, entries: list[Entry]) -> str:
    who = f"tenant {tenant}" if tenant else "no tenant known"
    how = sorted({e.matched_by for e in entries})
    if BY_TRACE_ID in how:
        found = "by trace id"
    else:
        traces = sorted({e.trace_id for e in entries if e.trace_id})
        chosen = " and ".join(k for k in CLIENT_KEYS if k in how) or "a client-chosen id"
        found = f"found through a client-chosen {chosen}; its trace {', '.join(traces)}"
    return f"── {who} ({len(entries)} events; {found})"


def _render_entries(entries: list[Entry], first: datetime, console: Console) -> None:
    day = None
    for entry in entries:
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
