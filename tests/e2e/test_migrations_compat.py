"""The expand step never breaks the running release (docs/migrations.md): the previous
release's own code (git history: the parent of the commit that added the newest
migration) runs as real API, relay and worker processes against the test stack's
database, which is migrated to the newest head, and its core flow works: sign up, confirm
the address, submit an assessment, see it scored with a roadmap, list it.

The old code runs on today's installed dependencies (requirements.lock): a release that
drops a dependency the previous one imports shows up here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import httpclient
from tests.support.db import su_rows
from tests.support.mail import link_token, wait_for_mail
from tests.support.processes import processes, wait_until
from tests.support.releases import newest_migration, previous_release, unpack
from tests.support.users import VERIFY_SUBJECT, answers, unverified


@pytest.fixture
def old_code(tmp_path):
    commit = previous_release()
    return commit, unpack(commit, tmp_path / "previous-release")


def test_the_previous_release_runs_its_core_flow_on_the_newest_schema(
    stack, superuser, old_code, tmp_path
):
    commit, root = old_code
    newest, newest_file = newest_migration()
    # The previous release is older than the newest migration: it does not know it.
    assert not (root / "migrations" / "versions" / newest_file.name).exists(), commit
    applied = {row[0] for row in su_rows(superuser, "SELECT version_num FROM alembic_version")}
    assert newest in applied, f"the stack's database is not at {newest}: {applied}"

    old = {"PYTHONPATH": str(root / "src")}
    # With that PYTHONPATH this interpreter imports the previous release, not ours.
    imported = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-c", "import rampart.app; print(rampart.app.__file__)"],
        env={**os.environ, **old}, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    assert Path(imported).is_relative_to(root), (imported, commit)

    with processes(stack, tmp_path / "procs") as procs:
        api = procs.spawn("api", **old)
        procs.spawn("worker", WORKER_CONCURRENCY="1", **old)
        procs.spawn("relay", **old)
        for proc in procs.procs:
            proc.wait_ready()
        with httpclient.client(base_url=api.url, timeout=30) as client:

            account = unverified(client)
            mail = wait_for_mail(account.email, VERIFY_SUBJECT, timeout=60)  # its worker
            verified = client.post("/api/v1/auth/verify-email", json={"token": link_token(mail)})
            assert verified.status_code == 200, verified.text
            created = client.post(
                "/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers
            )
            assert created.status_code == 202, created.text
            assessment_id = created.json()["id"]

            def completed():
                read = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers)
                assert read.status_code == 200, read.text
                body = read.json()
                assert body["status"] != "failed", body
                return body if body["status"] == "completed" else None

            done = wait_until(completed, 90, 0.2, message="the old worker to complete it")
            roadmap = client.get(f"/api/v1/roadmaps/{done['roadmap_id']}", headers=account.headers)
            assert roadmap.status_code == 200 and roadmap.json()["assessment_id"] == assessment_id
            listed = client.get("/api/v1/assessments", headers=account.headers).json()
            assert [item["id"] for item in listed["items"]] == [assessment_id]

    # The old release never wrote finished_at; the expand step's trigger did.
    finished = su_rows(
        superuser, "SELECT finished_at IS NOT NULL FROM assessments WHERE id = %s", assessment_id
    )
    assert finished == [(True,)]
