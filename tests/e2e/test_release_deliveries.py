"""`rampart release-deliveries` on real workers and the real broker: a job whose worker was
SIGKILLed mid-task stays `processing`, its message unacknowledged in Redis until the
visibility timeout (1 h). The command refuses while a worker answers (its running tasks
would run twice), and once none does, hands the delivery back: the next worker finishes the
job at once.
"""

from __future__ import annotations

import httpx
import pytest
import redis
from tests.support.cli import rampart
from tests.support.jobs import jobs
from tests.support.processes import processes
from tests.support.users import answers, signup
from tests.support.wait import wait_until

from rampart.kit.jobs.celery_app import QUEUE

pytestmark = pytest.mark.slow


def test_release_deliveries_refuses_while_a_worker_answers_then_frees_a_dead_workers_job(
    stack, client: httpx.Client, tmp_path
):
    account = signup(client, "Dead Worker Ltd")
    broker = redis.Redis.from_url(stack.env["REDIS_URL"], socket_timeout=5)
    with processes(stack, tmp_path) as procs:
        # The LLM call takes 60 s: the worker is killed in the middle of it.
        worker = procs.spawn(
            "worker", WORKER_CONCURRENCY="1", LLM_OFFLINE_LATENCY_SECONDS="60"
        ).wait_ready()
        relay = procs.spawn("relay").wait_ready()
        created = client.post(
            "/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers
        )
        assert created.status_code == 202, created.text

        def running() -> bool:
            return [(j.type, j.status) for j in jobs(account.tenant_id)] == [
                ("score_assessment", "processing")
            ]

        wait_until(running, 60, 0.1, message="the scoring job to be running")

        refused = rampart("release-deliveries", check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "refusing" in refused.stdout + refused.stderr
        assert broker.hlen("unacked") >= 1  # nothing was touched

        worker.kill()  # SIGKILL to the whole worker: no warm shutdown, no ack
        assert running()
        unacked = broker.hlen("unacked")
        assert unacked >= 1

        released = rampart("release-deliveries")
        assert f"released {unacked} deliver" in released.stdout + released.stderr
        assert broker.hlen("unacked") == 0
        assert broker.llen(QUEUE) >= 1

        procs.spawn("worker", WORKER_CONCURRENCY="1").wait_ready()

        def finished() -> list[tuple[str, str, int]]:
            rows = [(j.type, j.status, j.attempts) for j in jobs(account.tenant_id)]
            return rows if all(status == "succeeded" for _t, status, _a in rows) else []

        rows = wait_until(finished, 60, 0.2, message="the job to finish on the new worker")
        # The killed delivery counted as an attempt; the released one finished it.
        assert ("score_assessment", "succeeded", 2) in rows
        relay.stop()
    broker.close()
