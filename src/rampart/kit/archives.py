"""Unpacking a tar archive without letting it write outside its directory.

Python 3.11.4+ (and the 3.8–3.10 security releases) has extraction filters; the "data"
filter refuses absolute paths, `..`, links that leave the directory and device files. We
support any Python 3.11, so on an older one the same refusals are made here first."""

from __future__ import annotations

import tarfile
from pathlib import Path


def extract_all(tar: tarfile.TarFile, into: Path) -> None:
    """`tar.extractall(into)` that never writes outside `into` (tarfile.TarError if a
    member would)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    root = into.resolve()
    for member in tar.getmembers():
        where = (root / member.name).resolve()
        if member.name.startswith("/") or not where.is_relative_to(root):
            raise tarfile.TarError(f"{member.name!r} would land outside {into}")
        if member.isdev():
            raise tarfile.TarError(f"{member.name!r} is a device file")
        if member.issym() or member.islnk():
            base = where.parent if member.issym() else root
            target = (base / member.linkname).resolve()
            if member.linkname.startswith("/") or not target.is_relative_to(root):
                raise tarfile.TarError(f"{member.name!r} links outside {into}")
    tar.extractall(into)  # noqa: S202  # nosec B202 - every member checked above
