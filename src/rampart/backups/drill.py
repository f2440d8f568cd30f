"""`rampart drill`: restore the newest backups to *now* into a scratch Postgres on a free
port and prove the copy is good, measuring RPO and RTO.

1. On the source, in one REPEATABLE READ snapshot: the WAL insert position (the target),
   the time, and every table's row count. Then pg_switch_wal() and wait until the archive
   holds that WAL (without the switch the wait is up to archive_timeout).
2. Restore to that LSN (restore.py), start a scratch server on the copy.
3. Check: the copy has replayed to the target and answers (RTO = drill start → then),
   the canary (RPO = target time − newest canary row), row counts = the snapshot's, RLS
   ENABLED + FORCED on every tenant table, `rampart db lint` clean, alembic at head, a
   tenant reads its own rows and no claims read none.
4. Record the result in drills.jsonl and last-drill.json (the metrics read it).

Counts are exact when no transaction commits in the instant between the snapshot and the
LSN read; on a busy database a count may differ by a row just committed (a rerun tells).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier

from rampart.backups import BackupError, canary
from rampart.backups.restore import restore

Say = Callable[[str], None]
LAST = "last-drill.json"
HISTORY = "drills.jsonl"


@dataclass
class DrillResult:
    started: str
    target_time: str = ""
    target_lsn: str = ""
    backups: list[str] = field(default_factory=list)
    rpo_seconds: float | None = None
    rto_seconds: float | None = None
    rpo_target_seconds: float = 300
    rto_target_seconds: float = 900
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what is wrong
    ok: bool = False

    def fail(self, check: str, why: str) -> None:
        self.checks[check] = why


@dataclass
class Roles:
    """Who the checks connect as on the copy (trusted over its private socket)."""

    superuser: str
    migration: str = "migration_admin"
    runtime: str = "app_rw"


def _snapshot(url: str) -> tuple[str, str, datetime, dict[str, int]]:
    """(target LSN, its WAL file, time, row count per table) in one snapshot."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        lsn, walfile, at = conn.execute(
            "SELECT pg_current_wal_insert_lsn()::text,"
            " pg_walfile_name(pg_current_wal_insert_lsn()), clock_timestamp()"
        ).fetchone()
        counts = {
            f"{schema}.{table}": conn.execute(
                SQL("SELECT count(*) FROM {}.{}").format(Identifier(schema), Identifier(table))
            ).fetchone()[0]
            for schema, table in _tables(conn)
        }
        conn.commit()
        conn.autocommit = True
        conn.execute("SELECT pg_switch_wal()")
    return lsn, walfile, at, counts


def _tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_%' ORDER BY 1, 2"
    ).fetchall()


def _wait_archived(url: str, walfile: str, timeout: float, say: Say) -> None:
    say(f"waiting for WAL {walfile} to reach the archive")
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
        while True:
            last, failed = conn.execute(
                "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver"
            ).fetchone()
            if last is not None and last[:24] >= walfile:
                return
            if time.monotonic() > deadline:
                why = f" (last failure: {failed})" if failed else ""
                raise BackupError(f"WAL {walfile} was not archived within {timeout:g}s{why}")
            time.sleep(0.2)


def _wait_promoted(conn: psycopg.Connection, deadline: float) -> None:
    """Until the copy has replayed the WAL to the target and left recovery. It answers
    read-only queries long before (hot standby): checked then, a copy of a busy database
    looked minutes old and short of rows. A server that cannot reach the target stops,
    and the next query raises."""
    while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        if time.monotonic() > deadline:
            raise BackupError("the copy was still replaying the WAL at the RTO target")
        time.sleep(0.1)


def _check_copy(
    conn: psycopg.Connection,
    copy_conninfo: Callable[[str], str],
    roles: Roles,
    result: DrillResult,
    counts: dict[str, int],
    target: datetime,
) -> None:
    from alembic.script import ScriptDirectory

    from rampart.kit.db.lint import LintConfig, run_lints
    from rampart.kit.db.lint.model import RLS_TABLES_WITHOUT_TENANT_COLUMN
    from rampart.kit.db.migrate import _alembic_config

    newest = canary.newest(conn)
    if newest is None:
        result.fail("canary", "no canary row in the copy (is the backup schedule running?)")
    else:
        result.rpo_seconds = round((target - newest).total_seconds(), 3)
        over = result.rpo_seconds > result.rpo_target_seconds
        result.checks["canary"] = (
            f"RPO {result.rpo_seconds:g}s over the target {result.rpo_target_seconds:g}s"
            if over
            else "ok"
        )

    restored = {
        f"{s}.{t}": conn.execute(
            SQL("SELECT count(*) FROM {}.{}").format(Identifier(s), Identifier(t))
        ).fetchone()[0]
        for s, t in _tables(conn)
    }
    wrong = [
        f"{name}: {restored.get(name)} != {count}"
        for name, count in counts.items()
        if restored.get(name) != count
    ]
    result.checks["row_counts"] = "ok" if not wrong else "; ".join(wrong[:5])

    rls = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = 'public' AND (format('%%I.%%I', n.nspname,"
        " c.relname) = ANY(%s) OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid ="
        " c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))",
        (list(RLS_TABLES_WITHOUT_TENANT_COLUMN),),
    ).fetchall()
    weak = [name for name, enabled, forced in rls if not (enabled and forced)]
    result.checks["rls_forced"] = (
        f"ok ({len(rls)} tenant tables)"
        if rls and not weak
        else f"RLS not ENABLED+FORCED on {', '.join(weak) or 'any table (none found)'}"
    )

    findings = run_lints(copy_conninfo(roles.migration), LintConfig(app_role=roles.runtime))
    bad = [f"{f.lint} {f.object}" for f in findings if f.level in ("error", "warn")]
    result.checks["db_lint"] = "ok" if not bad else f"{len(bad)} finding(s): {', '.join(bad[:3])}"

    # Every head applied: alembic_version omits a head that another one depends on.
    script = ScriptDirectory.from_config(_alembic_config("postgresql://"))
    at = tuple(row[0] for row in conn.execute("SELECT version_num FROM public.alembic_version"))
    applied = {rev.revision for rev in script.iterate_revisions(at, "base")} if at else set()
    missing = sorted(set(script.get_heads()) - applied)
    result.checks["alembic_head"] = "ok" if not missing else f"at {at}, missing {missing}"

    tenant = conn.execute(
        "SELECT tenant_id, count(*) FROM public.assessments GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
    ).fetchone()
    if tenant is None:
        result.checks["tenant_query"] = "ok (no assessments to read)"
        return
    claims = json.dumps({"tenant_id": str(tenant[0]), "role": "authenticated"})
    with psycopg.connect(copy_conninfo(roles.runtime)) as app:
        blind = app.execute("SELECT count(*) FROM public.assessments").fetchone()[0]
        app.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
        seen = app.execute("SELECT count(*) FROM public.assessments").fetchone()[0]
        app.rollback()
    result.checks["tenant_query"] = (
        "ok"
        if (seen, blind) == (tenant[1], 0)
        else f"tenant saw {seen} of its {tenant[1]} assessments, no claims saw {blind}"
    )


def run_drill(
    url: str,
    repo: Path,
    roles: Roles | None = None,
    *,
    rpo_target: float = 300,
    rto_target: float = 900,
    archive_wait: float = 120,
    keep: bool = False,
    die_with_parent: bool = False,
    say: Say = print,
) -> DrillResult:
    """Run one drill against the source `url` (a superuser or REPLICATION role that can read
    every table) and the repository `repo`; records and returns the result."""
    from rampart.devstack.ports import free_port
    from rampart.devstack.postgres import EmbeddedPostgres

    params = conninfo_to_dict(url)
    roles = roles or Roles(superuser=str(params.get("user")))
    clock = time.monotonic()
    result = DrillResult(
        started=datetime.now(UTC).isoformat(),
        rpo_target_seconds=rpo_target,
        rto_target_seconds=rto_target,
    )
    scratch = repo / "drill" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    copy: EmbeddedPostgres | None = None
    try:
        lsn, walfile, target, counts = _snapshot(url)
        result.target_time, result.target_lsn = target.isoformat(), lsn
        say(f"drill: target {target.isoformat()} (LSN {lsn}), {len(counts)} tables counted")
        _wait_archived(url, walfile, archive_wait, say)
        scratch.mkdir(parents=True)
        for directory in (scratch.parent, scratch):  # the server user passes through
            directory.chmod(0o711)  # noqa: S103 - traverse only, no read
        used = restore(repo, scratch / "data", to_lsn=lsn, say=say)
        result.backups = [b.label for b in used]
        # The copy keeps the source's roles; only its private socket may reach it, trusted.
        (scratch / "data" / "pg_hba.conf").write_text("local all all trust\n")
        copy = EmbeddedPostgres(scratch, free_port(), die_with_parent=die_with_parent)
        say(f"starting the copy on port {copy.port} (replays the WAL)")
        copy.start()
        dbname = str(params.get("dbname") or "postgres")

        def conninfo(user: str) -> str:
            return make_conninfo(
                host=str(copy.socket_dir), port=copy.port, user=user, dbname=dbname
            )

        with psycopg.connect(conninfo(roles.superuser), autocommit=True) as conn:
            _wait_promoted(conn, clock + rto_target)
            result.rto_seconds = round(time.monotonic() - clock, 3)
            say(f"the copy is restored and answers after {result.rto_seconds:.1f}s; checking it")
            _check_copy(conn, conninfo, roles, result, counts, target)
        if result.rto_seconds > rto_target:
            result.fail("rto", f"RTO {result.rto_seconds:g}s over the target {rto_target:g}s")
        else:
            result.checks["rto"] = "ok"
    # The drill reports what broke as a failed check (and the metric), never a traceback:
    # DevStackError, BackupError and the lints' errors are RuntimeErrors or ValueErrors.
    except (RuntimeError, ValueError, psycopg.Error, OSError) as exc:
        result.fail("drill", str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
    finally:
        if copy is not None:
            copy.stop()
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    result.ok = bool(result.checks) and all(v.startswith("ok") for v in result.checks.values())
    record(repo, result)
    return result


def record(repo: Path, result: DrillResult) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    line = json.dumps(asdict(result))
    with (repo / HISTORY).open("a") as history:
        history.write(line + "\n")
    partial = repo / f".{LAST}.partial"
    partial.write_text(line + "\n")
    partial.replace(repo / LAST)


def drill_due(repo: Path, every: timedelta) -> bool:
    """Whether the schedule should drill: the last drill (or, before the first, the oldest
    backup: a fresh stack is not drilled at once) is `every` old. A zero interval: never."""
    from rampart.backups.catalog import list_backups

    if every <= timedelta(0):
        return False
    previous = last(repo)
    if previous is not None:
        since = datetime.fromisoformat(previous.started)
    else:
        backups = list_backups(repo)
        if not backups:
            return False
        since = backups[0].finished_at
    return datetime.now(UTC) - since >= every


def last(repo: Path) -> DrillResult | None:
    try:
        return DrillResult(**json.loads((repo / LAST).read_text()))
    except (OSError, ValueError, TypeError):
        return None
