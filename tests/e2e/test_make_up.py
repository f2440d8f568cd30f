"""`rampart up` (what `make up` runs) on a fresh machine: no DATABASE_URL, REDIS_URL, so it
starts its own embedded Postgres and Redis, migrates, and runs API, worker and relay.

Proves the "two commands and it runs" promise end to end: the product works through it,
a second `up` on the same data dir refuses to start, SIGTERM leaves nothing running, and
the data survives a restart. Its secrets are its own (a Redis password, a Stripe webhook
secret) and its files private; the API's metrics are on their own loopback port, not the
public one. SIGTERM drains running tasks instead of killing them (none is redelivered);
a crashed server or service is restarted and the console says how it ended; the
deliveries of a worker that died with the stack are released at the next start.
What a killed `up` leaves behind and busy ports: test_up_operator.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis
from tests.support import httpclient
from tests.support.stripe import PATH as STRIPE_PATH
from tests.support.stripe import customer_id, event, sign
from tests.support.up import UpRunner, assert_nothing_left, leftovers
from tests.support.users import PASSWORD, Account, answers, signup
from tests.support.wait import wait_until

from rampart.devstack.postgres import EmbeddedPostgres
from rampart.kit.jobs.celery_app import QUEUE

pytestmark = pytest.mark.slow

def assert_stripe_secret_is_generated(
    runner: UpRunner, client: httpx.Client, account: Account
) -> None:
    generated = runner.secrets()["stripe_webhook_secret"]
    assert generated.startswith("whsec_") and len(generated) >= 38
    public_default = "whsec_dev_only_change_me"  # noqa: S105  # pragma: allowlist secret
    assert generated != public_default

    def deliver(secret: str) -> httpx.Response:
        obj = {
            "id": "cs_test_" + os.urandom(8).hex(),
            "object": "checkout.session",
            "client_reference_id": account.tenant_id,
            "customer": customer_id(),
            "mode": "subscription",
            "payment_status": "paid",
        }
        body = json.dumps(event("checkout.session.completed", obj)).encode()
        headers = {"Stripe-Signature": sign(body, secret), "content-type": "application/json"}
        return client.post(STRIPE_PATH, content=body, headers=headers)

    refused = deliver(public_default)
    assert refused.status_code == 401, refused.text
    accepted = deliver(generated)
    assert accepted.status_code == 200, accepted.text


def assert_stack_secrets_are_private(runner: UpRunner) -> None:
    """Redis wants the generated password; nothing under the home is readable by others."""
    port = runner.ports()["redis"]
    anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.set("rampart:session:forged", "1")
    anonymous.close()
    broker = runner.broker()
    assert broker.ping()
    broker.close()
    for key in ("redis_password", "stripe_webhook_secret"):
        assert len(runner.secrets()[key]) >= 32, key

    exposed = []
    for directory, dirs, files in os.walk(runner.home):
        for name in dirs:
            path = Path(directory, name)
            # Others may at most traverse (x): the unprivileged Postgres user must.
            if path.stat().st_mode & 0o066:
                exposed.append(f"{path} {oct(path.stat().st_mode & 0o777)}")
        for name in files:
            path = Path(directory, name)
            if path.is_symlink() or path.is_socket():
                continue
            if path.stat().st_mode & 0o077:
                exposed.append(f"{path} {oct(path.stat().st_mode & 0o777)}")
    if runner.home.stat().st_mode & 0o066:
        exposed.append(f"{runner.home} {oct(runner.home.stat().st_mode & 0o777)}")
    assert not exposed, "readable by group or others:\n" + "\n".join(exposed)


def test_up_runs_the_product_refuses_a_second_copy_stops_clean_and_keeps_data(runner):
    first = runner.start()
    runner.wait_up(first)

    # Everything it started is visible (so the "nothing left" check below can see it).
    running = " | ".join(cmd for _pid, cmd in leftovers(runner.home, runner.port))
    for name in (
        "postgres",
        "redis-server",
        "rampart.cli api",
        "rampart.cli worker",
        "rampart.cli relay",
    ):
        assert name in running, f"{name!r} not among the stack's processes: {running}"

    # Mails are kept by its capture server, and it says where to read them.
    assert "rampart mail" in first.stderr() and str(runner.home / "mail") in first.stderr()
    with httpclient.client(base_url=runner.url, timeout=30) as client:
        account = signup(client, mailbox=runner.home / "mail")  # the link from the kept mail
        created = client.post(
            "/api/v1/assessments", json={"answers": answers(3)}, headers=account.headers
        )
        assert created.status_code == 202, created.text
        assessment_id = created.json()["id"]

        def completed() -> dict | None:
            url = f"/api/v1/assessments/{assessment_id}"
            body = client.get(url, headers=account.headers).json()
            return body if body["status"] == "completed" else None

        done = wait_until(
            completed, 60, 0.2, message=f"assessment {assessment_id} to complete via `up`"
        )
        roadmap = client.get(f"/api/v1/roadmaps/{done['roadmap_id']}", headers=account.headers)
        assert roadmap.status_code == 200

        # /metrics is not on the public port: the normal 404 envelope. The API's series
        # are on its own metrics port, with the requests just made.
        public = client.get("/metrics")
        assert public.status_code == 404, public.text
        assert public.json()["error"]["code"] == "not_found"
        assert public.json()["error"]["trace_id"]
        api_metrics = httpclient.get(runner.metrics["api"], timeout=10).text
        assert 'route="/api/v1/assessments"' in api_metrics
        assert "rampart_build_info{" in api_metrics

        # The Stripe webhook secret is the stack's own, not the public dev default.
        assert_stripe_secret_is_generated(runner, client, account)
    assert_stack_secrets_are_private(runner)

    # A second `up` on the same data dir refuses, with one clear line, and leaves the
    # first alone.
    returncode, said = runner.run_to_exit(timeout=60)
    assert returncode != 0
    assert len(said) == 1 and "already running" in said[0], said
    assert f"pid {first.popen.pid}" in said[0], said
    assert first.popen.poll() is None
    assert httpclient.get(f"{runner.url}/ready", timeout=5).status_code == 200

    # SIGTERM stops everything it started, then it exits cleanly.
    assert runner.terminate(first) == 0, first.describe()
    assert_nothing_left(runner)
    assert "stopped." in first.stderr()

    # Start again: same data dir, same data.
    again = runner.start()
    runner.wait_up(again)
    with httpclient.client(base_url=runner.url, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        kept = client.get(f"/api/v1/assessments/{assessment_id}", headers=headers)
        assert kept.status_code == 200
        assert kept.json()["status"] == "completed"
        assert kept.json()["roadmap_id"] == done["roadmap_id"]
    assert runner.terminate(again) == 0, again.describe()
    assert_nothing_left(runner)


# --- shutdown, supervision, stale deliveries -------------------------------------------------


def post_assessments(client: httpx.Client, account: Account, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        created = client.post(
            "/api/v1/assessments", json={"answers": answers(3)}, headers=account.headers
        )
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])
    return ids


def wait_completed(client: httpx.Client, account: Account, ids: list[str], timeout: float) -> None:
    def all_completed() -> bool:
        statuses = [
            client.get(f"/api/v1/assessments/{i}", headers=account.headers).json()["status"]
            for i in ids
        ]
        return all(status == "completed" for status in statuses)

    wait_until(all_completed, timeout, 0.25, message=f"assessments {ids} to complete")


def jobs(runner: UpRunner) -> list[tuple[str, str, int]]:
    """(type, status, attempts) of every assessment job (not the signup's mail), oldest
    first."""
    rows = runner.sql(
        "SELECT type, status, attempts FROM jobs WHERE type <> 'send_mail'"
        " ORDER BY created_at, type"
    )
    return [(kind, status, int(attempts)) for kind, status, attempts in rows]


def log_events(runner: UpRunner, service: str) -> list[dict]:
    lines = []
    path = runner.home / "logs" / f"{service}.log"
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
    return lines


def test_sigterm_lets_running_tasks_finish_and_none_is_redelivered(runner):
    # Each LLM call takes 4 s; WORKER_CONCURRENCY is 2, so two scoring jobs run at once.
    runner.env["LLM_OFFLINE_LATENCY_SECONDS"] = "4"
    up = runner.start()
    runner.wait_up(up)
    with httpclient.client(base_url=runner.url, timeout=30) as client:
        account = signup(client, mailbox=runner.home / "mail")
        ids = post_assessments(client, account, 2)
        wait_until(
            lambda: (
                [row for row in jobs(runner) if row[1] == "processing"]
                == [
                    ("score_assessment", "processing", 1),
                    ("score_assessment", "processing", 1),
                ]
            ),
            30,
            0.1,
            message=lambda: f"two scoring jobs to be running; jobs: {jobs(runner)}",
        )

        started = time.monotonic()
        assert runner.terminate(up) == 0, up.describe()
        drained = time.monotonic() - started
        assert_nothing_left(runner)

        # Both running tasks finished before the worker stopped: no pool process was
        # killed under them (WorkerLostError) and each succeeded in its first delivery.
        worker_log = (runner.home / "logs" / "worker.log").read_text(errors="replace")
        assert "WorkerLostError" not in worker_log + up.stderr()
        succeeded = [
            e
            for e in log_events(runner, "worker")
            if e.get("event") == "job_succeeded" and e.get("job_type") == "score_assessment"
        ]
        assert len(succeeded) == 2, succeeded  # (the signup's mail job ran before them)
        print(f"SIGTERM with 2 tasks running: `up` exited after {drained:.1f}s")

        # The next start finishes the work (the roadmaps) and runs nothing twice.
        runner.env["LLM_OFFLINE_LATENCY_SECONDS"] = "0"
        again = runner.start()
        runner.wait_up(again)
        wait_completed(client, account, ids, 60)
    assert sorted(jobs(runner)) == [
        ("generate_roadmap", "succeeded", 1),
        ("generate_roadmap", "succeeded", 1),
        ("score_assessment", "succeeded", 1),
        ("score_assessment", "succeeded", 1),
    ]
    assert runner.terminate(again) == 0, again.describe()
    assert_nothing_left(runner)


def _ready(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpclient.get(f"{url}/ready", timeout=2).status_code == 200
    return False


def test_up_restarts_what_crashed_and_says_how_it_ended(runner):
    up = runner.start()
    runner.wait_up(up)
    ports = runner.ports()
    postgres = EmbeddedPostgres(runner.home / "postgres", ports["postgres"])
    timings = {}

    def crash(name: str, pid: int, said: str) -> None:
        """SIGKILL `pid`; the stack must notice, say so, and be ready again."""
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: re.search(said, up.stderr()),
            30,
            0.1,
            message=lambda: f"`up` to report that {name} was killed\n" + up.describe(),
        )
        wait_until(
            lambda: _ready(runner.url),
            90,
            0.2,
            message=lambda: f"/ready to answer 200 again after {name} was killed\n" + up.describe(),
        )
        timings[name] = time.monotonic() - started
        assert up.popen.poll() is None, up.describe()

    postmaster = postgres._postmaster_pid()
    assert postmaster is not None
    crash("postgres", postmaster, r"postgres .*killed by SIGKILL.*restart")
    assert postgres._postmaster_pid() not in (None, postmaster)

    redis_pid = int((runner.home / "redis" / "redis.pid").read_text())
    crash("redis", redis_pid, r"redis .*killed by SIGKILL.*restart")

    (api_pid,) = runner.service_pids("api")
    crash("api", api_pid, r"api .*killed by SIGKILL.*restart")

    (worker_pid,) = runner.service_pids("worker")
    crash("worker", worker_pid, r"worker .*killed by SIGKILL.*restart")
    wait_until(lambda: runner.service_pids("worker") not in ([], [worker_pid]), 60)

    # Everything works again: an assessment goes all the way through.
    with httpclient.client(base_url=runner.url, timeout=30) as client:
        account = signup(client, mailbox=runner.home / "mail")
        ids = post_assessments(client, account, 1)
        wait_completed(client, account, ids, 90)
    print("back to ready after SIGKILL: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    assert runner.terminate(up) == 0, up.describe()
    assert_nothing_left(runner)


def test_the_next_start_releases_the_deliveries_of_a_worker_that_died_with_the_stack(runner):
    runner.env["LLM_OFFLINE_LATENCY_SECONDS"] = "30"
    up = runner.start()
    runner.wait_up(up)
    with httpclient.client(base_url=runner.url, timeout=30) as client:
        account = signup(client, mailbox=runner.home / "mail")
        ids = post_assessments(client, account, 1)
        wait_until(
            lambda: ("score_assessment", "processing", 1) in jobs(runner),
            30,
            0.1,
            message=lambda: f"the scoring job to be running; jobs: {jobs(runner)}",
        )
        # The whole `up` tree dies at once (power loss, OOM killer, kill -9 of the
        # session): the worker's delivery stays unacked, and Redis, stopped by the kernel's
        # death signal, keeps it in its append-only file.
        groups = {
            os.getpgid(pid)
            for pid, cmd in leftovers(runner.home, runner.port)
            if "rampart.cli" in cmd
        }
        groups.add(up.popen.pid)
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        up.popen.wait(10)
        assert_nothing_left(runner)

        # The next `up` hands the delivery back at start, long before the visibility
        # timeout (CELERY_VISIBILITY_TIMEOUT_SECONDS, 3600 s) would.
        runner.env["LLM_OFFLINE_LATENCY_SECONDS"] = "0"
        started = time.monotonic()
        again = runner.start()
        runner.wait_up(again)
        wait_completed(client, account, ids, 60)
        took = time.monotonic() - started
        broker = runner.broker()
        assert broker.hlen("unacked") == 0
        assert broker.llen(QUEUE) == 0
        broker.close()
    print(f"stale delivery released and the assessment completed {took:.1f}s after restart")
    # The killed delivery counted as an attempt; the released one finished it.
    assert ("score_assessment", "succeeded", 2) in jobs(runner), jobs(runner)
    assert "stale" in again.stderr().lower(), again.describe()
    assert runner.terminate(again) == 0, again.describe()
    assert_nothing_left(runner)
