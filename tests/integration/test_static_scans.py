"""Static scans in `make test` (and `make audit`): bandit, detect-secrets and pip-audit run
as the installed tools, in subprocesses, and their results are asserted here.

- bandit over src/ with the `[tool.bandit]` section of pyproject.toml: no HIGH severity.
- detect-secrets over the working tree's project files (tracked, and new files not yet
  committed; git-ignored ones such as .venv/, .rampart/ and .env are not project files):
  no finding that the reviewed `.secrets.baseline` does not hold, and every baseline entry
  reviewed as not a secret.
- the dependency audit (`python -m rampart.dep_audit`: pip-audit, plus PyPI's project
  records where the per-release records are refused) over requirements.lock: no known
  vulnerability outside vulnerability-allowlist.toml, no expired allowlist entry. When PyPI
  cannot be reached the audit fails: it never passes without having looked. Proven to look:
  a pin with a published advisory fails it.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import warnings
from datetime import date, timedelta
from pathlib import Path

import pytest
from tests.support import httpclient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASELINE = ROOT / ".secrets.baseline"
AUDIT_TIMEOUT_SECONDS = 400
# A real, published PyPA advisory that no release fixes (the maintainers will not: the
# Minerva timing attack on python-ecdsa), so every ecdsa release carries it, the newest too.
ECDSA_ADVISORY = "GHSA-wj6h-64fc-37mp"  # CVE-2024-23342
# An old release with a published advisory long fixed (CVE-2019-10906, sandbox escape).
OLD_VULNERABLE_PIN = "jinja2==2.10"

# Seconds each (detect-secrets reads every project file; the audit asks PyPI): in `make test`
# and `make audit`, where they run beside the rest of the suite; not in `make test-fast`.
pytestmark = pytest.mark.slow


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


# --- dependency audit --------------------------------------------------------------------


def dep_audit(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """`python -m rampart.dep_audit --json ...`: (exit code, report, stderr)."""
    import os

    result = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [sys.executable, "-m", "rampart.dep_audit", "--json", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=AUDIT_TIMEOUT_SECONDS,
        check=False,
        env={**os.environ, **(env or {})},
    )
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.returncode, report, result.stderr


def newest_ecdsa() -> str:
    """ecdsa's newest release, from PyPI (the system trust store: a TLS-inspecting proxy)."""
    context = ssl.create_default_context()
    response = httpclient.get("https://pypi.org/pypi/ecdsa/json", verify=context, timeout=30)
    response.raise_for_status()
    return response.json()["info"]["version"]


def all_ids(report: dict) -> set[str]:
    return {i for f in report["findings"] for i in (f["id"], *f["aliases"])}


def test_dependency_audit_of_the_lock_finds_no_open_vulnerability():
    code, report, stderr = dep_audit()
    assert report, f"the audit did not run (exit {code}):\n{stderr[-3000:]}"
    print(f"dependency audit: {report['summary']}")
    assert report["pins"] > 100 and report["audited"] > 0, report["summary"]
    assert report["audited"] + len(report["unaudited"]) == report["pins"], report
    assert code == 0, "the dependency audit failed:\n" + "\n".join(report["failures"])
    if report["unaudited"]:
        warnings.warn(
            f"dependency audit: {len(report['unaudited'])} of {report['pins']} pins not "
            "audited (PyPI's per-release records are refused on this network; these pins are "
            "behind their newest release; `make lock` moves them): "
            + ", ".join(f"{u['name']}=={u['version']}" for u in report["unaudited"]),
            stacklevel=1,
        )


def test_dependency_audit_fails_on_a_pin_with_a_published_advisory(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text(f"ecdsa=={newest_ecdsa()}\n{OLD_VULNERABLE_PIN}\n")
    code, report, stderr = dep_audit("--lock", str(lock), "--allowlist", str(tmp_path / "none"))
    assert code == 1, f"exit {code}: {stderr[-2000:]}"
    assert ECDSA_ADVISORY in all_ids(report), report
    assert any(ECDSA_ADVISORY in failure for failure in report["failures"]), report
    # The old pin is found vulnerable (where PyPI serves per-release records) or listed as
    # not audited (where it does not): never counted as clean.
    jinja = [f for f in report["findings"] if f["package"] == "jinja2"]
    unaudited = [u for u in report["unaudited"] if u["name"] == "jinja2"]
    assert jinja or unaudited, report
    if jinja:
        assert "CVE-2019-10906" in all_ids(report)


def test_an_allowlisted_advisory_passes_until_its_entry_expires(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text(f"ecdsa=={newest_ecdsa()}\n")
    allowlist = tmp_path / "allow.toml"

    def entry(expires: date, reason: str = "we never sign with ecdsa; only verify") -> str:
        return (
            f'[[accept]]\nid = "{ECDSA_ADVISORY}"\npackage = "ecdsa"\n'
            f'reason = "{reason}"\nexpires = {expires.isoformat()}\n'
        )

    allowlist.write_text(entry(date.today() + timedelta(days=30)))
    code, report, stderr = dep_audit("--lock", str(lock), "--allowlist", str(allowlist))
    assert code == 0, report.get("failures") or stderr[-2000:]
    [finding] = report["findings"]
    assert finding["accepted"] == "we never sign with ecdsa; only verify"

    allowlist.write_text(entry(date.today() - timedelta(days=1)))
    code, report, _ = dep_audit("--lock", str(lock), "--allowlist", str(allowlist))
    assert code == 1
    assert any("expired" in f for f in report["failures"]), report["failures"]
    assert any(ECDSA_ADVISORY in f and "known vulnerability" in f for f in report["failures"])

    allowlist.write_text(entry(date.today() + timedelta(days=30), reason=""))
    code, report, _ = dep_audit("--lock", str(lock), "--allowlist", str(allowlist))
    assert code == 1 and any("reason" in f for f in report["failures"]), report["failures"]


def test_dependency_audit_fails_loudly_when_pypi_cannot_be_reached(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("ecdsa==0.19.2\n")
    # Every request goes through a proxy that refuses connections: PyPI is unreachable.
    proxy = "http://127.0.0.1:1"
    code, report, stderr = dep_audit(
        "--lock", str(lock), env={"HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": ""}
    )
    assert code == 2 and not report, (code, report)
    assert "could not run" in stderr and "cannot be reached" in stderr, stderr[-2000:]
