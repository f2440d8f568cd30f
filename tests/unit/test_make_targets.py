"""The Makefile's test targets keep their gates: `make test` runs the whole suite in
parallel, the billing tests in a pass that measures the billing module's branch coverage
and holds it at >= 90 %, the Supabase-shaped pass and the timing pass; `make test-fast` is
the inner loop."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str) -> str:
    """The commands `make <target>` would run (make -n), with the variables expanded."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


# Every test module that marks a test `timing` (tests/conftest.py refuses other ways); the
# mark is spelt in two parts so that this module is not one of them.
TIMING_MARK = "mark." + "timing"
TIMING_FILES = {
    path.relative_to(ROOT).as_posix()
    for path in (ROOT / "tests").rglob("test_*.py")
    if TIMING_MARK in path.read_text()
}


def _files(command: str) -> set[str]:
    return {word for word in command.split() if word.startswith("tests/")}


def pytest_lines(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if " -m pytest" in line]


def test_make_test_measures_billing_branch_coverage_and_fails_under_90_percent():
    # One collection that leaves the bytecode warm, then the main run, the billing pass, the
    # web app's checks and the Supabase-shaped pass side by side, then the timing tests.
    collect, *lines = pytest_lines(dry_run("test"))
    assert "--collect-only" in collect.split(), collect  # once, before the passes
    assert len(lines) == 5, lines
    main = next(line for line in lines if "--ignore=" in line)
    billing = next(line for line in lines if "--cov=" in line)
    supabase = next(line for line in lines if "RAMPART_TEST_DB_SHAPE" in line)
    timing, timing_pool = lines[-2:]
    for flag in ("--cov=rampart.billing", "--cov-branch", "--cov-fail-under=90"):
        assert flag in billing.split(), billing
    assert "--cov" not in main, main
    for line in (main, billing):
        assert re.search(r"-n \d+ --dist loadgroup", line) and "not timing" in line, line
    # The whole suite (testpaths, not a selection) but the billing modules, which the
    # billing pass runs; the timing tests are collected from the files that mark them.
    ignored = {word.removeprefix("--ignore=") for word in main.split() if "--ignore=" in word}
    assert ignored and ignored <= _files(billing), (main, billing)
    assert not _files(main), main  # no paths: testpaths, less the ignored modules
    # The timing tests after it, in two streams: the pool-holding ones beside the rest.
    assert '-m "timing and not slow"' in timing and '-m "timing and slow"' in timing_pool
    for line in (timing, timing_pool):
        assert "no:xdist" in line and _files(line) == TIMING_FILES, line
    assert "RAMPART_TEST_DB_SHAPE=supabase" in supabase


def test_make_test_fast_runs_unit_and_integration_without_the_slow_tests():
    collect, fast, timing = pytest_lines(dry_run("test-fast"))
    assert "--collect-only" in collect.split(), collect
    assert "(unit or integration) and not slow and not timing" in fast, fast
    assert '-m "timing and not slow"' in timing and "no:xdist" in timing, timing
    assert _files(timing) == TIMING_FILES, timing
