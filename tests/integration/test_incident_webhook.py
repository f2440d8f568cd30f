"""The incident webhook (`POST /api/v1/internal/alerts`) on the real API server and the real
Postgres: authentication, Alertmanager's version 4 payloads stored one incident per
(fingerprint, startsAt), firing → resolved, repeats counted, bad bodies refused with
nothing written, and the rows as `rampart incidents` shows them."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from tests.support import httpclient
from tests.support.cli import rampart
from tests.support.server import scrape_api_metrics
from tests.support.stack import ALERT_WEBHOOK_TOKEN

PATH = "/api/v1/internal/alerts"
AUTH = {"Authorization": f"Bearer {ALERT_WEBHOOK_TOKEN}"}
ZERO_TIME = "0001-01-01T00:00:00Z"  # what Alertmanager sends as endsAt while firing


def fingerprint() -> str:
    return secrets.token_hex(8)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def alert(
    fp: str,
    status: str = "firing",
    *,
    alertname: str = "RampartHighErrorRate",
    severity: str = "critical",
    starts_at: datetime | None = None,
    ends_at: str = ZERO_TIME,
    **labels: str,
) -> dict:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": severity, "service": "api", **labels},
        "annotations": {
            "summary": f"{alertname} is {status}",
            "description": "More than 5 % of API requests fail.",
            "runbook_url": "docs/runbooks/high-error-rate.md",
        },
        "startsAt": iso(starts_at or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)),
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fp,
    }


def notification(*alerts: dict, status: str | None = None) -> dict:
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    first = alerts[0]["labels"] if alerts else {}
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="X", service="api"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "critical",
        "groupLabels": {"alertname": first.get("alertname", "X"), "service": "api"},
        "commonLabels": first,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def incidents(include_resolved: bool = True) -> list[dict]:
    """Every incident (or the firing ones), newest first, as `rampart incidents --json`
    prints them; read in-process, through the same service the command uses."""
    from rampart.incidents.service import list_incidents

    rows = asyncio.run(list_incidents(include_resolved=include_resolved, limit=1000))
    return [row.as_json() for row in rows]


def cli_incidents(*flags: str) -> list[dict]:
    """The real `rampart incidents --json` command."""
    out = rampart("incidents", "--json", "--limit", "1000", *flags).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def rows_of(fp: str) -> list[dict]:
    return [row for row in incidents() if row["fingerprint"] == fp]


def post(client: httpx.Client, body, headers: dict | None = None) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return client.post(PATH, content=body, headers={**AUTH, **(headers or {})})
    return client.post(PATH, json=body, headers={**AUTH, **(headers or {})})


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


# --- authentication ----------------------------------------------------------------------


def test_without_a_token_it_is_401_and_nothing_is_stored(client):
    fp = fingerprint()
    response = client.post(PATH, json=notification(alert(fp)))
    assert response.status_code == 401
    assert error_code(response) == "alert_webhook_unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["trace_id"] == response.headers["x-request-id"]
    assert rows_of(fp) == []


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {ALERT_WEBHOOK_TOKEN}x",
        f"Bearer {ALERT_WEBHOOK_TOKEN[:-1]}",
        "Bearer x",
        "Bearer",
        f"Basic {ALERT_WEBHOOK_TOKEN}",
        ALERT_WEBHOOK_TOKEN,
    ],
    ids=["longer", "shorter", "other", "scheme-only", "basic-scheme", "no-scheme"],
)
def test_a_wrong_token_is_401_and_nothing_is_stored(client, authorization):
    fp = fingerprint()
    response = post(client, notification(alert(fp)), {"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert error_code(response) == "alert_webhook_unauthorized"
    assert ALERT_WEBHOOK_TOKEN not in response.text
    assert rows_of(fp) == []


def test_the_token_is_checked_before_the_body_is_read(client):
    response = client.post(PATH, content=b"not json", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_with_no_token_configured_a_caller_gets_503_alert_webhook_disabled(client):
    from rampart.config import get_settings

    saved = os.environ.pop("ALERT_WEBHOOK_TOKEN")
    get_settings.cache_clear()
    try:
        fp = fingerprint()
        response = post(client, notification(alert(fp)))
        anonymous = client.post(PATH, json=notification(alert(fp)))
    finally:
        os.environ["ALERT_WEBHOOK_TOKEN"] = saved
        get_settings.cache_clear()
    assert response.status_code == 503
    assert error_code(response) == "alert_webhook_disabled"
    assert "ALERT_WEBHOOK_TOKEN" in response.json()["error"]["message"]
    assert anonymous.status_code == 401  # no credential offered: nothing to say about it
    assert rows_of(fp) == []


# --- storing incidents -------------------------------------------------------------------


def test_a_firing_alert_becomes_an_open_incident_and_resolved_closes_it(client):
    fp = fingerprint()
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    firing = post(client, notification(alert(fp, starts_at=started)))
    assert firing.status_code == 200, firing.text
    assert firing.json() == {"received": 1}

    (row,) = rows_of(fp)
    assert row["status"] == "firing"
    assert row["alertname"] == "RampartHighErrorRate"
    assert (row["severity"], row["service"]) == ("critical", "api")
    assert row["summary"] == "RampartHighErrorRate is firing"
    assert row["runbook_url"] == "docs/runbooks/high-error-rate.md"
    assert row["labels"]["alertname"] == "RampartHighErrorRate"
    assert datetime.fromisoformat(row["starts_at"]) == started
    assert row["ends_at"] is None and row["resolved_at"] is None
    assert row["notifications"] == 1
    assert fp in {r["fingerprint"] for r in incidents(include_resolved=False)}

    ended = started + timedelta(minutes=2)
    resolved = post(
        client, notification(alert(fp, "resolved", starts_at=started, ends_at=iso(ended)))
    )
    assert resolved.status_code == 200, resolved.text

    (row,) = rows_of(fp)
    assert row["status"] == "resolved"
    assert datetime.fromisoformat(row["ends_at"]) == ended
    assert row["resolved_at"] is not None
    assert row["summary"] == "RampartHighErrorRate is resolved"  # annotations follow the latest
    assert row["notifications"] == 2
    assert fp not in {r["fingerprint"] for r in incidents(include_resolved=False)}


def test_a_repeated_notification_is_counted_on_the_same_incident(client):
    fp = fingerprint()
    body = notification(alert(fp))
    for _ in range(3):
        assert post(client, body).status_code == 200
    (row,) = rows_of(fp)
    assert row["notifications"] == 3
    assert row["first_received_at"] <= row["last_received_at"]


def test_the_same_alert_firing_again_later_is_a_new_incident(client):
    fp = fingerprint()
    first = datetime(2031, 5, 1, 8, 0, tzinfo=UTC)
    post(client, notification(alert(fp, starts_at=first)))
    post(client, notification(alert(fp, "resolved", starts_at=first, ends_at=iso(first))))
    post(client, notification(alert(fp, starts_at=first + timedelta(hours=1))))
    rows = rows_of(fp)
    assert [r["status"] for r in rows] == ["firing", "resolved"]  # newest first


def test_a_group_of_alerts_is_stored_in_one_notification(client):
    fps = [fingerprint() for _ in range(3)]
    body = notification(
        alert(fps[0], alertname="RampartQueueBacklog", severity="warning"),
        alert(fps[1], alertname="RampartQueueBacklog", severity="warning", queue="other"),
        alert(
            fps[2],
            "resolved",
            alertname="RampartQueueBacklog",
            severity="warning",
            ends_at="2030-01-01T12:05:00Z",
        ),
    )
    response = post(client, body)
    assert response.json() == {"received": 3}
    statuses = {fp: rows_of(fp)[0]["status"] for fp in fps}
    assert statuses == {fps[0]: "firing", fps[1]: "firing", fps[2]: "resolved"}


def test_unknown_fields_and_missing_optional_ones_are_accepted(client):
    fp = fingerprint()
    minimal = {
        "version": "4",
        "status": "firing",
        "receiver": "default",
        "somethingNew": {"a": 1},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Custom"},
                "startsAt": "2030-02-02T10:00:00.123456789+02:00",  # Go's nanoseconds
                "fingerprint": fp,
                "extra": True,
            }
        ],
    }
    assert post(client, minimal).status_code == 200
    (row,) = rows_of(fp)
    assert (row["severity"], row["service"], row["summary"]) == (None, None, None)
    assert row["starts_at"].startswith("2030-02-02T08:00:00.123456")


def _bad(**changes) -> dict:
    body = notification(alert("0123456789abcdef"))
    body["alerts"][0].update(changes.pop("alert", {}))
    body.update(changes)
    return body


BAD_BODIES = {
    "wrong-version": _bad(version="3"),
    "no-alerts": _bad(alerts=[]),
    "alerts-not-a-list": _bad(alerts={"status": "firing"}),
    "unknown-status": _bad(alert={"status": "pending"}),
    "bad-fingerprint": _bad(alert={"fingerprint": "'; DROP TABLE incidents; --"}),
    "no-fingerprint": _bad(alert={"fingerprint": None}),
    "nul-in-a-label": _bad(alert={"labels": {"alertname": "a\u0000b"}}),
    "label-not-a-string": _bad(alert={"labels": {"alertname": 5}}),
    "naive-start": _bad(alert={"startsAt": "2030-01-01T12:00:00"}),
    "not-a-time": _bad(alert={"startsAt": "yesterday"}),
    "start-out-of-range": _bad(alert={"startsAt": "9999-12-31T23:59:59-23:59"}),
    "body-is-a-list": [notification(alert("0123456789abcdef"))],
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_body_that_is_not_a_v4_payload_is_422_and_nothing_is_stored(client, body):
    before = incidents()
    response = post(client, body)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_error"
    assert response.json()["error"]["details"]
    assert incidents() == before


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b'{"version": "4", "receiver": "\\ud800"}', b"\xff\xfe"],
    ids=["empty", "truncated", "text", "lone-surrogate", "not-utf8"],
)
def test_a_body_that_is_not_json_is_400_malformed_json(client, raw):
    response = post(client, raw, {"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert error_code(response) == "malformed_json"


def test_one_bad_alert_refuses_the_whole_notification(client):
    good = fingerprint()
    body = notification(alert(good), alert(fingerprint(), status="unknown"))
    assert post(client, body).status_code == 422
    assert rows_of(good) == []


# --- what operators see ------------------------------------------------------------------


@pytest.mark.slow  # CLI processes
def test_rampart_incidents_lists_open_incidents_newest_first_and_all_with_resolved(client):
    older, newer, closed = fingerprint(), fingerprint(), fingerprint()
    base = datetime(2035, 3, 3, 3, 0, tzinfo=UTC)  # later than any other test's incidents
    post(client, notification(alert(older, alertname="RampartRedisDown", starts_at=base)))
    post(
        client,
        notification(
            alert(newer, alertname="RampartPostgresDown", starts_at=base + timedelta(minutes=1))
        ),
    )
    post(
        client,
        notification(
            alert(
                closed,
                "resolved",
                alertname="RampartTargetDown",
                starts_at=base + timedelta(minutes=2),
                ends_at=iso(base + timedelta(minutes=3)),
            )
        ),
    )

    open_now = [r["fingerprint"] for r in cli_incidents()]
    assert open_now[:2] == [newer, older]
    assert closed not in open_now
    everything = cli_incidents("--all")
    assert [r["fingerprint"] for r in everything[:3]] == [closed, newer, older]
    assert everything[0]["status"] == "resolved" and everything[0]["resolved_at"]

    table = rampart("incidents").stdout
    assert "RampartPostgresDown" in table and "RampartRedisDown" in table
    assert "RampartTargetDown" not in table
    assert "firing incident(s)" in table
    assert "RampartTargetDown" in rampart("incidents", "--all").stdout


def test_each_alert_is_counted_by_status_and_bounded_severity(client):
    def count(status: str, severity: str) -> float:
        text = scrape_api_metrics()
        key = f'rampart_incident_notifications_total{{severity="{severity}",status="{status}"}}'
        return next(
            (float(line.split()[-1]) for line in text.splitlines() if line.startswith(key)), 0.0
        )

    before = (count("firing", "warning"), count("resolved", "other"))
    post(client, notification(alert(fingerprint(), severity="warning")))
    post(
        client,
        notification(
            alert(fingerprint(), "resolved", severity="page-me-now", ends_at="2030-01-01T13:00:00Z")
        ),
    )
    assert (count("firing", "warning"), count("resolved", "other")) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_each_stored_alert_is_logged(client, capfd):
    fp = fingerprint()
    post(client, notification(alert(fp)))
    post(client, notification(alert(fp, "resolved", ends_at="2030-01-01T12:30:00Z")))
    lines = [
        json.loads(line)
        for line in capfd.readouterr().out.splitlines()
        if line.startswith("{") and fp in line
    ]
    events = [
        (line["event"], line["status"], line["severity"], line["alertname"]) for line in lines
    ]
    assert events == [
        ("incident_firing", "firing", "critical", "RampartHighErrorRate"),
        ("incident_resolved", "resolved", "critical", "RampartHighErrorRate"),
    ]
    assert all(line["trace_id"] for line in lines)


def test_the_runtime_role_cannot_touch_the_incidents_table_directly():
    url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (
            "SELECT count(*) FROM incidents",
            "DELETE FROM incidents",
            "UPDATE incidents SET status = 'resolved'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        forced = conn.execute(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class"
            " WHERE relname = 'incidents'"
        ).fetchone()[0]
    assert forced is True


# --- rate limit and settings ---------------------------------------------------------------


def test_alertmanager_is_never_rate_limited_but_failed_tokens_are(stack):
    """The per-IP base limit skips the webhook (one Alertmanager sends bursts and does not
    retry a 429); wrong tokens count against that limit instead."""
    from tests.support.server import serve_in_thread

    from rampart.config import get_settings

    saved = os.environ["RATE_LIMIT_DEFAULT_PER_IP"]
    os.environ["RATE_LIMIT_DEFAULT_PER_IP"] = "3/minute"
    get_settings.cache_clear()
    try:
        with serve_in_thread() as url, httpclient.client(base_url=url, timeout=30) as http:
            accepted = [post(http, notification(alert(fingerprint()))) for _ in range(5)]
            wrong = {"Authorization": "Bearer not-the-token"}
            refused = [post(http, notification(alert(fingerprint())), wrong) for _ in range(4)]
            after = post(http, notification(alert(fingerprint())))
    finally:
        os.environ["RATE_LIMIT_DEFAULT_PER_IP"] = saved
        get_settings.cache_clear()
    assert [r.status_code for r in accepted] == [200] * 5
    assert [r.status_code for r in refused] == [401, 401, 401, 429]
    assert int(refused[-1].headers["retry-after"]) >= 1
    assert after.status_code == 200  # the right token still gets through


def test_outside_dev_a_short_alert_webhook_token_is_refused_by_name():
    from rampart.config import Settings

    with pytest.raises(ValueError, match="ALERT_WEBHOOK_TOKEN: shorter than 32"):
        Settings(env="production", alert_webhook_token="short")
    weak_jwt = {"jwt_secret": "short"}  # pragma: allowlist secret
    with pytest.raises(ValueError) as refused:  # refused for another setting, not this one
        Settings(env="production", alert_webhook_token="x" * 32, **weak_jwt)
    assert "JWT_SECRET" in str(refused.value)
    assert "ALERT_WEBHOOK_TOKEN" not in str(refused.value)  # long enough
