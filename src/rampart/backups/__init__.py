"""Backups, point-in-time recovery and restore drills (docs/backups.md).

Our code only orchestrates PostgreSQL's own tools, shipped with the embedded Postgres:
pg_basebackup (full and incremental), pg_verifybackup, pg_combinebackup and the server's
archive_command / restore_command. docs/backups.md says why not Barman.

The repository (`BACKUP_DIR`, default `<RAMPART_HOME>/backups/`):

    wal/<segment>.gz               archived WAL, written by the server (wal.py)
    base/<label>/                  one base backup: base.tar.gz, pg_wal.tar.gz,
                                   backup_manifest, rampart.json (catalog.py)
    drills.jsonl, last-drill.json  every drill's result (drill.py)
"""

from __future__ import annotations


class BackupError(RuntimeError):
    """An operator-facing failure: one line, no traceback."""
