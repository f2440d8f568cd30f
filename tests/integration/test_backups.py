"""Backups, point-in-time restore and the restore drill on a real embedded Postgres that
archives its WAL (its own server per test: the story drops a table).

Slow, all of it: each test starts its own archiving server, takes base backups and
restores them (10-80 s a test, about 3 minutes the module on an idle 2-core machine), so
it runs in `make test`, not in the inner loop (`make test-fast`). The backup code's quick
checks are unit tests (tests/unit/test_backup_catalog.py, test_archives.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from tests.support.wait import wait_until

from rampart.backups import canary
from rampart.backups.backup import run_backup
from rampart.backups.catalog import list_backups
from rampart.backups.drill import Roles, last, run_drill
from rampart.backups.metrics import BackupCollector
from rampart.backups.restore import restore
from rampart.backups.wal import archive_settings, server_owner
from rampart.devstack.ports import free_port
from rampart.devstack.postgres import EmbeddedPostgres, bootstrap_database
from rampart.kit.db.migrate import migrate

pytestmark = pytest.mark.slow


@dataclass
class Source:
    server: EmbeddedPostgres
    home: Path
    repo: Path
    url: str  # the superuser in the app's database (the backup role)
    env: dict[str, str]

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def archive_now(self) -> None:
        """Close the current WAL segment and wait until the archive holds it."""
        (walfile,) = self.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")[0]
        self.sql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while (self.sql("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] or "") < walfile:
            assert time.monotonic() < deadline, f"{walfile} not archived"
            time.sleep(0.1)


@pytest.fixture
def source() -> Iterator[Source]:
    home = Path(tempfile.mkdtemp(prefix="rampart-backup-", dir="/tmp"))
    os.chmod(home, 0o711)  # noqa: S103 - the server user (nobody, when root) passes through
    repo = home / "backups"
    archiving = archive_settings(repo / "wal", 60, server_owner())
    server = EmbeddedPostgres(home / "postgres", free_port(), fast=True, settings=archiving)
    server.start()
    try:
        passwords = {name: secrets.token_urlsafe(16) for name in ("mig", "app", "op")}
        bootstrap_database(
            server.superuser_url,
            database="rampart",
            migration_user="migration_admin",
            migration_password=passwords["mig"],
        )
        base = f"127.0.0.1:{server.port}/rampart"
        urls = {
            "MIGRATION_DATABASE_URL": f"postgresql://migration_admin:{passwords['mig']}@{base}",
            "DATABASE_URL": f"postgresql://app_rw:{passwords['app']}@{base}",
            "OPERATOR_DATABASE_URL": f"postgresql://rampart_operator:{passwords['op']}@{base}",
        }
        migrate(urls["MIGRATION_DATABASE_URL"], urls["DATABASE_URL"], urls["OPERATOR_DATABASE_URL"])
        url = make_conninfo(server.superuser_url, dbname="rampart")
        env = {
            **urls,
            "BACKUP_DATABASE_URL": url,
            "BACKUP_DIR": str(repo),
            "RAMPART_HOME": str(home),
        }
        yield Source(server, home, repo, url, env)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def add_tenant(source: Source, assessments: int) -> tuple[str, list[str]]:
    tenant = source.sql("INSERT INTO tenants (name) VALUES ('t') RETURNING id")[0][0]
    user = source.sql(
        "INSERT INTO users (tenant_id, email, password_hash, role)"
        " VALUES (%s, %s, 'x', 'owner') RETURNING id",
        (tenant, f"{uuid.uuid4().hex}@example.com"),
    )[0][0]
    return str(tenant), [str(add_assessment(source, tenant, user)) for _ in range(assessments)]


def add_assessment(source: Source, tenant, user=None) -> str:
    if user is None:
        user = source.sql("SELECT id FROM users WHERE tenant_id = %s LIMIT 1", (tenant,))[0][0]
    return str(
        source.sql(
            "INSERT INTO assessments (tenant_id, created_by, answers) VALUES (%s, %s, '{}')"
            " RETURNING id",
            (tenant, user),
        )[0][0]
    )


@pytest.fixture
def scratch(source: Source) -> Iterator[Path]:
    """Where a restored copy goes (under the traversable home); its server is stopped."""
    base = source.home / "copy"
    base.mkdir(mode=0o711)
    yield base
    EmbeddedPostgres(base, 0).stop()


def start_copy(base: Path) -> EmbeddedPostgres:
    (base / "data" / "pg_hba.conf").write_text("local all all trust\n")
    copy = EmbeddedPostgres(base, free_port())
    copy.start()
    return copy


def test_restore_to_just_before_a_dropped_table_loses_nothing_before_and_leaks_nothing_after(
    source: Source, scratch: Path
) -> None:
    first, first_ids = add_tenant(source, 3)
    second, second_ids = add_tenant(source, 2)
    run_backup(source.url, source.repo, "full", say=lambda _: None)
    # After the full backup: only the incremental has these...
    first_ids.append(add_assessment(source, first))
    run_backup(source.url, source.repo, "incremental", say=lambda _: None)
    # ...and these only the WAL archive.
    second_ids.append(add_assessment(source, second))
    late, late_ids = add_tenant(source, 1)
    (before_mistake,) = source.sql("SELECT clock_timestamp()")[0]
    time.sleep(0.05)
    source.sql("DROP TABLE assessments CASCADE")  # the mistake
    after, _ = add_tenant(source, 0)  # written after it: must not come back
    source.archive_now()

    restore(source.repo, scratch / "data", to_time=before_mistake, say=lambda _: None)
    copy = start_copy(scratch)
    with psycopg.connect(
        host=str(copy.socket_dir), port=copy.port, user="postgres", dbname="rampart"
    ) as conn:
        restored = {str(r[0]) for r in conn.execute("SELECT id FROM assessments")}
        tenants = {str(r[0]) for r in conn.execute("SELECT id FROM tenants")}
    assert restored == set(first_ids + second_ids + late_ids)
    assert tenants == {first, second, late}
    assert after not in tenants


def test_drill_proves_the_copy_and_measures_rpo_and_rto(source: Source) -> None:
    tenant, ids = add_tenant(source, 3)
    add_tenant(source, 1)
    run_backup(source.url, source.repo, "full", say=lambda _: None)
    canary.write(source.url)
    add_assessment(source, tenant)  # only in the WAL
    result = run_drill(source.url, source.repo, Roles(superuser="postgres"), say=lambda _: None)
    assert result.ok, result.checks
    assert set(result.checks) >= {
        "canary",
        "row_counts",
        "rls_forced",
        "db_lint",
        "alembic_head",
        "tenant_query",
        "rto",
    }
    assert 0 <= result.rpo_seconds < 60
    assert 0 < result.rto_seconds < 120
    assert not list((source.repo / "drill").iterdir())  # the scratch copy is gone
    # What the relay exports from the repository
    metrics = {
        family.name: family.samples[0].value for family in BackupCollector(source.repo).collect()
    }
    assert metrics["rampart_backups"] == 1
    assert 0 <= metrics["rampart_backup_age_seconds"] < 600
    assert metrics["rampart_restore_drill_success"] == 1
    assert metrics["rampart_restore_drill_rpo_seconds"] == result.rpo_seconds
    assert metrics["rampart_restore_drill_rto_seconds"] == result.rto_seconds


def test_drill_checks_the_copy_only_once_it_has_replayed_all_the_wal(source: Source) -> None:
    """A busy database: much WAL after the backup. The copy answers read-only queries while
    it still replays (hot standby); checked then, it looked minutes old and short of rows
    (found on a `make up` stack after `make load`: RPO 752 s, 0 of 10,823 assessments)."""
    tenant, _ = add_tenant(source, 1)
    run_backup(source.url, source.repo, "full", say=lambda _: None)
    for _ in range(4):  # ~100 MB of WAL: seconds of replay
        source.sql(
            "INSERT INTO audit_events (tenant_id, action, subject)"
            f" SELECT '{tenant}', 'load', repeat('x', 200) FROM generate_series(1, 100000)"
        )
    canary.write(source.url)
    result = run_drill(source.url, source.repo, Roles(superuser="postgres"), say=lambda _: None)
    assert result.checks["row_counts"] == "ok", result.checks
    assert result.checks["canary"] == "ok", result.checks
    assert result.ok, result.checks


def test_drill_fails_without_a_canary_and_on_a_copy_without_forced_rls(source: Source) -> None:
    run_backup(source.url, source.repo, "full", say=lambda _: None)
    source.sql("ALTER TABLE assessments NO FORCE ROW LEVEL SECURITY")  # after the backup
    result = run_drill(source.url, source.repo, Roles(superuser="postgres"), say=lambda _: None)
    assert not result.ok
    assert "no canary row" in result.checks["canary"]
    assert "public.assessments" in result.checks["rls_forced"]
    assert result.checks["db_lint"] != "ok"


def rampart(source: Source, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "rampart.cli", *args],
        env={**env, **source.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_backup_run_list_and_verify_catch_a_damaged_backup(source: Source) -> None:
    done = rampart(source, "backup", "run")
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stderr
    (backup,) = list_backups(source.repo)
    listed = rampart(source, "backup", "list")
    assert backup.label in listed.stdout and "full" in listed.stdout
    assert rampart(source, "backup", "verify").returncode == 0

    assert backup.path is not None
    with (backup.path / "base.tar.gz").open("r+b") as damaged:
        damaged.seek(2000)
        damaged.write(b"\0" * 64)
    exported = rampart(source, "backup", "export")
    assert exported.returncode == 0, exported.stderr
    (dump,) = (source.repo / "exports").glob("*.dump")
    assert dump.stat().st_size > 0

    checked = rampart(source, "backup", "verify", backup.label)
    assert checked.returncode == 1
    assert backup.label in checked.stderr and "Traceback" not in checked.stderr
    assert not list_backups(source.repo)[0].verified


def test_restore_refuses_a_non_empty_target_without_force_and_a_running_server_always(
    source: Source, scratch: Path
) -> None:
    run_backup(source.url, source.repo, "full", say=lambda _: None)
    target = scratch / "data"
    target.mkdir()
    (target / "precious").write_text("keep me")
    refused = rampart(source, "restore", "--to", "latest", "--target", str(target))
    assert refused.returncode == 1
    assert "not empty" in refused.stderr and "Traceback" not in refused.stderr
    assert (target / "precious").read_text() == "keep me"

    running = rampart(
        source, "restore", "--to", "latest", "--target", str(source.server.data_dir), "--force"
    )
    assert running.returncode == 1
    assert "running Postgres" in running.stderr and "Traceback" not in running.stderr

    forced = rampart(source, "restore", "--to", "latest", "--target", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (target / "precious").exists() and (target / "PG_VERSION").exists()


@pytest.fixture
def s3_server() -> Iterator[str]:
    """A local S3-compatible server (moto's, S3 backend) with an empty bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106  # pragma: allowlist secret
    ).create_bucket(Bucket="offsite")
    yield endpoint
    server.stop()


def test_a_new_host_restores_from_the_s3_copy(source: Source, scratch: Path, s3_server: str):
    tenant, ids = add_tenant(source, 2)
    source.env |= {
        "BACKUP_S3_URL": "s3://offsite/rampart",
        "BACKUP_S3_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",  # pragma: allowlist secret
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    assert rampart(source, "backup", "run").returncode == 0
    ids.append(add_assessment(source, tenant))  # only in the WAL
    source.archive_now()
    pushed = rampart(source, "backup", "push")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed" in pushed.stderr
    assert "up to date" in rampart(source, "backup", "push").stderr  # nothing twice

    elsewhere = source.home / "other-host-backups"
    other = {**source.env, "BACKUP_DIR": str(elsewhere)}
    pulled = rampart(
        Source(source.server, source.home, elsewhere, source.url, other), "backup", "pull"
    )
    assert pulled.returncode == 0, pulled.stderr
    restore(elsewhere, scratch / "data", say=lambda _: None)
    copy = start_copy(scratch)
    with psycopg.connect(
        host=str(copy.socket_dir), port=copy.port, user="postgres", dbname="rampart"
    ) as conn:
        restored = {str(r[0]) for r in conn.execute("SELECT id FROM assessments")}
    assert restored == set(ids)


def test_the_schedule_backs_up_when_due_and_the_drill_command_passes_on_it(source: Source):
    add_tenant(source, 2)
    first = rampart(source, "backup", "schedule", "--once")
    assert first.returncode == 0, first.stderr
    assert [b.kind for b in list_backups(source.repo)] == ["full"]
    again = rampart(source, "backup", "schedule", "--once")  # nothing due yet: canary only
    assert again.returncode == 0, again.stderr
    assert len(list_backups(source.repo)) == 1
    assert source.sql("SELECT count(*) FROM ops.canary")[0][0] == 2
    assert last(source.repo) is None  # the first drill waits DRILL_INTERVAL_DAYS

    source.env["DRILL_INTERVAL_DAYS"] = "0.00001"  # 0.86 s after the first backup
    # The second round may have come sooner than that (a quick machine): wait till it is due.
    first_done = list_backups(source.repo)[0].finished_at
    wait_until(
        lambda: datetime.now(UTC) - first_done >= timedelta(days=0.00001), 5, 0.05,
        message="the first backup to be a drill interval old",
    )
    drilled = rampart(source, "backup", "schedule", "--once")
    assert drilled.returncode == 0, drilled.stderr
    result = last(source.repo)
    assert result is not None and result.ok, drilled.stdout + drilled.stderr
    assert len(list_backups(source.repo)) == 1

    drill = rampart(source, "drill")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "drill PASSED: RPO" in drill.stdout and "RTO" in drill.stdout
    assert "Traceback" not in drill.stderr
