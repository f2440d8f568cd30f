"""The billing module (webhook verification included) stays ≥ 90% covered by its tests
(seed 003 Day 3), measured on every `make test`.

The webhook tests run again in a subprocess under `coverage` (branch coverage, which is
stricter than lines) on an embedded stack of their own: they need its superuser for ground
truth and stop its Redis, so the outer session's DATABASE_URL/REDIS_URL are not passed on.
The inner run collects the billing tests only (BILLING_TESTS), so it never reaches this file again;
RAMPART_COVERAGE_INNER guards against it all the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_TESTS = ROOT / "tests" / "integration" / "test_stripe_webhooks.py"
# The billing module is more than its webhook: plans and quotas, checkout and the fake
# Stripe, the lifecycle and reconciliation have tests of their own.
BILLING_TESTS = [
    WEBHOOK_TESTS,
    ROOT / "tests" / "integration" / "test_billing_quota.py",
    ROOT / "tests" / "integration" / "test_billing_lifecycle.py",
]
FAIL_UNDER = 90
INNER = "RAMPART_COVERAGE_INNER"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get(INNER)), reason="inside the coverage run"),
]


def _inner_env(stack) -> dict[str, str]:
    env = {**os.environ, INNER: "1"}
    for name in (*stack.local.env, "RAMPART_HOME"):
        env.pop(name, None)  # the outer stack's servers and home: the inner run has its own
    return env


def test_billing_module_coverage_is_at_least_90_percent(stack, tmp_path):
    if stack.postgres is None or stack.redis is None:
        pytest.skip("the webhook tests need the embedded stack (its superuser, a Redis to stop)")
    data = str(tmp_path / ".coverage")
    coverage = [sys.executable, "-m", "coverage"]
    run = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
        [
            *coverage,
            "run",
            "--branch",
            "--source=rampart.billing",
            f"--data-file={data}",
            "-m",
            "pytest",
            "-q",
            "-x",
            *map(str, BILLING_TESTS),
        ],
        cwd=ROOT,
        env=_inner_env(stack),
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert run.returncode == 0, f"the webhook tests failed under coverage:\n{run.stdout[-4000:]}"
    report = subprocess.run(  # noqa: S603
        [
            *coverage,
            "report",
            f"--data-file={data}",
            "--show-missing",
            f"--fail-under={FAIL_UNDER}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(report.stdout)
    assert report.returncode == 0, f"billing coverage below {FAIL_UNDER}%:\n{report.stdout}"
