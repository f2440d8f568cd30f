"""Alertmanager's configuration as code: the checked-in ops/alertmanager/alertmanager.yml is
exactly what `rampart alertmanager-config` renders with the default settings; Debian's real
`amtool` accepts it and every variant (Slack, PagerDuty, inline token) and routes each
severity to the expected receiver; and a real Alertmanager process, given a rendered file,
delivers an alert to the real running API's incident webhook (stored as an incident,
then resolved) and to Slack (a local receiver speaking Slack's incoming-webhook protocol),
and inhibits the warning twin of a critical alert."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import yaml
from tests.support import httpclient
from tests.support.cli import rampart
from tests.support.server import serve_handler
from tests.support.stack import ALERT_WEBHOOK_TOKEN
from tests.support.wait import wait_until

from rampart.config import Settings
from rampart.devstack.ports import free_port
from rampart.devstack.prometheus_tools import ensure_binary
from rampart.kit.alertmanager_config import Timing, build, render

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "ops" / "alertmanager" / "alertmanager.yml"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"  # pragma: allowlist secret
PAGERDUTY_KEY = "0123456789abcdef0123456789abcdef"  # pragma: allowlist secret


@pytest.fixture
def clean_env(monkeypatch) -> pytest.MonkeyPatch:
    """No ALERT_* settings from the environment: the renderer's defaults."""
    for name in list(os.environ):
        if name.startswith("ALERT_"):
            monkeypatch.delenv(name)
    return monkeypatch


def settings(**values) -> Settings:
    return Settings(**values)


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_binary("amtool")), *args], capture_output=True, text=True, timeout=60
    )


def rendered_file(tmp_path: Path, text: str, name: str = "alertmanager.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the checked-in file -------------------------------------------------------------


def test_the_checked_in_file_is_the_render_with_default_settings(clean_env):
    assert CHECKED_IN.read_text() == render(settings()), (
        "run `rampart alertmanager-config -o ops/alertmanager/alertmanager.yml` (with no "
        "ALERT_* variables set) and commit the result"
    )


def test_the_cli_renders_the_same_text_to_stdout_and_to_a_private_file(clean_env, tmp_path):
    assert rampart("alertmanager-config").stdout == CHECKED_IN.read_text()
    out = tmp_path / "am.yml"
    rampart("alertmanager-config", "-o", str(out))
    assert out.read_text() == CHECKED_IN.read_text()
    assert out.stat().st_mode & 0o077 == 0


def test_amtool_accepts_the_checked_in_file():
    result = amtool("check-config", str(CHECKED_IN))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "3 receivers" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=RampartRedisDown", "service=redis"], "critical"),
        (["severity=warning", "alertname=RampartQueueBacklog", "service=worker"], "warning"),
        (["severity=info", "alertname=Whatever"], "default"),
        (["alertname=NoSeverity"], "default"),
    ],
)
def test_amtool_routes_each_severity_to_its_receiver(labels, receiver):
    result = amtool("config", "routes", "test", "--config.file", str(CHECKED_IN), *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_a_critical_alert_inhibits_its_warning_twin_and_alerts_are_grouped():
    config = yaml.safe_load(CHECKED_IN.read_text())
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "service"],
        }
    ]
    route = config["route"]
    assert route["group_by"] == ["alertname", "service"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )


def test_every_receiver_posts_to_the_incident_webhook_with_a_token_file_not_the_token():
    config = yaml.safe_load(CHECKED_IN.read_text())
    for receiver in config["receivers"]:
        (webhook,) = receiver["webhook_configs"]
        assert webhook["url"] == "http://rampart:8000/api/v1/internal/alerts"
        assert webhook["send_resolved"] is True
        assert webhook["http_config"]["authorization"] == {
            "type": "Bearer",
            "credentials_file": "/etc/alertmanager/secrets/alert-webhook-token",
        }
        assert set(receiver) == {"name", "webhook_configs"}  # no Slack, no PagerDuty unset


# --- renders with Slack, PagerDuty, an inline token ----------------------------------


def test_slack_goes_to_warning_and_critical_pagerduty_to_critical_only(clean_env):
    config = build(
        settings(alert_slack_webhook_url=SLACK_URL, alert_pagerduty_routing_key=PAGERDUTY_KEY)
    )
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers["default"]) == {"name", "webhook_configs"}
    assert [s["api_url"] for s in receivers["warning"]["slack_configs"]] == [SLACK_URL]
    assert [s["api_url"] for s in receivers["critical"]["slack_configs"]] == [SLACK_URL]
    assert "pagerduty_configs" not in receivers["warning"]
    (pagerduty,) = receivers["critical"]["pagerduty_configs"]
    assert pagerduty["routing_key"] == PAGERDUTY_KEY and pagerduty["send_resolved"] is True
    assert all(s["send_resolved"] for s in receivers["critical"]["slack_configs"])


def test_amtool_accepts_renders_with_slack_pagerduty_and_an_inline_token(clean_env, tmp_path):
    full = settings(
        alert_slack_webhook_url=SLACK_URL,
        alert_slack_channel="#ops",
        alert_pagerduty_routing_key=PAGERDUTY_KEY,
        alert_webhook_token=ALERT_WEBHOOK_TOKEN,
    )
    for name, text in {
        "token-file": render(full),
        "inline-token": render(full, inline_token=True, webhook_url="http://10.0.0.5:8000/x"),
        "short-timings": render(full, timing=Timing("1s", "2s", "1m", "10s")),
    }.items():
        path = rendered_file(tmp_path, text, f"{name}.yml")
        result = amtool("check-config", str(path))
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        routed = amtool("config", "routes", "test", "--config.file", str(path), "severity=critical")
        assert routed.stdout.strip() == "critical"


def test_the_token_is_in_the_file_only_with_inline_token(clean_env):
    configured = settings(alert_webhook_token=ALERT_WEBHOOK_TOKEN)
    assert ALERT_WEBHOOK_TOKEN not in render(configured)
    inline = yaml.safe_load(render(configured, inline_token=True))
    for receiver in inline["receivers"]:
        authorization = receiver["webhook_configs"][0]["http_config"]["authorization"]
        assert authorization == {"type": "Bearer", "credentials": ALERT_WEBHOOK_TOKEN}


@pytest.mark.slow  # a CLI process per case
@pytest.mark.parametrize(
    "args",
    [["--inline-token"], ["--group-wait", "soon"], ["--repeat-interval", "4 hours"]],
    ids=["inline-token-without-token", "bad-group-wait", "bad-repeat-interval"],
)
def test_the_cli_refuses_what_alertmanager_would(clean_env, args):
    result = rampart("alertmanager-config", *args, check=False)
    assert result.returncode == 2, result.stdout + result.stderr


# --- a real Alertmanager ----------------------------------------------------------------


@dataclass
class SlackReceiver:
    """Slack's incoming webhook, as Alertmanager speaks it: POST JSON, answer `ok`."""

    base: str
    messages: list[dict]

    @property
    def url(self) -> str:
        return f"{self.base}/services/T000/B000/XXXXXXXX"


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    messages: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            messages.append({"path": self.path, "body": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args) -> None:
            pass

    with serve_handler(Handler) as base:
        yield SlackReceiver(base, messages)


@pytest.fixture
def alertmanager(api, slack, tmp_path) -> Iterator[str]:
    """A real Alertmanager (Debian's build) with the rendered configuration: the incident
    webhook of the running API (token read from a file, as in production), Slack to the
    local receiver, short timings."""
    from tests.support.prometheus_stack import alertmanager_binary

    token_file = tmp_path / "alert-webhook-token"
    token_file.write_text(ALERT_WEBHOOK_TOKEN)
    text = render(
        settings(
            alert_slack_webhook_url=slack.url,
            alert_webhook_token_file=str(token_file),
        ),
        webhook_url=f"{api}/api/v1/internal/alerts",
        timing=Timing(group_wait="1s", group_interval="1s", repeat_interval="1h"),
    )
    config = rendered_file(tmp_path, text)
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            str(alertmanager_binary(tmp_path)),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpclient.get(f"{url}/-/ready", timeout=2).status_code == 200,
            timeout=30,
            ignore=(httpx.TransportError,),
            message=lambda: (tmp_path / "alertmanager.log").read_text()[-2000:],
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _incident(fingerprint: str | None = None, alertname: str | None = None) -> dict | None:
    from rampart.incidents.service import list_incidents

    for row in asyncio.run(list_incidents(include_resolved=True, limit=1000)):
        if row.fingerprint == fingerprint or row.alertname == alertname:
            return row.as_json()
    return None


def test_a_real_alertmanager_delivers_to_the_incident_webhook_and_slack(alertmanager, slack):
    name = f"RampartSimulated{datetime.now(UTC):%H%M%S%f}"
    started = datetime.now(UTC) - timedelta(minutes=1)
    alert = {
        "labels": {"alertname": name, "severity": "critical", "service": "api"},
        "annotations": {
            "summary": "Simulated outage",
            "description": "Posted straight to Alertmanager by the test.",
            "runbook_url": "docs/runbooks/high-error-rate.md",
        },
        "startsAt": started.isoformat(),
    }
    posted = httpclient.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10)
    assert posted.status_code == 200, posted.text

    incident = wait_until(lambda: _incident(alertname=name), timeout=60, message="no incident")
    assert incident["status"] == "firing"
    assert (incident["severity"], incident["service"]) == ("critical", "api")
    assert incident["summary"] == "Simulated outage"
    assert len(incident["fingerprint"]) == 16  # Alertmanager's own fingerprint

    message = wait_until(
        lambda: next((m for m in slack.messages if name in json.dumps(m["body"])), None),
        timeout=60,
        message="nothing reached Slack",
    )
    assert message["path"] == "/services/T000/B000/XXXXXXXX"
    (attachment,) = message["body"]["attachments"]
    assert attachment["title"].startswith("[FIRING:1]") and name in attachment["title"]
    assert "Simulated outage" in attachment["text"]
    assert message["body"]["channel"] == "#rampart-alerts"

    # Resolve it the way Prometheus does: the same alert with an end time now.
    alert["endsAt"] = datetime.now(UTC).isoformat()
    posted = httpclient.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10)
    assert posted.status_code == 200
    resolved = wait_until(
        lambda: (
            (row := _incident(fingerprint=incident["fingerprint"]))
            and row["status"] == "resolved"
            and row
        ),
        timeout=60,
        message="the incident was not resolved",
    )
    assert resolved["id"] == incident["id"] and resolved["notifications"] >= 2
    assert resolved["ends_at"] is not None


def test_a_real_alertmanager_inhibits_the_warning_twin_of_a_critical_alert(alertmanager):
    name = f"RampartTwin{datetime.now(UTC):%H%M%S%f}"

    def alert(severity: str) -> dict:
        return {"labels": {"alertname": name, "severity": severity, "service": "worker"}}

    for severity in ("critical", "warning"):
        alerts = f"{alertmanager}/api/v2/alerts"
        posted = httpclient.post(alerts, json=[alert(severity)], timeout=10)
        assert posted.status_code == 200

    def warning_state() -> dict | None:
        alerts = httpclient.get(
            f"{alertmanager}/api/v2/alerts", params={"filter": f'alertname="{name}"'}, timeout=10
        ).json()
        warning = next(a for a in alerts if a["labels"]["severity"] == "warning")
        return warning["status"] if warning["status"]["inhibitedBy"] else None

    status = wait_until(warning_state, timeout=30, message="the warning was not inhibited")
    assert status["state"] == "suppressed"
    wait_until(lambda: _incident(alertname=name), timeout=60, message="critical not delivered")
    stored = [row for row in _all_incidents() if row["alertname"] == name]
    assert [row["severity"] for row in stored] == ["critical"]


def _all_incidents() -> list[dict]:
    from rampart.incidents.service import list_incidents

    return [row.as_json() for row in asyncio.run(list_incidents(include_resolved=True, limit=1000))]
