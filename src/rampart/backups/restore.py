"""Point-in-time restore into a data directory: unpack the backup chain, pg_combinebackup
the incrementals onto their full backup, and leave recovery settings that replay the WAL
archive up to the target. Starting the server on the directory does the replay."""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rampart.backups import BackupError
from rampart.backups.catalog import Backup, for_target, list_backups
from rampart.backups.tools import run, tool
from rampart.backups.wal import restore_command, server_owner
from rampart.kit.archives import extract_all
from rampart.kit.processes import pid_alive

Say = Callable[[str], None]


def _running_pid(target: Path) -> int | None:
    try:
        first = (target / "postmaster.pid").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() and pid_alive(int(first)) else None


def check_target(target: Path, force: bool) -> None:
    """Refuse a directory a live server uses (always: stop it first) and, without
    `force`, any non-empty one."""
    pid = _running_pid(target)
    if pid is not None:
        raise BackupError(
            f"{target} is the data directory of a running Postgres (pid {pid}): stop it "
            "first; --force never restores over a running server"
        )
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise BackupError(
            f"{target} is not empty: choose an empty directory, or --force to replace it"
        )


def _unpack(backup: Backup, into: Path) -> None:
    assert backup.path is not None
    into.mkdir(mode=0o700, parents=True)
    try:
        with tarfile.open(backup.path / "base.tar.gz") as tar:
            extract_all(tar, into)
        wal = backup.path / "pg_wal.tar.gz"
        if wal.exists():
            with tarfile.open(wal) as tar:
                extract_all(tar, into / "pg_wal")
        shutil.copy2(backup.path / "backup_manifest", into / "backup_manifest")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(
            f"backup {backup.label} cannot be unpacked ({exc}): `rampart backup verify`"
        ) from None


def _hand_over(target: Path) -> None:
    """Postgres wants its data dir 0700 and, when we are root, owned by the server user."""
    target.chmod(0o700)
    owner = server_owner()
    if owner is None:
        return
    for directory, dirs, files in os.walk(target):
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        for name in dirs + files:
            os.chown(
                os.path.join(directory, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False
            )


def restore(
    repo: Path,
    target: Path,
    *,
    to_time: datetime | None = None,
    to_lsn: str | None = None,
    force: bool = False,
    say: Say = print,
) -> list[Backup]:
    """Write a data directory at `target` that recovers to `to_time` (or `to_lsn`; neither:
    the end of the archive) and then opens for writes. Returns the chain used."""
    target = Path(target).resolve()
    check_target(target, force)
    backups = for_target(list_backups(repo), to_time)
    say(f"restoring {' + '.join(b.label for b in backups)} into {target}")
    work = target.with_name(f".{target.name}.restore-work")
    shutil.rmtree(work, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target)
    try:
        for backup in backups:
            say(f"  unpacking {backup.label} ({backup.kind}, {backup.size_bytes / 1e6:.1f} MB)")
            _unpack(backup, work / backup.label)
        if len(backups) == 1:
            (work / backups[0].label).rename(target)
        else:
            say(f"  combining {len(backups)} backups (pg_combinebackup)")
            inputs = [str(work / b.label) for b in backups]
            run([tool("pg_combinebackup"), *inputs, "-o", str(target)], "pg_combinebackup")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    settings = {
        "restore_command": restore_command(repo / "wal"),
        "recovery_target_action": "promote",
        "recovery_target_timeline": "latest",
        # The copy must never write into the source's archive.
        "archive_mode": "off",
    }
    if to_time is not None:
        settings["recovery_target_time"] = to_time.isoformat(sep=" ")
        settings["recovery_target_inclusive"] = "false"
    elif to_lsn is not None:
        settings["recovery_target_lsn"] = to_lsn
    with (target / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n# rampart restore\n")
        for name, value in settings.items():
            conf.write(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n")
    (target / "recovery.signal").touch()
    (target / "postmaster.opts").unlink(missing_ok=True)
    _hand_over(target)
    point = to_time.isoformat() if to_time else to_lsn or "the end of the WAL archive"
    say(f"restored: starting Postgres on {target} replays the WAL up to {point}")
    return backups
