"""The backups in a repository: each base/<label>/ with its rampart.json, and the chains
(full → incrementals) a restore needs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from rampart.backups import BackupError

META = "rampart.json"


@dataclass
class Backup:
    label: str  # UTC start time to the ms, 20261206T201500123Z: sorts in time order
    kind: str  # full | incremental
    parent: str | None  # the backup an incremental builds on
    started: str  # ISO 8601, UTC
    finished: str
    timeline: int
    start_lsn: str
    end_lsn: str
    size_bytes: int
    seconds: float
    verified: bool
    path: Path | None = None

    @property
    def finished_at(self) -> datetime:
        return datetime.fromisoformat(self.finished)

    def save(self) -> None:
        assert self.path is not None
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        (self.path / META).write_text(json.dumps(data, indent=2) + "\n")


def base_dir(repo: Path) -> Path:
    return repo / "base"


def list_backups(repo: Path) -> list[Backup]:
    """Finished backups, oldest first (a `.partial` directory is one still being taken or
    abandoned, never listed)."""
    found = []
    for meta in sorted(base_dir(repo).glob(f"*/{META}")):
        if meta.parent.name.endswith(".partial"):
            continue
        found.append(Backup(**json.loads(meta.read_text()), path=meta.parent))
    return found


def chain(backups: list[Backup], last: Backup) -> list[Backup]:
    """`last` and the backups it builds on, full first."""
    by_label = {b.label: b for b in backups}
    found = [last]
    while found[0].parent is not None:
        parent = by_label.get(found[0].parent)
        if parent is None:
            raise BackupError(f"backup {last.label} needs {found[0].parent}, which is gone")
        found.insert(0, parent)
    return found


def for_target(backups: list[Backup], target: datetime | None) -> list[Backup]:
    """The chain of the newest backup finished before `target` (None: the newest)."""
    usable = [b for b in backups if b.verified and (target is None or b.finished_at < target)]
    if not usable:
        when = "" if target is None else f" finished before {target.isoformat()}"
        raise BackupError(f"no verified backup{when}: run `rampart backup run` first")
    return chain(backups, usable[-1])


def find(backups: list[Backup], label: str) -> Backup:
    for backup in backups:
        if backup.label == label:
            return backup
    raise BackupError(f"no backup {label!r} (see `rampart backup list`)")
