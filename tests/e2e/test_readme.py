"""The README's "Try it" blocks run as pasted: each block marked TRY_IT runs with bash
(stopping at the first failing command), from the repository's root, against a real
`rampart up` (what `make up` runs) in a fresh home, and prints what the README says.

The blocks find the stack themselves (`rampart demo --url`): nothing here tells them its
port but the stack's own RAMPART_HOME, as in a newcomer's shell.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from tests.support.up import REPO, UpRunner

pytestmark = pytest.mark.slow

TRY_IT = "<!-- try-it: tests/e2e/test_readme.py runs the next block"
BLOCK_TIMEOUT = 180.0  # a signup, a mail through the worker, an assessment scored


def try_it_blocks(readme: str) -> list[str]:
    """The fenced sh block after each TRY_IT marker, in order."""
    return re.findall(re.escape(TRY_IT) + r"[^\n]*\n```sh\n(.*?)\n```", readme, re.DOTALL)


def run_block(block: str, stack: UpRunner) -> str:
    rampart = REPO / ".venv" / "bin" / "rampart"
    assert rampart.exists(), f"the README runs {rampart}: `make install` first"
    done = subprocess.run(  # noqa: S603 - bash runs the README's own lines
        ["bash", "-e", "-o", "pipefail", "-c", block],  # noqa: S607 - bash from PATH
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"this README block failed (exit {done.returncode}):\n{block}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


def test_readme_try_it_blocks_run_as_pasted_against_make_up(runner: UpRunner) -> None:
    demo, by_hand = try_it_blocks((REPO / "README.md").read_text())
    assert "localhost:8000" not in by_hand and ":8000/" not in by_hand  # the port is found
    runner.wait_up(runner.start())

    out = run_block(demo, runner)
    assert f"Rampart demo against {runner.url}" in out, out
    for step in ("signed up", "confirmed the address", "submitted assessment", "completed"):
        assert step in out, out
    assert re.search(r"Overall score: \d+/100", out), out
    assert "Observability" in out and "Roadmap" in out, out

    out = run_block(by_hand, runner)
    assert "Check your inbox" in out and "Your email address is confirmed." in out, out
    assert '"status": "completed"' in out, out
    assert re.search(r'"overall_score": \d+', out), out
    assert '"horizon_days"' in out, out  # the roadmap's items


def test_demo_without_a_running_stack_says_how_to_start_one(tmp_path) -> None:
    done = subprocess.run(  # noqa: S603 - our own command
        [str(REPO / ".venv" / "bin" / "rampart"), "demo"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "RAMPART_HOME": str(tmp_path), "ENV": "dev"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done
    assert f"no `rampart up` runs for {tmp_path}" in done.stderr, done.stderr
    assert "make up" in done.stderr and done.stdout == ""
