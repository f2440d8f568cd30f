"""Backup and drill gauges, served by the relay next to the other system-wide gauges
(kit/jobs/relay_gauges.py says why one process): read from the repository's files and from
pg_stat_archiver (readable by any role) when Prometheus scrapes.

- `rampart_backup_last_success_timestamp_seconds`, `rampart_backup_age_seconds`,
  `rampart_backup_size_bytes`, `rampart_backups`: the newest verified base backup.
- `rampart_wal_archive_failures_total`, `rampart_wal_archive_failing` (the last attempt
  failed), `rampart_wal_archive_lag_seconds` (since the last segment was archived; the
  canary writes every minute, so with archive_timeout it stays near a minute).
- `rampart_restore_drill_success`, `rampart_restore_drill_timestamp_seconds`,
  `rampart_restore_drill_rpo_seconds`, `rampart_restore_drill_rto_seconds`.
A family is absent when its source is (no backup yet, no drill yet, database down). With
no repository at all, none is served: this deployment keeps no backups here (a managed
database's are the provider's, docs/backups.md), and "0 backups" would page for nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


async def _archiver() -> Any:
    from rampart.kit.db.pool import connect

    conn = await connect()
    try:
        return await conn.fetchrow(
            "SELECT failed_count, last_archived_time, last_failed_time FROM pg_stat_archiver"
        )
    finally:
        conn.terminate()


class BackupCollector:
    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from rampart.backups.catalog import list_backups
        from rampart.backups.drill import last

        if not self.repo.is_dir():
            return
        now = time.time()
        try:
            backups = [b for b in list_backups(self.repo) if b.verified]
        except (OSError, ValueError, TypeError):
            backups = []
        yield GaugeMetricFamily(
            "rampart_backups", "Verified base backups in the repository.", value=len(backups)
        )
        if backups:
            newest = backups[-1]
            finished = newest.finished_at.timestamp()
            yield GaugeMetricFamily(
                "rampart_backup_last_success_timestamp_seconds",
                "When the newest verified base backup finished (Unix time).",
                value=finished,
            )
            yield GaugeMetricFamily(
                "rampart_backup_age_seconds",
                "Seconds since the newest verified base backup finished.",
                value=now - finished,
            )
            yield GaugeMetricFamily(
                "rampart_backup_size_bytes",
                "Size of the newest verified base backup (compressed).",
                value=newest.size_bytes,
            )
        try:
            row = asyncio.run(_archiver())
        except Exception:  # noqa: BLE001 - a scrape never fails; rampart_dependency_up tells
            row = None
        if row is not None:
            yield CounterMetricFamily(
                "rampart_wal_archive_failures",
                "Failed archive_command runs (pg_stat_archiver.failed_count).",
                value=row["failed_count"],
            )
            archived, failed = row["last_archived_time"], row["last_failed_time"]
            yield GaugeMetricFamily(
                "rampart_wal_archive_failing",
                "1 when the server's last WAL archiving attempt failed.",
                value=int(failed is not None and (archived is None or failed > archived)),
            )
            if archived is not None:
                yield GaugeMetricFamily(
                    "rampart_wal_archive_lag_seconds",
                    "Seconds since the last WAL segment reached the archive.",
                    value=now - archived.timestamp(),
                )
        drill = last(self.repo)
        if drill is not None:
            yield GaugeMetricFamily(
                "rampart_restore_drill_success",
                "1 when the last restore drill passed every check and target.",
                value=int(drill.ok),
            )
            yield GaugeMetricFamily(
                "rampart_restore_drill_timestamp_seconds",
                "When the last restore drill started (Unix time).",
                value=datetime.fromisoformat(drill.started).timestamp(),
            )
            if drill.rpo_seconds is not None:
                yield GaugeMetricFamily(
                    "rampart_restore_drill_rpo_seconds",
                    "RPO the last restore drill measured (target time - newest canary row).",
                    value=drill.rpo_seconds,
                )
            if drill.rto_seconds is not None:
                yield GaugeMetricFamily(
                    "rampart_restore_drill_rto_seconds",
                    "RTO the last restore drill measured (start - the copy answers).",
                    value=drill.rto_seconds,
                )
