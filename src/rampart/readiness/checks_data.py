"""Data: the schema is at the migrations' head, the newest backup is younger than its bound,
and the last restore drill passed within the RPO and RTO targets."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

from rampart.readiness.context import Context
from rampart.readiness.model import (
    Result,
    Status,
    human_age,
    migration_database,
    not_available,
    parse_time,
)

AREA = "data"
# The backup schedule takes an incremental backup every BACKUP_INCREMENTAL_INTERVAL_HOURS;
# two hours more leave room for one slow run (the RampartBackupStale alert: 24 + 2 h).
BACKUP_SLACK = timedelta(hours=2)
# A drill every DRILL_INTERVAL_DAYS, two days of slack (RampartRestoreDrillFailed: 14 + 2).
DRILL_SLACK = timedelta(days=2)


def migrations_at_head(ctx: Context) -> Result:
    """Every head of migrations/ is applied: the revisions in alembic_version and their
    ancestors include each (Alembic records only the tips of its branches)."""
    import psycopg
    from alembic.script import ScriptDirectory

    check, doc = "migrations at head", "docs/migrations.md"
    url = migration_database(ctx, AREA, check, doc)
    if isinstance(url, Result):
        return url
    source = f"alembic_version of {url.database} vs migrations/"
    script = ScriptDirectory(str(ctx.repo / "migrations"))
    heads = set(script.get_heads())
    try:
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            current = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    except psycopg.Error as exc:
        return not_available(
            AREA,
            check,
            f"cannot read the revision: {exc}".strip(),
            source,
            "check the database is up and migrated (`rampart migrate`)",
            doc,
        )
    from alembic.util import CommandError

    try:  # what the recorded revisions and their ancestors apply
        applied = {rev.revision for rev in script.iterate_revisions(tuple(current), "base")}
    except CommandError as exc:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"unknown revision: {exc}",
            source,
            "deploy the release whose migrations the database has",
            doc,
        )
    missing = sorted(heads - applied)
    if not current or missing:
        at = ", ".join(sorted(current)) or "nothing"
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"at {at}; head is {', '.join(sorted(heads))} ({', '.join(missing)} not applied)",
            source,
            "run `rampart migrate`",
            doc,
        )
    return Result(AREA, check, Status.GO, f"at head {', '.join(sorted(heads))}", source)


def backup_repository(ctx: Context) -> Path:
    """BACKUP_DIR, else <RAMPART_HOME>/backups (as backups/tools.py, from these settings)."""
    settings = ctx.settings
    return Path(settings.backup_dir or Path(settings.rampart_home) / "backups").resolve()


def last_backup(ctx: Context) -> Result:
    """The newest verified base backup finished less than the incremental interval plus
    two hours ago."""
    from rampart.backups.catalog import list_backups

    check, doc = "last backup fresh", "docs/runbooks/backup-failing.md"
    repo = backup_repository(ctx)
    fix = "run `rampart backup run`; keep `rampart backup schedule` running"
    try:
        backups = [b for b in list_backups(repo) if b.verified]
    except (OSError, ValueError, TypeError) as exc:
        return Result(
            AREA, check, Status.NO_GO, f"unreadable catalog: {exc!r}", str(repo), fix, doc
        )
    if not backups:
        return not_available(AREA, check, "no verified backup", str(repo), fix, doc)
    newest = backups[-1]
    finished = newest.finished_at
    finished = finished if finished.tzinfo else finished.replace(tzinfo=UTC)
    bound = timedelta(hours=ctx.settings.backup_incremental_interval_hours) + BACKUP_SLACK
    figure = f"{newest.kind} backup {newest.label}, {newest.size_bytes / 1e6:.1f} MB"
    if ctx.now - finished > bound:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{figure}: {human_age(ctx.now - finished)} old > {human_age(bound)}",
            str(repo),
            fix,
            doc,
            finished,
        )
    return Result(
        AREA,
        check,
        Status.GO,
        f"{figure} (bound {human_age(bound)})",
        str(repo),
        observed_at=finished,
    )


def restore_drill(ctx: Context) -> Result:
    """The last `rampart drill` passed every check, measured RPO and RTO within
    DRILL_RPO_TARGET_SECONDS and DRILL_RTO_TARGET_SECONDS, and is younger than
    DRILL_INTERVAL_DAYS plus two days."""
    from rampart.backups.drill import LAST, last

    check, doc = "restore drill within RPO/RTO", "docs/runbooks/restore.md"
    repo = backup_repository(ctx)
    source = str(repo / LAST)
    fix = "run `rampart drill`"
    drill = last(repo)
    if drill is None:
        return not_available(AREA, check, "no restore drill recorded", source, fix, doc)
    settings = ctx.settings
    try:
        started = parse_time(drill.started)
    except ValueError as exc:
        return Result(AREA, check, Status.NO_GO, f"unreadable drill: {exc}", source, fix, doc)
    rpo, rto = drill.rpo_seconds, drill.rto_seconds
    rpo_target, rto_target = settings.drill_rpo_target_seconds, settings.drill_rto_target_seconds
    figure = (
        f"RPO {'?' if rpo is None else f'{rpo:g}s'} (target {rpo_target:g}s),"
        f" RTO {'?' if rto is None else f'{rto:g}s'} (target {rto_target:g}s)"
    )
    problems = []
    if not drill.ok:
        failed = [f"{k}: {v}" for k, v in drill.checks.items() if not v.startswith("ok")]
        problems.append("failed " + ("; ".join(failed[:3]) or "(no check ran)"))
    if rpo is None or rpo > settings.drill_rpo_target_seconds:
        problems.append("RPO over target" if rpo is not None else "no RPO measured")
    if rto is None or rto > settings.drill_rto_target_seconds:
        problems.append("RTO over target" if rto is not None else "no RTO measured")
    every = settings.drill_interval_days or 14
    bound = timedelta(days=every) + DRILL_SLACK
    if ctx.now - started > bound:
        problems.append(f"{human_age(ctx.now - started)} old > {human_age(bound)}")
    if problems:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{figure}; " + "; ".join(problems),
            source,
            fix,
            doc,
            started,
        )
    return Result(AREA, check, Status.GO, figure, source, observed_at=started)
