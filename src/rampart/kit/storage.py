"""Where uploaded files live: a small storage interface and its local-directory backend.

Files are stored under keys the app makes (random, never derived from client input) and
are never served back by path, so a hostile filename cannot reach the file system. A stored
file belongs to a database row: `store_in_transaction` moves it in and deletes it again if
the row's transaction does not commit, so a failed request leaves neither row nor file.

A small module of our own: the local backend is a few `os` calls, and an object store
(S3, GCS) would implement the same four methods.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio

from rampart.kit.db.transaction import Tx
from rampart.kit.errors import ServiceUnavailable
from rampart.kit.logging import get_logger

log = get_logger(__name__)

# What the file system answers when it cannot take a file, whatever the file: full (space
# or quota), read-only, or failing. The client may retry later; the operator must act.
_UNAVAILABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"
    message = "File storage is full or unavailable; retry later."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "60"})


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn the file system's "cannot take it" errors into 503 `storage_unavailable` (logged
    as an error), instead of a 500; every other OSError stays a bug."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _UNAVAILABLE:
            raise
        log.error("storage_unavailable", errno=errno.errorcode[exc.errno], error=str(exc))
        raise StorageUnavailable() from exc

# Keys are ours: lowercase hex and dashes in at most a few segments. Anything else is a bug,
# and refusing it keeps `..`, absolute paths and separators out of the file system.
_KEY = re.compile(r"[0-9a-f-]{1,64}(/[0-9a-f-]{1,64}){0,3}")


class Storage(Protocol):
    def spool_dir(self) -> Path:
        """A directory for files still being received (same file system as the store)."""

    def put(self, key: str, source: Path) -> None:
        """Move the finished file `source` in under `key`, atomically."""

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""


class LocalStorage:
    """Files under one directory (the domain names it: evidence/service.py, EVIDENCE_DIR):
    `<root>/<key>`, mode 0600, dirs 0700."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    def spool_dir(self) -> Path:
        spool = self.root / ".incoming"
        with storage_errors():
            spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        return spool

    def put(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(source, "rb") as handle:  # durable before it becomes visible
            os.fsync(handle.fileno())
        os.chmod(source, 0o600)
        try:
            os.replace(source, target)  # atomic on one file system (the spool dir's)
        except OSError:
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(source, partial)
            os.replace(partial, target)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


async def store_in_transaction(tx: Tx, storage: Storage, key: str, source: Path) -> None:
    """Store `source` under `key` now (fsync and rename, off the event loop), and delete it
    again unless `tx` commits (a rollback, or a COMMIT that fails, both end it so)."""
    with storage_errors():
        await anyio.to_thread.run_sync(storage.put, key, source)

    def discard() -> None:
        storage.delete(key)
        log.info("stored_file_discarded", reason="transaction did not commit")

    tx.on_rollback(discard)
