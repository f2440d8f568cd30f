"""One log format per process: everything `rampart api`, `rampart worker` and `rampart relay`
write to stdout and stderr, from startup through one job to shutdown, is one JSON object
per line with the house keys; Celery's banner, its shutdown notices, Python warnings and
lines logged before Celery configured logging included (docs/observability.md, "Logs")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support import httpclient
from tests.support.mail import mails_to
from tests.support.processes import processes
from tests.support.users import unverified
from tests.support.wait import wait_until

from rampart.devstack.ports import free_port

if TYPE_CHECKING:  # imported at run time, pytest would try to collect the class
    from tests.support.stack import TestStack

KEYS = {"timestamp", "level", "event", "service", "env", "version"}


def _record(line: str, service: str) -> dict | None:
    """The line as a log record of `service` with the house keys, else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(record, dict) and record.keys() >= KEYS and record["service"] == service
    return record if ok else None


def stray_lines(output: str, service: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip() and not _record(line, service)]


def test_service_processes_write_only_json_lines_from_start_to_stop(
    stack: TestStack, tmp_path: Path
) -> None:
    with processes(stack, tmp_path / "procs") as procs:
        # The metrics listeners on: their `metrics_serving` line comes early in startup.
        api = procs.spawn("api")
        worker = procs.spawn(
            "worker", WORKER_CONCURRENCY="1", WORKER_METRICS_PORT=str(free_port())
        )
        relay = procs.spawn("relay", RELAY_METRICS_PORT=str(free_port()))
        for proc in (api, worker, relay):
            proc.wait_ready()
        assert api.url is not None
        with httpclient.client(base_url=api.url, timeout=30) as client:
            account = unverified(client)  # its confirmation mail is a job for the worker
        wait_until(lambda: mails_to(account.email), 60, message="the worker to send the mail")
        for proc in (api, worker, relay):
            proc.stop()

        for proc in (api, worker, relay):
            output = proc.output_file.read_text(errors="replace")
            assert output.strip(), f"{proc.role} wrote nothing"
            assert stray_lines(output, proc.role) == [], f"{proc.role}:\n{output}"
        lines = worker.output_file.read_text().splitlines()
        events = {json.loads(line)["event"] for line in lines if line.strip()}
        assert "metrics_serving" in events
        assert any(str(event).startswith("Task send_mail[") for event in events)
