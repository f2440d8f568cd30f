"""`rampart readiness`, the go-live gate (docs/go-live.md): each check says no-go when the
one thing it watches is broken on purpose, "not available" (a no-go) when its source is
missing, and go on a healthy setup.

Real components: the test stack's Postgres (scratch databases for a schema behind head and
a planted lint flaw), promtool, a real Alertmanager (slow), the fake LLM server and Sentry
receiver of tests/support; Prometheus' query API, the load/soak reports and the bundle scan
are spoken or written here in their documented formats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from alembic import command
from tests.support.db import su_rows
from tests.support.receivers import Receiver
from tests.support.scratch_db import scratch_database
from tests.support.server import serve_handler

from rampart.backups.catalog import Backup
from rampart.backups.drill import DrillResult, record
from rampart.config import Settings
from rampart.llm.fake_server import FakeLLMServer
from rampart.readiness import (
    checks_data,
    checks_observability,
    checks_operations,
    checks_performance,
    checks_resilience,
    checks_security,
)
from rampart.readiness.context import REPO, Context
from rampart.readiness.model import Result, Status
from rampart.readiness.runner import run_checks

STRONG = {
    "env": "production",
    "jwt_secret": "j" * 40,
    "session_secret": "s" * 40,
    "stripe_webhook_secret": "whsec_" + "w" * 32,  # pragma: allowlist secret
    "smtp_url": "smtps://mailer:pw@mail.example.com:465",  # pragma: allowlist secret
    "mail_from": "Rampart <no-reply@example.com>",
    "cors_origins": "https://app.example.com",
}


def context(home: Path, repo: Path = REPO, **settings: Any) -> Context:
    return Context(Settings(rampart_home=str(home), **settings), repo=repo)


def stamp(when: datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ")


def assert_no_go(result: Result, *words: str) -> None:
    assert result.status == Status.NO_GO, result
    for word in words:
        assert word in result.evidence, result


# --- evidence files, written in their documented formats --------------------------------


def scenario(name: str = "webhook-100", p99: float = 80.0, errors: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "target_rps": 100.0,
        "duration_s": 120.0,
        "achieved_rps": 99.8,
        "requests": 11976,
        "errors": errors,
        "p50_ms": 12.0,
        "p95_ms": 40.0,
        "p99_ms": p99,
        "slo": {"p99_ms": 500.0, "error_rate": 0.001},
        "passed": True,
        "notes": "",
    }


def write_load(
    home: Path,
    kind: str = "load",
    age: timedelta = timedelta(hours=1),
    passed: bool = True,
    scenarios: list[dict[str, Any]] | None = None,
) -> Path:
    finished = datetime.now(UTC) - age
    directory = home / "reports" / "load"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{stamp(finished)}.json"
    report = {
        "kind": kind,
        "started_at": (finished - timedelta(minutes=8)).isoformat(),
        "finished_at": finished.isoformat(),
        "git_commit": "",
        "passed": passed,
        "scenarios": [scenario()] if scenarios is None else scenarios,
    }
    path.write_text(json.dumps(report))
    return path


def write_backup(home: Path, age: timedelta) -> None:
    finished = datetime.now(UTC) - age
    label = finished.strftime("%Y%m%dT%H%M%S000Z")
    path = home / "backups" / "base" / label
    path.mkdir(parents=True)
    Backup(
        label,
        "full",
        None,
        (finished - timedelta(seconds=5)).isoformat(),
        finished.isoformat(),
        1,
        "0/2000028",
        "0/2000100",
        4_200_000,
        5.0,
        True,
        path,
    ).save()


def write_drill(
    home: Path,
    age: timedelta = timedelta(hours=2),
    rpo: float = 42.0,
    rto: float = 8.0,
    ok: bool = True,
) -> None:
    result = DrillResult(
        started=(datetime.now(UTC) - age).isoformat(),
        rpo_seconds=rpo,
        rto_seconds=rto,
        checks={"rto": "ok", "canary": "ok" if ok else "canary row missing"},
        ok=ok,
    )
    record(home / "backups", result)


def write_audit(
    home: Path,
    failures: list[str] | None = None,
    age: timedelta = timedelta(hours=1),
    lock: Path = REPO / "requirements.lock",
) -> None:
    (home / "reports").mkdir(parents=True, exist_ok=True)
    (home / "reports" / "dep-audit.json").write_text(
        json.dumps(
            {
                "audited_at": (datetime.now(UTC) - age).isoformat(),
                "lock_sha256": checks_security.lock_digest(lock),
                "exit_code": 1 if failures else 0,
                "summary": "180 of 180 pins audited",
                "failures": failures or [],
            }
        )
    )


def write_bundle_scan(
    home: Path, findings: list[dict[str, str]] | None = None, age: timedelta = timedelta(hours=1)
) -> None:
    (home / "reports").mkdir(parents=True, exist_ok=True)
    (home / "reports" / "bundle-scan.json").write_text(
        json.dumps(
            {
                "scanned_at": (datetime.now(UTC) - age).isoformat(),
                "build_dir": "web/.next",
                "files": 214,
                "findings": findings or [],
                "clean": not findings,
            }
        )
    )


# --- local servers speaking Prometheus' query API and a webhook receiver's --------------


@contextmanager
def http_server(answer: Callable[[str, str], tuple[int, dict[str, Any] | str]]) -> Iterator[str]:
    """`answer(method, path_and_query) -> (status, body)` on a free loopback port: a dict is
    sent as JSON, a str as text (Prometheus' exposition format)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, body = answer(method, self.path)
            text = isinstance(body, str)
            data = body.encode() if text else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._reply("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._reply("POST")

    with serve_handler(Handler) as url:
        yield url


@contextmanager
def fake_prometheus(availability: float | None, latency: float | None) -> Iterator[str]:
    def answer(_method: str, path: str) -> tuple[int, dict[str, Any]]:
        query = parse_qs(urlsplit(path).query).get("query", [""])[0]
        value = latency if "duration_seconds_bucket" in query else availability
        result = [] if value is None else [{"metric": {}, "value": [1.0, str(value)]}]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    with http_server(answer) as url:
        yield url


# --- security ---------------------------------------------------------------------------


def test_settings_of_a_dev_or_test_environment_are_no_go_and_name_what_production_refuses(
    tmp_path,
):
    # The secret set explicitly: the process's environment may hold another test's.
    weak = {"jwt_secret": "too-short"}  # pragma: allowlist secret
    result = checks_security.settings_strength(context(tmp_path, **weak))
    assert_no_go(result, "ENV=test", "JWT_SECRET", "HSTS off")


def test_strong_production_settings_are_go_and_a_plain_http_origin_is_no_go(tmp_path, stack):
    assert checks_security.settings_strength(context(tmp_path, **STRONG)).status == Status.GO
    weak_cors = {**STRONG, "cors_origins": "http://app.example.com"}
    assert_no_go(checks_security.settings_strength(context(tmp_path, **weak_cors)), "not https")


def test_settings_the_deployment_refuses_are_no_go_with_the_reason(tmp_path):
    ctx = context(tmp_path)
    ctx.settings_error = "JWT_SECRET: shorter than 32 characters"
    assert_no_go(checks_security.settings_strength(ctx), "JWT_SECRET")


def test_db_lint_sees_a_planted_flaw(tmp_path, stack):
    with scratch_database(stack) as scratch:
        command.upgrade(scratch.config, "heads")
        ctx = context(tmp_path, migration_database_url=scratch.url)
        assert checks_security.db_lint(ctx).status == Status.GO
        su_rows(scratch.superuser, "ALTER TABLE public.assessments NO FORCE ROW LEVEL SECURITY")
        assert_no_go(checks_security.db_lint(ctx), "rls_enabled_forced", "assessments")


def test_dependency_audit_missing_failed_stale_or_of_another_lock_is_no_go(tmp_path):
    ctx = context(tmp_path)
    assert_no_go(checks_security.dependency_audit(ctx), "not available")
    write_audit(tmp_path, failures=["known vulnerability: jinja2==3.1.0: PYSEC-1"])
    assert_no_go(checks_security.dependency_audit(ctx), "PYSEC-1")
    write_audit(tmp_path, age=timedelta(hours=30))
    assert_no_go(checks_security.dependency_audit(ctx), "older than 24h")
    other = tmp_path / "other.lock"
    other.write_text("httpx==0.0.1\n")
    write_audit(tmp_path, lock=other)
    assert_no_go(checks_security.dependency_audit(ctx), "requirements.lock changed")
    write_audit(tmp_path)
    assert checks_security.dependency_audit(ctx).status == Status.GO
    record = json.loads((tmp_path / "reports" / "dep-audit.json").read_text())
    (tmp_path / "reports" / "dep-audit.json").write_text(json.dumps({**record, "unaudited": 37}))
    result = checks_security.dependency_audit(ctx)
    assert result.status == Status.WARN and "37 pins not audited" in result.evidence


def test_an_audit_that_cannot_finish_is_recorded_as_failed(tmp_path):
    ctx = context(tmp_path)
    checks_security.record_dependency_audit(ctx, timeout=0.01)
    assert_no_go(checks_security.dependency_audit(ctx), "timed out")


def test_bundle_scan_with_a_web_app_needs_a_fresh_clean_report(tmp_path):
    repo = tmp_path / "repo"
    home = tmp_path / "home"
    ctx = context(home, repo=repo)
    repo.mkdir()
    result = checks_security.bundle_scan(ctx)
    assert result.status == Status.GO and "not applicable" in result.evidence
    (repo / "web").mkdir()
    assert_no_go(checks_security.bundle_scan(ctx), "not available")
    write_bundle_scan(home, findings=[{"file": "static/chunks/app.js", "kind": "stripe_secret"}])
    assert_no_go(checks_security.bundle_scan(ctx), "stripe_secret in static/chunks/app.js")
    write_bundle_scan(home, age=timedelta(days=9))
    assert_no_go(checks_security.bundle_scan(ctx), "older than 7 days")
    (repo / "web" / "app").mkdir()
    (repo / "web" / "app" / "page.tsx").write_text("export default function Page() {}\n")
    (repo / "web" / "node_modules").mkdir()
    before = datetime.now(UTC).timestamp() - 7200  # edited before the scan (an hour ago)
    os.utime(repo / "web" / "app" / "page.tsx", (before, before))
    write_bundle_scan(home, age=timedelta(0))  # newer than any source of web/
    assert checks_security.bundle_scan(ctx).status == Status.GO
    later = datetime.now(UTC).timestamp() + 60
    os.utime(repo / "web" / "node_modules", (later, later))  # not a source: ignored
    assert checks_security.bundle_scan(ctx).status == Status.GO
    os.utime(repo / "web" / "app" / "page.tsx", (later, later))
    assert_no_go(checks_security.bundle_scan(ctx), "web/app/page.tsx")


# --- data -------------------------------------------------------------------------------


def test_a_schema_behind_the_head_is_no_go(tmp_path, stack):
    with scratch_database(stack) as scratch:
        command.upgrade(scratch.config, "0014")
        ctx = context(tmp_path, migration_database_url=scratch.url)
        assert_no_go(checks_data.migrations_at_head(ctx), "head is")
        command.upgrade(scratch.config, "heads")
        result = checks_data.migrations_at_head(ctx)
        assert result.status == Status.GO, result


def test_a_missing_or_old_backup_is_no_go(tmp_path):
    ctx = context(tmp_path)
    assert_no_go(checks_data.last_backup(ctx), "not available")
    write_backup(tmp_path, age=timedelta(hours=30))
    assert_no_go(checks_data.last_backup(ctx), "old > 26h")
    write_backup(tmp_path, age=timedelta(hours=3))
    assert checks_data.last_backup(ctx).status == Status.GO


def test_a_missing_stale_failed_or_slow_restore_drill_is_no_go(tmp_path):
    ctx = context(tmp_path)
    assert_no_go(checks_data.restore_drill(ctx), "not available")
    write_drill(tmp_path, age=timedelta(days=17))
    assert_no_go(checks_data.restore_drill(ctx), "old > 16d")
    write_drill(tmp_path, ok=False)
    assert_no_go(checks_data.restore_drill(ctx), "canary row missing")
    write_drill(tmp_path, rpo=400)
    assert_no_go(checks_data.restore_drill(ctx), "RPO over target")
    write_drill(tmp_path, rto=1000)
    assert_no_go(checks_data.restore_drill(ctx), "RTO over target")
    write_drill(tmp_path)
    assert checks_data.restore_drill(ctx).status == Status.GO


# --- observability ----------------------------------------------------------------------


def rules_repo(tmp_path: Path, rule: dict[str, Any]) -> Path:
    repo = tmp_path / "repo"
    (repo / "ops" / "prometheus" / "rules").mkdir(parents=True)
    (repo / "docs" / "runbooks").mkdir(parents=True)
    (repo / "docs" / "runbooks" / "target-down.md").write_text("# Target down\n")
    rules = {"groups": [{"name": "g", "rules": [rule]}]}
    (repo / "ops" / "prometheus" / "rules" / "r.yml").write_text(json.dumps(rules))
    return repo


def test_an_alert_without_its_runbook_or_a_rule_promtool_refuses_is_no_go(tmp_path):
    alert = {
        "alert": "RampartTargetDown",
        "expr": "up == 0",
        "annotations": {"runbook_url": "docs/runbooks/target-down.md"},
    }
    repo = rules_repo(tmp_path / "good", alert)
    assert checks_observability.alert_rules(context(tmp_path, repo=repo)).status == Status.GO
    orphan = {**alert, "annotations": {"runbook_url": "docs/runbooks/nowhere.md"}}
    repo = rules_repo(tmp_path / "orphan", orphan)
    assert_no_go(checks_observability.alert_rules(context(tmp_path, repo=repo)), "nowhere.md")
    broken = {**alert, "expr": "up ==="}
    repo = rules_repo(tmp_path / "broken", broken)
    assert_no_go(checks_observability.alert_rules(context(tmp_path, repo=repo)), "promtool")


def test_alertmanager_and_sentry_without_a_url_are_not_available(tmp_path):
    ctx = context(tmp_path)
    assert_no_go(checks_observability.alertmanager_receiver(ctx), "ALERTMANAGER_URL not set")
    assert_no_go(checks_observability.sentry_event(ctx), "SENTRY_DSN not set")


def test_sentry_accepting_the_test_event_is_go_and_a_refusal_is_no_go(tmp_path):
    with Receiver() as receiver:
        result = checks_observability.sentry_event(
            context(tmp_path, sentry_dsn=receiver.sentry_dsn)
        )
        assert result.status == Status.GO, result
        [event] = receiver.events()
        assert event["message"]["formatted"] == "rampart readiness: test event"
    with http_server(lambda _m, _p: (403, {"detail": "invalid key"})) as url:
        dsn = url.replace("http://", "http://publickey@") + "/1"
        assert_no_go(checks_observability.sentry_event(context(tmp_path, sentry_dsn=dsn)), "403")


def test_a_failed_receiver_request_read_before_its_failure_was_counted_is_still_no_go(tmp_path):
    # Alertmanager counts a receiver request, then its failure, in two steps; a /metrics
    # read between them (seen once on a loaded machine) says "1 sent, 0 failed".
    readings = iter([(0, 0), (1, 0)])

    def alertmanager(method: str, path: str) -> tuple[int, dict[str, Any] | str]:
        if method == "POST":
            return 200, {}
        sent, failed = next(readings, (1, 1))
        return 200, (
            f'alertmanager_notification_requests_total{{integration="webhook"}} {sent}\n'
            f'alertmanager_notification_requests_failed_total{{integration="webhook"}} {failed}\n'
        )

    with http_server(alertmanager) as url:
        ctx = context(tmp_path, alertmanager_url=url)
        ctx.alert_timeout_seconds = 10
        assert_no_go(checks_observability.alertmanager_receiver(ctx), "1 of 1 receiver requests")


@pytest.mark.slow
def test_alertmanager_delivering_the_test_alert_is_go_and_a_failing_receiver_is_no_go(tmp_path):
    from tests.support.prometheus_stack import PrometheusStack, render_alertmanager_config

    for status, expected in ((200, Status.GO), (500, Status.NO_GO)):
        calls: list[str] = []

        def receiver(method: str, path: str, status: int = status) -> tuple[int, dict]:
            calls.append(path)
            return status, {}

        workdir = tmp_path / str(status)
        with http_server(receiver) as url:
            config = render_alertmanager_config(
                f"{url}/api/v1/internal/alerts", "t" * 40, workdir / "am.yml"
            )
            with PrometheusStack(
                workdir, targets={}, production_config=None, alertmanager_config=config
            ) as prom:
                ctx = context(tmp_path, alertmanager_url=prom.alertmanager_url)
                ctx.alert_timeout_seconds = 30
                result = checks_observability.alertmanager_receiver(ctx)
        assert result.status == expected, result
        assert calls, "the receiver heard nothing"


# --- resilience -------------------------------------------------------------------------


def test_llm_fallback_answers_with_the_primary_down(tmp_path, stack):
    ctx = context(tmp_path)
    only_offline = checks_resilience.llm_fallback(ctx)
    assert only_offline.status == Status.WARN, only_offline
    with FakeLLMServer(api_key=None) as fake:
        chain = {
            "llm_providers": "openai,anthropic,offline",
            "openai_api_key": "sk-test",  # pragma: allowlist secret
            "openai_base_url": f"{fake.url}/v1",
            "anthropic_api_key": "ak-test",  # pragma: allowlist secret
            "anthropic_base_url": fake.url,
        }
        result = checks_resilience.llm_fallback(context(tmp_path, **chain))
        assert result.status == Status.GO, result
        assert "answered by anthropic" in result.evidence
        assert fake.calls("openai") == 0  # the primary was the closed port, not the fake
        fake.set_fault("error", status=500, target="anthropic")
        result = checks_resilience.llm_fallback(context(tmp_path, **chain))
        assert result.status == Status.WARN and "anthropic failed too" in result.evidence


# --- performance ------------------------------------------------------------------------


def test_a_missing_old_failed_or_slow_load_report_is_no_go(tmp_path):
    ctx = context(tmp_path)
    assert_no_go(checks_performance.load_test(ctx), "not available")
    write_load(tmp_path, age=timedelta(days=8))
    assert_no_go(checks_performance.load_test(ctx), "old > 7d")
    write_load(tmp_path, age=timedelta(days=6), scenarios=[scenario(p99=900.0)])
    assert_no_go(checks_performance.load_test(ctx), "p99 900 ms > 500 ms")
    write_load(tmp_path, age=timedelta(days=5), scenarios=[scenario(errors=500)])
    assert_no_go(checks_performance.load_test(ctx), "error rate")
    write_load(tmp_path, age=timedelta(days=4), passed=False)
    assert_no_go(checks_performance.load_test(ctx), "marked failed")
    write_load(tmp_path, age=timedelta(days=3), scenarios=[])
    assert_no_go(checks_performance.load_test(ctx), "no scenario")
    bad = (
        tmp_path / "reports" / "load" / f"load-{stamp(datetime.now(UTC) - timedelta(days=2))}.json"
    )
    bad.write_text(json.dumps({"kind": "load", "scenarios": "none"}))
    assert_no_go(checks_performance.load_test(ctx), "contract")
    write_load(tmp_path, age=timedelta(hours=1))
    assert checks_performance.load_test(ctx).status == Status.GO
    measured_elsewhere = context(tmp_path, git_commit="0123456789abcdef")
    result = checks_performance.load_test(measured_elsewhere)
    assert result.status == Status.GO  # the report names no commit
    path = write_load(tmp_path, age=timedelta(minutes=30))
    other = "fedcba987654"  # a commit id  # pragma: allowlist secret
    path.write_text(path.read_text().replace('"git_commit": ""', f'"git_commit": "{other}"'))
    result = checks_performance.load_test(measured_elsewhere)
    assert result.status == Status.WARN and f"measured on {other}" in result.evidence
    # Each kind on its own: a good load report proves nothing about the soak.
    assert_no_go(checks_performance.soak_test(ctx), "not available")


# --- operations -------------------------------------------------------------------------


def test_error_budget_spent_is_no_go_low_is_warn_and_no_data_is_not_available(tmp_path):
    assert_no_go(checks_operations.error_budget(context(tmp_path)), "PROMETHEUS_URL not set")
    for availability, latency, expected in (
        (0.9, 0.8, Status.GO),
        (0.9, 0.1, Status.WARN),
        (-0.2, 0.8, Status.NO_GO),
        (None, 0.8, Status.NO_GO),
    ):
        with fake_prometheus(availability, latency) as url:
            result = checks_operations.error_budget(context(tmp_path, prometheus_url=url))
        assert result.status == expected, (availability, latency, result)


# --- the whole gate ---------------------------------------------------------------------


def test_a_healthy_setup_is_go_on_every_check_it_can_run(tmp_path, stack):
    home = tmp_path / "home"
    write_audit(home)
    write_backup(home, age=timedelta(hours=1))
    write_drill(home)
    write_load(home, "load")
    write_load(home, "soak")
    write_bundle_scan(home, age=timedelta(0))  # newer than any source of web/
    with (
        Receiver() as sentry,
        FakeLLMServer(api_key=None) as fake,
        fake_prometheus(0.97, 0.9) as prometheus,
    ):
        ctx = context(
            home,
            **STRONG,
            sentry_dsn=sentry.sentry_dsn,
            prometheus_url=prometheus,
            llm_providers="openai,anthropic,offline",
            openai_api_key="sk-test",  # pragma: allowlist secret
            anthropic_api_key="ak-test",  # pragma: allowlist secret
            anthropic_base_url=fake.url,
        )
        everything_but_alertmanager = [
            "settings",
            "db-lint",
            "dependency-audit",
            "bundle-scan",
            "migrations",
            "backup",
            "restore-drill",
            "alert-rules",
            "sentry",
            "llm-fallback",
            "load-test",
            "soak-test",
            "error-budget",
        ]
        results = run_checks(ctx, everything_but_alertmanager)
    assert [r for r in results if r.status != Status.GO] == []
    assert len(results) == len(everything_but_alertmanager)


def run_cli(home: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAMPART_HOME": str(home), "COLUMNS": "200", **env_vars}
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "rampart.cli", "readiness", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_exits_0_on_go_1_on_no_go_and_prints_json_for_ci(tmp_path):
    write_load(tmp_path, "load")
    done = run_cli(tmp_path, "--json", "--only", "load-test", "--only", "backup")
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["verdict"] == "no-go"
    assert {c["check"]: c["status"] for c in document["checks"]} == {
        "load test within SLOs": "go",
        "last backup fresh": "no-go",
    }
    write_backup(tmp_path, age=timedelta(hours=1))
    done = run_cli(tmp_path, "--only", "load-test", "--only", "backup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "go: 2 go, 0 warn, 0 no-go" in done.stdout
    assert run_cli(tmp_path, "--only", "nonsense").returncode == 2


def test_a_warn_fails_unless_allowed(tmp_path):
    """Exit 0 only on go (the issue's rule); --allow-warn is the dev/staging look."""
    assert run_cli(tmp_path, "--only", "llm-fallback").returncode == 1
    assert run_cli(tmp_path, "--only", "llm-fallback", "--allow-warn").returncode == 0


def test_settings_the_deployment_refuses_are_a_no_go_row_and_the_other_checks_still_answer(
    tmp_path,
):
    done = run_cli(
        tmp_path,
        "--json",
        "--only",
        "settings",
        "--only",
        "db-lint",
        "--only",
        "backup",
        ENV="production",
        JWT_SECRET="short",  # pragma: allowlist secret
    )
    assert done.returncode == 1, done.stdout + done.stderr
    checks = json.loads(done.stdout)["checks"]
    assert checks[0]["status"] == "no-go" and "JWT_SECRET: shorter than" in checks[0]["evidence"]
    assert [c for c in checks if "crashed" in c["evidence"]] == []
    assert len(checks) == 3
