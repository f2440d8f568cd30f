"""Run the real `rampart` command against the test stack."""

from __future__ import annotations

import os
import subprocess
import sys


def rampart(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "rampart.cli", *args],
        env={**os.environ, "COLUMNS": "320"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"rampart {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result
