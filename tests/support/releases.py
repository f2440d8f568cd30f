"""The previous release's code, from git history: the commit before the newest migration
was added (its parent), unpacked to a folder. Run with PYTHONPATH=<folder>/src, its
`python -m rampart.cli ...` imports that code, not ours (the editable install is a .pth
path entry, which comes after PYTHONPATH)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from alembic.script import ScriptDirectory

from rampart.kit.archives import extract_all
from rampart.kit.db.migrate import ROOT, _alembic_config


def _git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args)} failed: {done.stderr.strip()} (this test needs the repository"
            " with its history: a full clone, not an archive or a shallow clone)"
        )
    return done.stdout.strip()


def newest_migration() -> tuple[str, Path]:
    """The newest head revision (revisions are numbered) and its file."""
    script = ScriptDirectory.from_config(_alembic_config(""))
    newest = script.get_revision(max(script.get_heads()))
    return newest.revision, Path(newest.path)


def previous_release() -> str:
    """The commit whose code ran before the newest migration: the parent of the commit
    that added it, or HEAD while that migration is not committed yet."""
    _, path = newest_migration()
    added = _git("log", "--format=%H", "--diff-filter=A", "--", str(path.relative_to(ROOT)))
    if not added:
        return _git("rev-parse", "HEAD")
    return _git("rev-parse", f"{added.splitlines()[-1]}^")


def unpack(commit: str, into: Path) -> Path:
    archive = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True, timeout=120, check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        extract_all(tar, into)
    return into
