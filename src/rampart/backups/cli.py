"""`rampart backup run|list|verify|schedule`, `rampart restore` and `rampart drill`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rampart.backups import BackupError
from rampart.cli_help import Typer

err = Console(stderr=True, soft_wrap=True, highlight=False)
backup_app = Typer(
    help="""Base backups and the WAL archive (docs/backups.md).

    The repository is BACKUP_DIR (default `<RAMPART_HOME>/backups`); the source is
    BACKUP_DATABASE_URL (the running `rampart up`'s embedded Postgres when unset).

    **Examples**

    ```
    $ rampart backup run
    $ rampart backup list
    $ rampart backup verify
    ```
    """,
    no_args_is_help=True,
)


def _say(line: str) -> None:
    err.print(line, markup=False)


def _fail(exc: Exception) -> typer.Exit:
    err.print(str(exc), style="red", markup=False)
    return typer.Exit(1)


def _settings():
    from rampart.config import get_settings

    return get_settings()


@backup_app.command("run")
def backup_run(
    kind: Annotated[
        str,
        typer.Option(
            metavar="KIND",
            help="full, incremental (on the newest backup) or auto (incremental when a full "
            "one exists and the server keeps WAL summaries).",
        ),
    ] = "auto",
    retention: Annotated[
        bool, typer.Option(help="Apply the retention policy afterwards (BACKUP_RETENTION_DAYS).")
    ] = True,
) -> None:
    """Take one base backup (pg_basebackup, gzip), verify it (pg_verifybackup), then
    delete what the retention policy no longer keeps.

    **Examples**

    ```
    $ rampart backup run
    $ rampart backup run --kind full
    $ BACKUP_DATABASE_URL=postgresql://backup@db.internal/rampart rampart backup run
    ```
    """
    from rampart.backups.backup import apply_retention, run_backup
    from rampart.backups.tools import repository, source_url

    if kind not in ("auto", "full", "incremental"):
        raise _fail(ValueError(f"--kind must be auto, full or incremental, not {kind!r}"))
    try:
        repo = repository()
        run_backup(source_url(), repo, kind, _say)
        if retention:
            apply_retention(repo, _settings().backup_retention_days, _say)
    except BackupError as exc:
        raise _fail(exc) from None


@backup_app.command("list")
def backup_list() -> None:
    """The backups in the repository, oldest first, with the WAL archive's extent.

    **Examples**

    ```
    $ rampart backup list
    ```
    """
    from rampart.backups.catalog import list_backups
    from rampart.backups.tools import repository

    repo = repository()
    backups = list_backups(repo)
    # Plain columns, not a rich table: read by people and by scripts, never truncated.
    print(f"{len(backups)} backup(s) in {repo}")
    row = "{:<20} {:<12} {:<20} {:<20} {:>9} {:>8} {:<8}"
    print(row.format("label", "kind", "parent", "finished (UTC)", "MB", "seconds", "verified"))
    for b in backups:
        print(
            row.format(
                b.label,
                b.kind,
                b.parent or "-",
                b.finished[:19],
                f"{b.size_bytes / 1e6:.1f}",
                f"{b.seconds:.1f}",
                "yes" if b.verified else "NO",
            )
        )
    wal = sorted(p.name[:24] for p in (repo / "wal").glob("?" * 24 + ".gz"))
    if wal:
        print(f"WAL archive: {len(wal)} segment(s), {wal[0]} .. {wal[-1]}")
    else:
        print("WAL archive: empty")


@backup_app.command("verify")
def backup_verify(
    label: Annotated[
        str | None,
        typer.Argument(metavar="LABEL", help="One backup (default: every backup)."),
    ] = None,
) -> None:
    """Check backups against their manifests' checksums again (pg_verifybackup). Exit 1
    when any fails.

    **Examples**

    ```
    $ rampart backup verify
    $ rampart backup verify 20261206T201500123Z
    ```
    """
    from rampart.backups.backup import verify
    from rampart.backups.catalog import find, list_backups
    from rampart.backups.tools import repository

    try:
        backups = list_backups(repository())
        chosen = [find(backups, label)] if label else backups
        if not chosen:
            raise BackupError("no backups to verify: run `rampart backup run` first")
        failed = 0
        for backup in chosen:
            try:
                verify(backup, _say)
                _say(f"{backup.label}: ok")
            except BackupError as exc:
                failed += 1
                backup.verified = False
                backup.save()
                err.print(str(exc), style="red", markup=False)
    except BackupError as exc:
        raise _fail(exc) from None
    if failed:
        raise typer.Exit(1)


@backup_app.command("export")
def backup_export(
    schema: Annotated[
        list[str] | None,
        typer.Option(metavar="SCHEMA", help="Schema to export (repeatable; default: public, app)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Where (default: <BACKUP_DIR>/exports/<time>.dump)."),
    ] = None,
) -> None:
    """A logical export (pg_dump, custom format) of our schemas: restorable into any
    Postgres with pg_restore, one table or tenant at a time if need be. On a managed
    database (Supabase) it complements the provider's physical backups (docs/backups.md).
    Needs a role that bypasses RLS (BACKUP_DATABASE_URL).

    **Examples**

    ```
    $ rampart backup export
    $ rampart backup export --schema public --output /srv/exports/rampart.dump
    ```
    """
    from rampart.backups.tools import repository, run, source_url, split_password, tool

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = output or repository() / "exports" / f"{stamp}.dump"
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    conninfo, env = split_password(source_url())
    cmd = [tool("pg_dump"), "-d", conninfo, "-Fc", "-f", str(target)]
    for name in schema or ["public", "app"]:
        cmd += ["--schema", name]
    _say(f"exporting {', '.join(schema or ['public', 'app'])} into {target}")
    clock = time.monotonic()
    try:
        run(cmd, "pg_dump", env)
        run([tool("pg_restore"), "--list", str(target)], "reading the export back")
    except BackupError as exc:
        target.unlink(missing_ok=True)
        raise _fail(exc) from None
    size = target.stat().st_size / 1e6
    _say(f"exported {size:.1f} MB in {time.monotonic() - clock:.1f}s; pg_restore reads it")


def _s3() -> tuple[str, str | None]:
    settings = _settings()
    if not settings.backup_s3_url:
        raise _fail(BackupError("BACKUP_S3_URL is not set (s3://BUCKET/PREFIX)"))
    return settings.backup_s3_url, settings.backup_s3_endpoint_url


@backup_app.command("push")
def backup_push() -> None:
    """Upload finished backups and archived WAL that BACKUP_S3_URL lacks (never deletes
    there). The schedule does this every round when BACKUP_S3_URL is set.

    **Examples**

    ```
    $ BACKUP_S3_URL=s3://acme-backups/rampart rampart backup push
    ```
    """
    from rampart.backups.s3 import push
    from rampart.backups.tools import repository

    url, endpoint = _s3()
    try:
        count = push(repository(), url, endpoint, _say)
    except BackupError as exc:
        raise _fail(exc) from None
    if not count:
        _say(f"{url} is up to date")


@backup_app.command("pull")
def backup_pull() -> None:
    """Download from BACKUP_S3_URL what the local repository (BACKUP_DIR) lacks: on a new
    host, before `rampart restore`.

    **Examples**

    ```
    $ BACKUP_S3_URL=s3://acme-backups/rampart BACKUP_DIR=/srv/backups rampart backup pull
    ```
    """
    from rampart.backups.s3 import pull
    from rampart.backups.tools import repository

    url, endpoint = _s3()
    try:
        pull(repository(), url, endpoint, _say)
    except BackupError as exc:
        raise _fail(exc) from None


@backup_app.command("schedule")
def backup_schedule(
    once: Annotated[bool, typer.Option(help="One round, then exit.")] = False,
) -> None:
    """Run the backup schedule until stopped: a canary row every minute (ops.canary, for
    the drills' RPO), a full backup every BACKUP_FULL_INTERVAL_DAYS, an incremental one
    every BACKUP_INCREMENTAL_INTERVAL_HOURS, retention after each, (BACKUP_S3_URL) a
    push of what is new to the off-site copy, and a restore drill every
    DRILL_INTERVAL_DAYS. `rampart up` runs it for its embedded
    Postgres.

    **Examples**

    ```
    $ rampart backup schedule
    $ BACKUP_DATABASE_URL=postgresql://backup@db.internal/rampart rampart backup schedule
    ```
    """
    from rampart.backups import canary
    from rampart.backups.backup import apply_retention, due, run_backup
    from rampart.backups.drill import drill_due
    from rampart.backups.tools import repository, source_url

    settings = _settings()
    full = timedelta(days=settings.backup_full_interval_days)
    incremental = timedelta(hours=settings.backup_incremental_interval_hours)
    while True:
        try:
            url, repo = source_url(), repository()
            canary.write(url)
            kind = due(repo, full, incremental)
            if kind is not None:
                run_backup(url, repo, kind, _say)
                apply_retention(repo, settings.backup_retention_days, _say)
            if settings.backup_s3_url:
                from rampart.backups.s3 import push

                push(repo, settings.backup_s3_url, settings.backup_s3_endpoint_url, _say)
            if drill_due(repo, timedelta(days=settings.drill_interval_days)):
                result = _drill(die_with_parent=True)  # its scratch server dies with us
                _say(f"drill {'passed' if result.ok else 'FAILED'}: {result.checks}")
        except Exception as exc:  # noqa: BLE001 - the schedule outlives a bad round; metrics tell
            err.print(f"backup schedule: {exc}", style="red", markup=False)
            if once:
                raise typer.Exit(1) from None
        if once:
            return
        time.sleep(60)


def _when(value: str) -> datetime | None:
    if value == "latest":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither `latest` nor an ISO time like 2026-12-06T20:15:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def restore(
    to: Annotated[
        str,
        typer.Option(
            metavar="TIME",
            help="`latest` (the end of the WAL archive) or an ISO time (UTC unless it says).",
        ),
    ],
    target: Annotated[
        Path, typer.Option(metavar="DIR", help="Data directory to write (empty, or --force).")
    ],
    force: Annotated[
        bool, typer.Option(help="Replace a non-empty DIR (never one a running server uses).")
    ] = False,
) -> None:
    """Write a Postgres data directory that recovers to a point in time: the newest backup
    chain finished before it, combined (pg_combinebackup), and the WAL archive replayed up
    to TIME when the server starts on DIR. Then it opens for writes on a new timeline and
    does not archive (docs/runbooks/restore.md says how to cut over).

    **Examples**

    ```
    $ rampart restore --to latest --target /srv/pg-restored
    $ rampart restore --to 2026-12-06T20:15:00Z --target /srv/pg-restored --force
    ```
    """
    from rampart.backups.restore import restore as do_restore
    from rampart.backups.tools import repository

    moment = _when(to)
    try:
        do_restore(repository(), target, to_time=moment, force=force, say=_say)
    except BackupError as exc:
        raise _fail(exc) from None
    _say(
        f"next: start a server on it, e.g. pg_ctl -D {target.resolve()} -o '-p PORT' start "
        "(as the user owning it), and check it before cutting over"
    )


def _drill(keep: bool = False, die_with_parent: bool = False):
    """One drill with the settings' roles and targets; prints its progress."""
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import make_url

    from rampart.backups.drill import Roles, run_drill
    from rampart.backups.tools import repository, source_url

    settings = _settings()
    url = source_url()

    def user(setting, default: str) -> str:
        return (make_url(setting.get_secret_value()).username if setting else None) or default

    roles = Roles(
        superuser=str(conninfo_to_dict(url).get("user") or "postgres"),
        migration=user(settings.migration_database_url, "migration_admin"),
        runtime=user(settings.database_url, "app_rw"),
    )
    return run_drill(
        url,
        repository(),
        roles,
        rpo_target=settings.drill_rpo_target_seconds,
        rto_target=settings.drill_rto_target_seconds,
        archive_wait=settings.backup_archive_timeout_seconds + 60,
        keep=keep,
        die_with_parent=die_with_parent,
        say=_say,
    )


def drill(
    keep: Annotated[bool, typer.Option(help="Keep the scratch copy (stopped) to inspect.")] = False,
) -> None:
    """Restore the newest backups to now into a scratch Postgres on a free port and prove
    the copy: canary rows up to the target (RPO), row counts as on the source, RLS ENABLED
    + FORCED, `rampart db lint` clean, alembic at head, a tenant query. Prints and records
    RPO and RTO; exit 1 on any failed check or a target missed (DRILL_RPO_TARGET_SECONDS,
    DRILL_RTO_TARGET_SECONDS).

    **Examples**

    ```
    $ rampart drill
    $ rampart drill --keep
    ```
    """
    result = _drill(keep=keep)
    for name, outcome in result.checks.items():
        style = "green" if outcome.startswith("ok") else "red"
        err.print(f"  {name:<13} {outcome}", style=style, markup=False)
    rpo = "n/a" if result.rpo_seconds is None else f"{result.rpo_seconds:.1f}s"
    rto = "n/a" if result.rto_seconds is None else f"{result.rto_seconds:.1f}s"
    verdict = "PASSED" if result.ok else "FAILED"
    print(
        f"drill {verdict}: RPO {rpo} (target {result.rpo_target_seconds:g}s), "
        f"RTO {rto} (target {result.rto_target_seconds:g}s)"
    )
    if not result.ok:
        raise typer.Exit(1)
