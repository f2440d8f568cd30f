"""The alert rules in ops/prometheus: promtool accepts them and passes their unit tests, every
alert says how bad it is, whom it concerns and which runbook to open, every alert has a firing
and a quiet promtool case, and the rules only use metric names the code really exports.

promtool comes from Debian's `prometheus` package (rampart.devstack.prometheus_tools), fetched
on first use when it is not on PATH: these tests never skip."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.metric_names import code_metrics

from rampart.devstack.prometheus_tools import ensure_binary

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "ops" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
# Recording-rule names (level:metric:operations) contain colons; metric names never do.
RECORDED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]*")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return ensure_binary("promtool")


def run_promtool(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in load(path)["groups"]:
            yield from group["rules"]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def alert_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    """(test file name, alert_rule_test case) for every case of every promtool test."""
    for path in TEST_FILES:
        for test in load(path).get("tests", []):
            for case in test.get("alert_rule_test", []):
                yield path.name, case


def test_rules_and_tests_exist():
    assert RULE_FILES, "no rule files in ops/prometheus/rules"
    assert TEST_FILES, "no promtool tests in ops/prometheus/tests"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: Path, path: Path):
    result = run_promtool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # promtool steps every case over hours of series: ~45 s in all
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(promtool: Path, path: Path):
    result = run_promtool(promtool, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid_and_loads_every_rule_file(promtool: Path):
    config = PROMETHEUS / "prometheus.yml"
    result = run_promtool(promtool, "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout, result.stdout


def test_every_alert_has_severity_service_and_annotations():
    problems = []
    for rule in alerting_rules():
        name, labels = rule["alert"], rule.get("labels", {})
        annotations = rule.get("annotations", {})
        if labels.get("severity") not in ("warning", "critical"):
            problems.append(f"{name}: severity {labels.get('severity')!r}")
        if not labels.get("service"):
            problems.append(f"{name}: no service label")
        for key in ("summary", "description", "runbook_url"):
            if not annotations.get(key):
                problems.append(f"{name}: no {key} annotation")
        url = annotations.get("runbook_url", "")
        if not re.fullmatch(r"docs/runbooks/[a-z0-9-]+\.md", url):
            problems.append(f"{name}: runbook_url {url!r} is not docs/runbooks/<file>.md")
    assert not problems, "\n".join(problems)


def test_every_runbook_url_is_a_file_in_the_repo():
    missing = sorted(
        {
            f"{rule['annotations']['runbook_url']} (for {rule['alert']})"
            for rule in alerting_rules()
            if not (ROOT / rule["annotations"]["runbook_url"]).is_file()
        }
    )
    assert not missing, "runbooks missing:\n" + "\n".join(missing)


def test_every_alert_and_severity_has_a_firing_and_a_quiet_promtool_case():
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for _file, case in alert_cases():
        expected = case.get("exp_alerts") or []
        if not expected:
            quiet.add(case["alertname"])
        for alert in expected:
            fired.add((case["alertname"], alert.get("exp_labels", {}).get("severity", "")))
    wanted = {(rule["alert"], rule["labels"]["severity"]) for rule in alerting_rules()}
    assert not wanted - fired, f"no firing case for (alert, severity): {sorted(wanted - fired)}"
    names = {name for name, _severity in wanted}
    assert not names - quiet, f"no quiet case for: {sorted(names - quiet)}"


def test_annotations_are_checked_somewhere_for_every_alert():
    # promtool compares annotations only where a case lists them: each alert needs one
    # case that proves its templates render (summary, description, runbook_url).
    checked = {
        case["alertname"]
        for _file, case in alert_cases()
        for alert in case.get("exp_alerts") or []
        if alert.get("exp_annotations", {}).get("runbook_url")
    }
    names = {rule["alert"] for rule in alerting_rules()}
    assert not names - checked, f"annotations never checked for: {sorted(names - checked)}"


def test_cases_name_only_alerts_that_exist():
    names = {rule["alert"] for rule in alerting_rules()}
    unknown = sorted(
        f"{file}: {case['alertname']}"
        for file, case in alert_cases()
        if case["alertname"] not in names
    )
    assert not unknown, f"cases for alerts no rule defines: {unknown}"


def test_rules_use_only_metric_names_the_code_exports():
    defined = code_metrics()
    assert "rampart_http_requests_total" in defined and "rampart_jobs" in defined
    unknown = set()
    for rule in rules():
        expression = RECORDED_NAME.sub(" ", rule["expr"])
        used = set(re.findall(r"\brampart_[a-z0-9_]+", expression))
        unknown.update(
            f"{rule.get('alert') or rule.get('record')}: {name}" for name in used - defined
        )
    assert not unknown, "metric names no code defines:\n" + "\n".join(sorted(unknown))


def test_rules_use_only_recording_rules_that_exist():
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    unknown = {
        f"{rule.get('alert') or rule.get('record')}: {name}"
        for rule in rules()
        for name in RECORDED_NAME.findall(rule["expr"])
        if name not in recorded
    }
    assert not unknown, "recording rules nobody records:\n" + "\n".join(sorted(unknown))
