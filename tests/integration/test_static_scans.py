"""Static scans in `make test` (and `make audit`): bandit, detect-secrets and pip-audit run
as the installed tools, in subprocesses, and their results are asserted here.

- bandit over src/ with the `[tool.bandit]` section of pyproject.toml: no HIGH severity.
- detect-secrets over the working tree's project files (tracked, and new files not yet
  committed; git-ignored ones such as .venv/, .rampart/ and .env are not project files):
  no finding that the reviewed `.secrets.baseline` does not hold, and every baseline entry
  reviewed as not a secret.
- pip-audit over requirements.lock: no known vulnerability. It needs the vulnerability
  service on the network: when that cannot be reached (offline, blocked) or knows none of
  our pins, the test says so in a warning and passes; a missing tool is still a failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASELINE = ROOT / ".secrets.baseline"
# Known vulnerabilities accepted for now, each with its reason: {"GHSA-...": "why"}.
ACCEPTED_VULNERABILITIES: dict[str, str] = {}
PIP_AUDIT_TIMEOUT_SECONDS = 120
# How pip-audit (requests) fails when the vulnerability service cannot be reached; any other
# failure (a bad lock file, a crash) fails the test.
NETWORK_FAILURES = (
    "ConnectionError",
    "ProxyError",
    "Timeout",
    "NameResolutionError",
    "Max retries exceeded",
    "network may be blocking",
)


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed in {BIN} (it is pinned in requirements.lock)"
    return str(path)


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own tools, fixed arguments
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- bandit ------------------------------------------------------------------------------


def test_bandit_finds_no_high_severity_issue_in_src():
    result = run(tool("bandit"), "-c", "pyproject.toml", "-r", "src", "-f", "json", "-q")
    report = json.loads(result.stdout)
    assert not report["errors"], report["errors"]
    high = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
        for r in report["results"]
        if r["issue_severity"] == "HIGH"
    ]
    totals = report["metrics"]["_totals"]
    print(
        f"bandit: HIGH {totals['SEVERITY.HIGH']}, MEDIUM {totals['SEVERITY.MEDIUM']}, "
        f"LOW {totals['SEVERITY.LOW']} in {totals['loc']} lines"
    )
    assert not high, "bandit HIGH severity:\n" + "\n".join(high)
    assert totals["loc"] > 1000  # it really scanned src/


# --- detect-secrets ----------------------------------------------------------------------


def project_files() -> list[str]:
    """Tracked files plus new, not yet committed ones; never what .gitignore ignores."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("detect-secrets needs git to list the project's files")
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    assert listed.returncode == 0, listed.stderr
    names = {name for name in listed.stdout.split("\0") if name}
    return sorted(n for n in names if (ROOT / n).is_file() and n != ".secrets.baseline")


def secrets_scan() -> dict[str, list[dict]]:
    # --all-files: scan exactly these paths, including files git does not track yet.
    result = run(tool("detect-secrets"), "scan", "--all-files", *project_files())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["results"]


def test_detect_secrets_finds_nothing_beyond_the_reviewed_baseline():
    baseline = json.loads(BASELINE.read_text())["results"]
    known = {(name, s["hashed_secret"]) for name, found in baseline.items() for s in found}
    found = secrets_scan()
    new = [
        f"{name}:{s['line_number']} {s['type']}"
        for name, items in found.items()
        for s in items
        if (name, s["hashed_secret"]) not in known
    ]
    count = sum(len(items) for items in found.values())
    print(f"detect-secrets: {count} findings, all in the reviewed baseline: {not new}")
    assert not new, (
        "detect-secrets found possible secrets not in .secrets.baseline. Remove the secret; "
        "if it is a false positive, add it to the baseline and review it (see "
        "docs/security.md, Scanning and fuzzing):\n" + "\n".join(new)
    )


def test_every_baseline_entry_was_reviewed_as_not_a_secret():
    baseline = json.loads(BASELINE.read_text())["results"]
    unreviewed = [
        f"{name}:{s['line_number']} {s['type']}"
        for name, found in baseline.items()
        for s in found
        if s.get("is_secret") is not False
    ]
    assert baseline and not unreviewed, "unreviewed or real secrets:\n" + "\n".join(unreviewed)


# --- pip-audit ---------------------------------------------------------------------------


def test_pip_audit_finds_no_known_vulnerability_in_the_lock(tmp_path):
    report_file = tmp_path / "pip-audit.json"
    command = [
        tool("pip-audit"),
        "-r", "requirements.lock",
        "--no-deps", "--disable-pip",  # every pin is exact: no resolver, no venv, fast
        "--progress-spinner", "off",
        "--timeout", "5",
        "-f", "json", "-o", str(report_file),
    ]  # fmt: skip
    for vuln_id in ACCEPTED_VULNERABILITIES:
        command += ["--ignore-vuln", vuln_id]
    try:
        result = run(*command, timeout=PIP_AUDIT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        warnings.warn(
            f"pip-audit: no answer within {PIP_AUDIT_TIMEOUT_SECONDS}s; not audited",
            stacklevel=1,
        )
        return
    if not report_file.exists():  # it stopped before writing a report
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        assert any(sign in result.stderr for sign in NETWORK_FAILURES), result.stderr[-3000:]
        warnings.warn(f"pip-audit: vulnerability service unreachable: {last[:300]}", stacklevel=1)
        return
    dependencies = json.loads(report_file.read_text())["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v['fix_versions']) or '-'})"
        for d in audited
        for v in d.get("vulns", [])
    ]
    print(f"pip-audit: {len(audited)} of {len(dependencies)} pins audited, {len(vulnerable)} vulns")
    if not audited:
        reason = dependencies[0]["skip_reason"] if dependencies else "empty lock"
        warnings.warn(
            f"pip-audit: the registry answered but audited none of {len(dependencies)} pins "
            f"(e.g. {reason})",
            stacklevel=1,
        )
    assert not vulnerable, "known vulnerabilities in requirements.lock:\n" + "\n".join(vulnerable)
    assert result.returncode == 0, result.stderr[-2000:]
