"""The off-site copy of the repository on an S3-compatible store (BACKUP_S3_URL).

The local repository stays the working copy (Postgres archives into it, restores read
from it); the bucket is a mirror that only grows: `push` uploads finished backups and
archived WAL it lacks, `pull` downloads what a (new, empty) local repository lacks.
Nothing is ever deleted from the bucket by us: a host that lost its disk and pushes an
empty repository must not erase the off-site copy. Expire old objects with a lifecycle
rule on the bucket (docs/backups.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from rampart.backups import BackupError
from rampart.backups.catalog import META, base_dir

Say = Callable[[str], None]


def _client(endpoint_url: str | None):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


def _split(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise BackupError(f"BACKUP_S3_URL must look like s3://BUCKET/PREFIX, not {url!r}")
    prefix = parsed.path.strip("/")
    return parsed.netloc, f"{prefix}/" if prefix else ""


def _local_files(repo: Path) -> dict[str, Path]:
    """Repository-relative key → file, for finished backups and archived WAL only."""
    files: dict[str, Path] = {}
    for meta in base_dir(repo).glob(f"*/{META}"):
        if meta.parent.name.endswith(".partial"):
            continue
        for path in meta.parent.iterdir():
            files[path.relative_to(repo).as_posix()] = path
    wal = repo / "wal"
    if wal.is_dir():
        for path in wal.glob("*.gz"):
            files[path.relative_to(repo).as_posix()] = path
    return files


def _remote_keys(client, bucket: str, prefix: str) -> set[str]:
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
    return keys


def push(repo: Path, url: str, endpoint_url: str | None = None, say: Say = print) -> int:
    """Upload what the bucket lacks; returns how many files. A backup's rampart.json goes
    last, so a half-pushed backup is never listed by a pull."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _split(url)
    try:
        client = _client(endpoint_url)
        remote = _remote_keys(client, bucket, prefix)
        missing = sorted(
            (key for key in _local_files(repo) if key not in remote),
            key=lambda key: (key.endswith(META), key),
        )
        files = _local_files(repo)
        for key in missing:
            client.upload_file(str(files[key]), bucket, prefix + key)
    except (BotoCoreError, ClientError) as exc:
        raise BackupError(f"push to {url} failed: {exc}") from None
    if missing:
        say(f"pushed {len(missing)} file(s) to {url}")
    return len(missing)


def pull(repo: Path, url: str, endpoint_url: str | None = None, say: Say = print) -> int:
    """Download what the local repository lacks (WAL files then go to the server user, who
    reads them during recovery); returns how many files."""
    from botocore.exceptions import BotoCoreError, ClientError

    from rampart.backups.wal import prepare_dir, server_owner

    bucket, prefix = _split(url)
    repo.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        client = _client(endpoint_url)
        local = _local_files(repo)
        wanted = sorted(
            (key for key in _remote_keys(client, bucket, prefix) if key not in local),
            key=lambda key: (key.endswith(META), key),
        )
        for key in wanted:
            path = repo / key
            if not path.resolve().is_relative_to(repo.resolve()):
                raise BackupError(f"refusing object {key!r}: it points outside {repo}")
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            client.download_file(bucket, prefix + key, str(partial))
            os.replace(partial, path)
    except (BotoCoreError, ClientError) as exc:
        raise BackupError(f"pull from {url} failed: {exc}") from None
    prepare_dir(repo / "wal", server_owner())
    say(f"pulled {len(wanted)} file(s) from {url} into {repo}")
    return len(wanted)
