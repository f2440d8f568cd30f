"""Readers of the report files other tools write under <RAMPART_HOME>/reports/ (the
contracts are in docs/go-live.md, "Evidence files"):

- `load/<kind>-<yyyymmddTHHMMSSZ>.json`, kind `load` or `soak` (`make load`, the soak):
  the newest file of each kind is the one that counts.
- `bundle-scan.json`: the web app's bundle secret scan.

A file that exists but does not follow the contract raises `ReportError`: the check says
so (no-go), it never guesses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rampart.readiness.model import parse_time

LOAD_NAME = re.compile(r"^(load|soak)-(\d{8}T\d{6}Z)\.json$")


class ReportError(ValueError):
    """A report file does not follow its contract."""


@dataclass
class Scenario:
    name: str
    achieved_rps: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    slo_p99_ms: float
    slo_error_rate: float
    passed: bool

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    def misses(self) -> list[str]:
        """How this scenario misses its SLO (recomputed from the figures, not trusted from
        `passed`)."""
        found = []
        if self.requests <= 0:
            found.append(f"{self.name}: no requests")
        if self.p99_ms > self.slo_p99_ms:
            found.append(f"{self.name}: p99 {self.p99_ms:g} ms > {self.slo_p99_ms:g} ms")
        if self.error_rate > self.slo_error_rate:
            found.append(
                f"{self.name}: error rate {self.error_rate:.2%} > {self.slo_error_rate:.2%}"
            )
        if not self.passed and not found:
            found.append(f"{self.name}: marked failed by the load tool")
        return found


@dataclass
class LoadReport:
    path: Path
    kind: str
    started_at: datetime
    finished_at: datetime
    git_commit: str
    passed: bool
    scenarios: list[Scenario]
    processes: list[dict[str, Any]] = field(default_factory=list)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path.name}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path.name}: not a JSON object")
    return data


def newest_load_report(directory: Path, kind: str) -> Path | None:
    """The newest `<kind>-<UTC stamp>.json` in `directory` (by the stamp in its name)."""
    if not directory.is_dir():
        return None
    found = [
        (match.group(2), path)
        for path in directory.iterdir()
        if (match := LOAD_NAME.match(path.name)) and match.group(1) == kind
    ]
    return max(found)[1] if found else None


def read_load_report(path: Path) -> LoadReport:
    data = _load_json(path)
    try:
        scenarios = [
            Scenario(
                name=str(s["name"]),
                achieved_rps=float(s["achieved_rps"]),
                requests=int(s["requests"]),
                errors=int(s["errors"]),
                p50_ms=float(s["p50_ms"]),
                p95_ms=float(s["p95_ms"]),
                p99_ms=float(s["p99_ms"]),
                slo_p99_ms=float(s["slo"]["p99_ms"]),
                slo_error_rate=float(s["slo"]["error_rate"]),
                passed=bool(s["passed"]),
            )
            for s in data["scenarios"]
        ]
        return LoadReport(
            path=path,
            kind=str(data["kind"]),
            started_at=parse_time(data["started_at"]),
            finished_at=parse_time(data["finished_at"]),
            git_commit=str(data.get("git_commit") or ""),
            passed=bool(data["passed"]),
            scenarios=scenarios,
            processes=list(data.get("processes") or []),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"{path.name}: does not follow the load report contract ({exc!r})"
        ) from None


@dataclass
class BundleScan:
    path: Path
    scanned_at: datetime
    build_dir: str
    files: int
    findings: list[dict[str, Any]]
    clean: bool


def read_bundle_scan(path: Path) -> BundleScan:
    data = _load_json(path)
    try:
        return BundleScan(
            path=path,
            scanned_at=parse_time(data["scanned_at"]),
            build_dir=str(data["build_dir"]),
            files=int(data["files"]),
            findings=list(data["findings"]),
            clean=bool(data["clean"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"{path.name}: does not follow the bundle scan contract ({exc!r})"
        ) from None
