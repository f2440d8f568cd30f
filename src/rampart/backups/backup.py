"""Taking base backups (pg_basebackup, gzip, full or incremental), verifying them
(pg_verifybackup) and applying the retention policy."""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from rampart.backups import BackupError
from rampart.backups.catalog import META, Backup, base_dir, chain, list_backups
from rampart.backups.tools import interactive, run, split_password, tool
from rampart.backups.wal import segment_name

Say = Callable[[str], None]


def _now() -> datetime:
    return datetime.now(UTC)


def due(repo: Path, full_every: timedelta, incremental_every: timedelta) -> str | None:
    """What the schedule wants now: `full`, `incremental` or None."""
    backups = [b for b in list_backups(repo) if b.verified]
    if not backups:
        return "full"
    last_full = max((b.finished_at for b in backups if b.kind == "full"), default=None)
    if last_full is None or _now() - last_full >= full_every:
        return "full"
    if _now() - backups[-1].finished_at >= incremental_every:
        return "incremental"
    return None


def _summaries_on(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return conn.execute("SHOW summarize_wal").fetchone()[0] == "on"
    except psycopg.Error as exc:
        raise BackupError(f"cannot reach the database to back up: {exc}".strip()) from None


@contextmanager
def _exclusive(repo: Path) -> Iterator[None]:
    """One backup at a time per repository (the schedule and a manual run); whoever holds
    the lock may clear the `.partial` leftovers of a run that was killed."""
    base_dir(repo).mkdir(mode=0o700, parents=True, exist_ok=True)
    with (repo / ".backup.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup into {repo} is running: wait for it") from None
        for leftover in base_dir(repo).glob("*.partial"):
            shutil.rmtree(leftover, ignore_errors=True)
        yield


def run_backup(url: str, repo: Path, kind: str = "auto", say: Say = print) -> Backup:
    """Take one base backup into `repo` and verify it. `kind`: full, incremental (on the
    newest backup) or auto (incremental when a verified full exists and the server keeps
    WAL summaries)."""
    with _exclusive(repo):
        return _run_backup(url, repo, kind, say)


def _run_backup(url: str, repo: Path, kind: str, say: Say) -> Backup:
    backups = [b for b in list_backups(repo) if b.verified]
    if kind == "auto":
        kind = "incremental" if backups and _summaries_on(url) else "full"
    if kind == "incremental" and not backups:
        raise BackupError("no verified backup to build an incremental on: take a full one")
    parent = backups[-1] if kind == "incremental" else None
    started = _now()
    label = started.strftime("%Y%m%dT%H%M%S") + f"{started.microsecond // 1000:03d}Z"
    final = base_dir(repo) / label
    if final.exists():
        raise BackupError(f"backup {label} exists already: wait a second and retry")
    partial = final.with_name(label + ".partial")
    base_dir(repo).mkdir(mode=0o700, parents=True, exist_ok=True)
    conninfo, env = split_password(url)
    cmd = [tool("pg_basebackup"), "-d", conninfo, "-D", str(partial), "-Ft", "-z"]
    cmd += ["-X", "stream", "-c", "fast", "-l", f"rampart {label}"]
    if parent is not None:
        assert parent.path is not None
        cmd.append(f"--incremental={parent.path / 'backup_manifest'}")
    if interactive():
        cmd.append("-P")
    what = kind + ("" if parent is None else f" on {parent.label}")
    say(f"backup {label}: {what}, into {final}")
    clock = time.monotonic()
    try:
        run(cmd, "pg_basebackup", env, progress=interactive())
        manifest = json.loads((partial / "backup_manifest").read_text())
        wal = manifest["WAL-Ranges"][0]
        backup = Backup(
            label=label,
            kind=kind,
            parent=None if parent is None else parent.label,
            started=started.isoformat(),
            finished=_now().isoformat(),
            timeline=int(wal["Timeline"]),
            start_lsn=wal["Start-LSN"],
            end_lsn=wal["End-LSN"],
            size_bytes=sum(f.stat().st_size for f in partial.iterdir()),
            seconds=round(time.monotonic() - clock, 3),
            verified=False,
            path=partial,
        )
        backup.save()
        verify(backup, say)
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    backup.path = final
    say(f"backup {label}: {backup.size_bytes / 1e6:.1f} MB in {backup.seconds:.1f}s, verified")
    return backup


def verify(backup: Backup, say: Say = print) -> None:
    """pg_verifybackup: every file against the manifest's checksums. The WAL inside a tar
    backup is not parsed (pg_verifybackup cannot, -n); restore drills replay it."""
    assert backup.path is not None
    say(f"verifying {backup.label} (pg_verifybackup)")
    run(
        [tool("pg_verifybackup"), "-n", "-q", "-i", META, str(backup.path)],
        f"verify {backup.label}",
    )
    backup.verified = True
    backup.save()


def apply_retention(repo: Path, days: int, say: Say = print) -> list[str]:
    """Delete backups older than `days` that no kept backup builds on, always keeping the
    newest chain, then the archived WAL that only they needed."""
    backups = list_backups(repo)
    if not backups:
        return []
    cutoff = _now() - timedelta(days=days)
    keep = {b.label for b in backups if b.finished_at >= cutoff}
    keep |= {b.label for b in chain(backups, backups[-1])}
    for backup in backups:  # a kept incremental keeps its parents
        if backup.label in keep:
            keep |= {b.label for b in chain(backups, backup)}
    removed = [b for b in backups if b.label not in keep]
    for backup in removed:
        assert backup.path is not None
        shutil.rmtree(backup.path)
        say(f"retention: removed backup {backup.label} (older than {days} days)")
    oldest = next(b for b in backups if b.label in keep)
    wal = repo / "wal"
    if removed and wal.is_dir():
        first_needed = segment_name(oldest.timeline, oldest.start_lsn)
        run([tool("pg_archivecleanup"), "-x", ".gz", str(wal), first_needed], "WAL cleanup")
    return [b.label for b in removed]
