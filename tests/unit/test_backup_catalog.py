"""The backup catalogue's rules without a server: which chain a restore uses, what the
retention policy keeps, and how WAL files are named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rampart.backups import BackupError
from rampart.backups.backup import apply_retention
from rampart.backups.catalog import Backup, for_target, list_backups
from rampart.backups.wal import archive_command, segment_name

NOW = datetime.now(UTC)


def make(repo: Path, days_ago: float, kind: str = "full", parent: str | None = None) -> str:
    finished = NOW - timedelta(days=days_ago)
    label = finished.strftime("%Y%m%dT%H%M%S") + "000Z"
    path = repo / "base" / label
    path.mkdir(parents=True)
    Backup(
        label,
        kind,
        parent,
        finished.isoformat(),
        finished.isoformat(),
        1,
        "0/2000028",
        "0/2000100",
        10,
        0.1,
        True,
        path,
    ).save()
    return label


def test_retention_drops_old_backups_but_keeps_what_a_kept_incremental_builds_on(tmp_path):
    old_full = make(tmp_path, 45)
    old_chain_full = make(tmp_path, 35)
    incremental = make(tmp_path, 29, "incremental", old_chain_full)
    newest = make(tmp_path, 1)
    removed = apply_retention(tmp_path, 30, say=lambda _: None)
    assert removed == [old_full]
    assert [b.label for b in list_backups(tmp_path)] == [old_chain_full, incremental, newest]


def test_retention_always_keeps_the_newest_chain(tmp_path):
    full = make(tmp_path, 50)
    incremental = make(tmp_path, 40, "incremental", full)
    assert apply_retention(tmp_path, 30, say=lambda _: None) == []
    assert [b.label for b in list_backups(tmp_path)] == [full, incremental]


def test_a_restore_uses_the_newest_chain_finished_before_the_target(tmp_path):
    first = make(tmp_path, 10)
    second = make(tmp_path, 5)
    incremental = make(tmp_path, 4, "incremental", second)
    backups = list_backups(tmp_path)
    assert [b.label for b in for_target(backups, None)] == [second, incremental]
    assert [b.label for b in for_target(backups, NOW - timedelta(days=6))] == [first]
    with pytest.raises(BackupError, match="no verified backup finished before"):
        for_target(backups, NOW - timedelta(days=11))


def test_wal_file_names_and_the_archive_command_quoting():
    assert segment_name(1, "0/2000028") == "000000010000000000000002"
    assert segment_name(2, "16/B374D848") == "0000000200000016000000B3"
    command = archive_command(Path("/srv/it's 100%/wal"))
    assert "100%%" in command and "%f" in command and "'\"'\"'" in command


def test_no_repository_serves_no_backup_metrics(tmp_path):
    # A deployment that keeps no backups here (a managed database) must not report
    # "0 backups" (RampartBackupStale would page for nothing); an empty one does.
    from rampart.backups.metrics import BackupCollector

    assert list(BackupCollector(tmp_path / "none").collect()) == []
    (tmp_path / "repo").mkdir()
    names = [family.name for family in BackupCollector(tmp_path / "repo").collect()]
    assert "rampart_backups" in names
