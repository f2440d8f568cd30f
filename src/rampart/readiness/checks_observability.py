"""Observability: the alert rules load and each alert names a runbook that exists,
Alertmanager delivers a test alert to its receiver, Sentry accepts a test event."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import yaml

from rampart.readiness.context import Context
from rampart.readiness.model import Result, Status, not_available

AREA = "observability"
PROBE_ALERT = "RampartReadinessProbe"


def alert_rules(ctx: Context) -> Result:
    """`promtool check rules` accepts ops/prometheus/rules/*.yml, and every alert's
    `runbook_url` names a file of the repository."""
    from rampart.devstack import DevStackError
    from rampart.devstack.prometheus_tools import ensure_binary

    check, doc = "alert rules load, each has a runbook", "docs/observability.md"
    rules_dir = ctx.repo / "ops" / "prometheus" / "rules"
    files = sorted(rules_dir.glob("*.yml"))
    source = f"{rules_dir} (promtool check rules)"
    if not files:
        return not_available(
            AREA, check, "no rule files", source, "restore ops/prometheus/rules", doc
        )
    try:
        promtool = ensure_binary("promtool")
    except DevStackError as exc:
        return not_available(
            AREA, check, f"no promtool: {exc}", source, "install Debian's prometheus package", doc
        )
    done = subprocess.run(  # noqa: S603 # nosec B603 - fixed argv, no shell
        [str(promtool), "check", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    problems = []
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        problems.append("promtool: " + " | ".join(lines[-2:]))
    alerts = 0
    for path in files:
        try:
            groups = (yaml.safe_load(path.read_text()) or {}).get("groups") or []
        except yaml.YAMLError as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        for group in groups:
            for rule in group.get("rules") or []:
                if "alert" not in rule:
                    continue
                alerts += 1
                runbook = (rule.get("annotations") or {}).get("runbook_url", "")
                target = runbook.split("#", 1)[0]
                if not target:
                    problems.append(f"{rule['alert']} has no runbook_url")
                elif "://" not in target and not (ctx.repo / target).is_file():
                    problems.append(f"{rule['alert']}: runbook {target} does not exist")
    figure = f"{len(files)} rule files, {alerts} alerts"
    if problems:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{figure}; " + "; ".join(problems[:4]),
            source,
            "fix the rule, or write the runbook under docs/runbooks/",
            doc,
        )
    return Result(AREA, check, Status.GO, f"{figure}, every runbook exists", source)


# --- Alertmanager ------------------------------------------------------------------------


def _notification_requests(client: httpx.Client) -> tuple[float, float]:
    """Alertmanager's own counters of requests to receivers (every integration, every
    attempt, retries included): sent, and failed."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").raise_for_status().text
    sent = failed = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "alertmanager_notification_requests_total":
                sent += sample.value
            elif sample.name == "alertmanager_notification_requests_failed_total":
                failed += sample.value
    return sent, failed


def _probe(probe_id: str, ends: datetime) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {
            "labels": {
                "alertname": PROBE_ALERT,
                "severity": "info",
                "service": "readiness",
                "probe_id": probe_id,
            },
            "annotations": {
                "summary": "Test alert of `rampart readiness`: proves the delivery path",
                "runbook_url": "docs/go-live.md",
            },
            "startsAt": now.isoformat(),
            "endsAt": ends.isoformat(),
        }
    ]


def alertmanager_receiver(ctx: Context) -> Result:
    """A test alert posted to ALERTMANAGER_URL reaches its route's receivers: Alertmanager's
    own count of receiver requests grows and its count of failed ones does not (group_wait
    applies: up to --alert-timeout). The alert (severity info: the default route; the
    incident webhook opens and closes an incident for it) is resolved afterwards."""
    check, doc = "Alertmanager receiver answers", "docs/observability.md"
    url = ctx.settings.alertmanager_url
    if not url:
        return not_available(
            AREA,
            check,
            "ALERTMANAGER_URL not set (`rampart up` runs none)",
            "ALERTMANAGER_URL",
            "set ALERTMANAGER_URL",
            doc,
        )
    source = f"{url} (test alert {PROBE_ALERT})"
    probe_id = uuid.uuid4().hex[:12]
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=10) as client:
            sent0, failed0 = _notification_requests(client)
            later = datetime.now(UTC) + timedelta(minutes=10)
            client.post("/api/v2/alerts", json=_probe(probe_id, later)).raise_for_status()
            deadline = time.monotonic() + ctx.alert_timeout_seconds
            sent, failed = sent0, failed0
            try:
                # The first answer decides: a request that succeeded, or one that failed.
                while time.monotonic() < deadline and sent == sent0:
                    time.sleep(1.0)
                    sent, failed = _notification_requests(client)
                if sent != sent0:
                    # Alertmanager counts a request and then, a step later, its failure: a
                    # reading between the two shows a failed request as answered.
                    time.sleep(1.0)
                    sent, failed = _notification_requests(client)
            finally:  # resolve the probe whatever happened
                client.post("/api/v2/alerts", json=_probe(probe_id, datetime.now(UTC)))
    except httpx.HTTPError as exc:
        return not_available(
            AREA,
            check,
            f"Alertmanager does not answer: {exc}",
            source,
            "check ALERTMANAGER_URL and that Alertmanager runs",
            doc,
        )
    requests, refused = sent - sent0, failed - failed0
    if refused > 0:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{refused:g} of {requests:g} receiver requests failed",
            source,
            "check the receivers (incident webhook URL and token, Slack, PagerDuty)",
            doc,
        )
    if requests <= 0:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"nothing sent within {ctx.alert_timeout_seconds:g}s",
            source,
            "check the route and receivers (`rampart alertmanager-config`)",
            doc,
        )
    return Result(
        AREA, check, Status.GO, f"{requests:g} receiver request(s) answered, 0 failed", source
    )


# --- Sentry ------------------------------------------------------------------------------


def sentry_event(ctx: Context) -> Result:
    """SENTRY_DSN is set and its envelope endpoint accepts a test event (HTTP 200)."""
    import json

    from sentry_sdk.consts import EndpointType
    from sentry_sdk.envelope import Envelope, Item, PayloadRef
    from sentry_sdk.utils import BadDsn, Dsn

    check, doc = "Sentry accepts an event", "docs/observability.md#errors-sentry"
    dsn = ctx.settings.sentry_dsn
    if dsn is None:
        return not_available(AREA, check, "SENTRY_DSN not set", "SENTRY_DSN", "set SENTRY_DSN", doc)
    try:
        auth = Dsn(dsn.get_secret_value()).to_auth("rampart-readiness/1")
    except BadDsn as exc:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"SENTRY_DSN invalid: {exc}",
            "SENTRY_DSN",
            "set a DSN from the Sentry project's settings",
            doc,
        )
    url = auth.get_api_url(EndpointType.ENVELOPE)
    event_id = uuid.uuid4().hex
    settings = ctx.settings
    event = {
        "event_id": event_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "level": "info",
        "platform": "python",
        "message": {"formatted": "rampart readiness: test event"},
        "environment": settings.sentry_environment or settings.env,
        "release": settings.sentry_release or settings.version,
        "tags": {"readiness": "probe"},
    }
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_item(Item(payload=PayloadRef(json=event), type="event"))
    body = envelope.serialize()
    source = f"{auth.scheme}://{auth.host}/ project {auth.project_id}"
    try:
        answer = httpx.post(
            url,
            content=body,
            timeout=10,
            headers={
                "X-Sentry-Auth": auth.to_header(),
                "Content-Type": "application/x-sentry-envelope",
            },
        )
    except httpx.HTTPError as exc:
        return not_available(
            AREA,
            check,
            f"Sentry does not answer: {exc}",
            source,
            "check SENTRY_DSN and the network path to Sentry",
            doc,
        )
    if answer.status_code != 200:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"event refused: HTTP {answer.status_code}",
            source,
            "check the DSN's project and key",
            doc,
        )
    try:
        accepted = json.loads(answer.text or "{}").get("id") or event_id
    except ValueError:
        accepted = event_id
    return Result(AREA, check, Status.GO, f"test event {accepted} accepted", source)
