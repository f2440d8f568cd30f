"""Continuous WAL archiving: Postgres' own `archive_command`, gzip-compressed segments in
`<repository>/wal/`, and the matching `restore_command` for recovery.

archive_command runs inside the server, as the server user, for every finished segment
(and at least every `archive_timeout` seconds while anything is written, which bounds the
RPO). Rather than a supervised pg_receivewal, the server retries a failed segment itself
and reports failures in pg_stat_archiver, which the metrics read.
"""

from __future__ import annotations

import os
import pwd
import shlex
from pathlib import Path


def _quoted(directory: Path) -> str:
    # shell-quoted, and `%` doubled: Postgres expands %f / %p in the command itself
    return shlex.quote(str(directory)).replace("%", "%%")


def archive_command(directory: Path) -> str:
    """Compress `%p` into `<dir>/%f.gz` (written aside, then renamed). A segment already
    archived succeeds only when identical: a retry after a crash is fine, a different file
    under the same name (two clusters, one archive) is a failure, never an overwrite."""
    d = _quoted(directory)
    return (
        f'f={d}/%f.gz; if [ -f "$f" ]; then gzip -dc "$f" | cmp -s - %p; '
        f'else gzip -1 -c %p > "$f.part" && mv "$f.part" "$f"; fi'
    )


def restore_command(directory: Path) -> str:
    """The other way round; exits non-zero (\"not archived\") when the segment is absent."""
    d = _quoted(directory)
    return f'f={d}/%f.gz; [ -f "$f" ] && gzip -dc "$f" > %p'


def archive_settings(
    directory: Path, timeout: int, owner: pwd.struct_passwd | None = None
) -> dict[str, str]:
    """Server settings that archive into `directory` (created, private to the server user)."""
    directory = Path(directory).resolve()
    prepare_dir(directory, owner)
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": archive_command(directory),
        "archive_timeout": str(timeout),
        "summarize_wal": "on",  # pg_basebackup --incremental needs WAL summaries
        "wal_compression": "on",
    }


def server_owner() -> pwd.struct_passwd | None:
    """Who runs the embedded Postgres when we are root (it refuses root); None otherwise."""
    from rampart.devstack.postgres import SERVER_USER

    return pwd.getpwnam(SERVER_USER) if os.geteuid() == 0 else None


def prepare_dir(directory: Path, owner: pwd.struct_passwd | None) -> None:
    """Create the WAL archive directory; as root, the server user owns it (archive_command
    writes it, restore_command reads it) and may pass through its parent."""
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    if owner is not None:
        os.chmod(directory.parent, 0o711)  # noqa: S103 - traverse only, no read
        for path in [directory, *directory.iterdir()]:
            if path.stat().st_uid != owner.pw_uid:
                os.chown(path, owner.pw_uid, owner.pw_gid)


def segment_name(timeline: int, lsn: str, segment_size: int = 16 * 1024 * 1024) -> str:
    """The WAL file holding `lsn` ('16/B374D848') on `timeline`, as Postgres names it."""
    high, low = (int(part, 16) for part in lsn.split("/"))
    position = (high << 32) | low
    per_id = 0x1_0000_0000 // segment_size
    segment = position // segment_size
    return f"{timeline:08X}{segment // per_id:08X}{segment % per_id:08X}"
