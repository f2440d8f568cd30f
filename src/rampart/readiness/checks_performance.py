"""Performance: the newest load and soak reports (`make load`, the soak) met their SLOs
and are younger than READINESS_MAX_AGE_DAYS."""

from __future__ import annotations

import subprocess
from datetime import timedelta

from rampart.readiness.context import Context
from rampart.readiness.model import Result, Status, human_age, not_available
from rampart.readiness.reports import ReportError, newest_load_report, read_load_report

AREA = "performance"
FIX = {"load": "run `make load` against this build", "soak": "run `make soak` against this build"}


def _head(ctx: Context) -> str | None:
    """The commit this gate judges: GIT_COMMIT, else the repository's HEAD."""
    if ctx.settings.git_commit:
        return ctx.settings.git_commit
    try:
        done = subprocess.run(  # noqa: S603 # nosec B603 B607 - fixed argv, no shell
            ["git", "rev-parse", "HEAD"],  # noqa: S607
            cwd=ctx.repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def load_report(ctx: Context, kind: str) -> Result:
    check = f"{kind} test within SLOs"
    doc = "docs/go-live.md#evidence-files"
    directory = ctx.reports / "load"
    fix = FIX[kind]
    path = newest_load_report(directory, kind)
    if path is None:
        return not_available(
            AREA, check, f"no {kind} report", f"{directory}/{kind}-*.json", fix, doc
        )
    try:
        report = read_load_report(path)
    except ReportError as exc:
        return Result(AREA, check, Status.NO_GO, str(exc), str(path), fix, doc)
    problems: list[str] = []
    if report.kind != kind:
        problems.append(f"kind is {report.kind!r}, not {kind!r}")
    bound = timedelta(days=ctx.settings.readiness_max_age_days)
    age = ctx.now - report.finished_at
    if age > bound:
        problems.append(f"{human_age(age)} old > {human_age(bound)}")
    if not report.scenarios:
        problems.append("no scenario")
    for scenario in report.scenarios:
        problems += scenario.misses()
    if not report.passed and not problems:
        problems.append("marked failed by the load tool")
    for process in report.processes:
        if process.get("passed") is False:
            problems.append(f"{process.get('name')}: memory grew {process.get('growth_pct')}%")
    worst = max(report.scenarios, key=lambda s: s.p99_ms / s.slo_p99_ms, default=None)
    errors = sum(s.errors for s in report.scenarios)
    requests = sum(s.requests for s in report.scenarios)
    figure = f"{len(report.scenarios)} scenarios, {requests} requests, {errors} errors"
    if worst is not None:
        figure += (
            f"; worst p99 {worst.p99_ms:g} ms of {worst.slo_p99_ms:g} ({worst.name}, "
            f"{worst.achieved_rps:g} rps)"
        )
    if problems:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{figure}; " + "; ".join(problems[:4]),
            str(path),
            fix,
            doc,
            report.finished_at,
        )
    head = _head(ctx)
    if (
        head
        and report.git_commit
        and not head.startswith(report.git_commit[:12])
        and not report.git_commit.startswith(head[:12])
    ):
        return Result(
            AREA,
            check,
            Status.WARN,
            f"{figure}; measured on {report.git_commit[:12]}, this is {head[:12]}",
            str(path),
            fix,
            doc,
            report.finished_at,
        )
    return Result(AREA, check, Status.GO, figure, str(path), observed_at=report.finished_at)


def load_test(ctx: Context) -> Result:
    return load_report(ctx, "load")


def soak_test(ctx: Context) -> Result:
    return load_report(ctx, "soak")
