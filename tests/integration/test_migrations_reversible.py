"""Migrations up and down on a scratch database: every migration that claims to be
reversible (its downgrade does not raise NotImplementedError) goes down and up again to
the same schema; and 0014's expand step (assessments.finished_at) backfills old rows and
keeps the column right for writers that do not know it; 0016 renames the task of outbox and
dead-letter rows to the job type, and back.
"""

from __future__ import annotations

import inspect
import uuid

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from tests.support.db import su_rows
from tests.support.scratch_db import ScratchDatabase, scratch_database


@pytest.fixture
def scratch(stack):
    with scratch_database(stack) as database:
        yield database


def _current(database: ScratchDatabase) -> set[str]:
    versions = su_rows(database.superuser, "SELECT version_num FROM alembic_version")
    return {version for (version,) in versions}


def _tenant_at(scratch: ScratchDatabase, revision: str) -> uuid.UUID:
    """The database migrated up to `revision`, with one tenant in it; the tenant's id."""
    command.upgrade(scratch.config, revision)
    tenant = uuid.uuid4()
    su_rows(scratch.superuser, "INSERT INTO tenants (id, name) VALUES (%s, 'Old')", tenant)
    return tenant


def test_reversible_migrations_go_down_step_by_step_and_up_to_the_same_schema(scratch):
    command.upgrade(scratch.config, "heads")
    before = scratch.schema_dump()
    script = ScriptDirectory.from_config(scratch.config)
    newest = max(script.get_heads())  # revisions are numbered: the newest line of work
    reversed_ = []
    revision = script.get_revision(newest)
    while revision is not None and isinstance(revision.down_revision, str):
        try:
            command.downgrade(scratch.config, revision.down_revision)
        except NotImplementedError:
            break  # the first forward-only migration: restore from a backup instead
        assert revision.revision not in _current(scratch)
        reversed_.append(revision.revision)
        revision = script.get_revision(revision.down_revision)
    # Every migration whose downgrade() is not the forward-only stub was reversed above
    # (so a reversible one behind a forward-only one, or on another branch, fails here).
    claiming = {
        r.revision
        for r in script.walk_revisions()
        if "NotImplementedError" not in inspect.getsource(r.module.downgrade)
    }
    assert "0014" in claiming
    assert claiming <= set(reversed_), f"claim to be reversible, not tested: {claiming}"

    command.upgrade(scratch.config, "heads")
    assert scratch.schema_dump() == before


def test_0014_backfills_finished_assessments_and_the_trigger_keeps_finished_at_right(scratch):
    tenant, user = _tenant_at(scratch, "0013"), uuid.uuid4()
    done, failed, running = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    su_rows(
        scratch.superuser,
        "INSERT INTO users (id, tenant_id, email, password_hash, role)"
        " VALUES (%s, %s, 'old@example.com', 'h', 'owner')",
        user,
        tenant,
    )
    for assessment, status in ((done, "completed"), (failed, "failed"), (running, "scoring")):
        su_rows(
            scratch.superuser,
            "INSERT INTO assessments (id, tenant_id, created_by, answers, status, updated_at)"
            " VALUES (%s, %s, %s, '{}', %s, now() - interval '1 day')",
            assessment,
            tenant,
            user,
            status,
        )

    command.upgrade(scratch.config, "heads")

    # One transaction: the trigger's finished_at = now() is compared with this now().
    with psycopg.connect(scratch.superuser) as conn:
        def finished(assessment):
            return conn.execute(
                "SELECT finished_at = updated_at, finished_at IS NULL FROM assessments"
                " WHERE id = %s", (assessment,),
            ).fetchone()

        assert finished(done) == (True, False)  # backfilled from its last change
        assert finished(failed) == (True, False)
        assert finished(running) == (None, True)
        # A writer that knows nothing of the column (the previous release) finishes one:
        conn.execute("UPDATE assessments SET status = 'completed' WHERE id = %s", (running,))
        assert conn.execute(
            "SELECT finished_at = now() FROM assessments WHERE id = %s", (running,)
        ).fetchone() == (True,)
        # A replay puts a failed one back in progress: not finished any more.
        conn.execute("UPDATE assessments SET status = 'queued' WHERE id = %s", (failed,))
        assert finished(failed) == (None, True)


def test_0016_gives_outbox_and_dead_letter_rows_the_job_type_as_their_task_and_back(scratch):
    tenant, job = _tenant_at(scratch, "0015"), uuid.uuid4()
    old_names = ["rampart.assessments.score", "rampart.assessments.roadmap"]
    old_names += ["rampart.accounts.send_mail", "some.other.task"]
    su_rows(
        scratch.superuser,
        "INSERT INTO jobs (id, tenant_id, type, idempotency_key, payload)"
        " VALUES (%s, %s, 'score_assessment', 'k', '{}')",
        job,
        tenant,
    )
    for task in old_names:
        su_rows(
            scratch.superuser,
            "INSERT INTO outbox (tenant_id, job_id, task) VALUES (%s, %s, %s)",
            tenant,
            job,
            task,
        )
    su_rows(
        scratch.superuser,
        "INSERT INTO dead_letters (tenant_id, job_id, job_type, task, error_class,"
        " error_message, attempts, payload) VALUES (%s, %s, 'score_assessment',"
        " 'rampart.assessments.score', 'E', 'm', 1, '{}')",
        tenant,
        job,
    )

    def tasks() -> tuple[list[str], list[str]]:
        outbox = su_rows(scratch.superuser, "SELECT task FROM outbox ORDER BY id")
        letters = su_rows(scratch.superuser, "SELECT task FROM dead_letters")
        return [r[0] for r in outbox], [r[0] for r in letters]

    command.upgrade(scratch.config, "0016")
    renamed = ["score_assessment", "generate_roadmap", "send_mail", "some.other.task"]
    assert tasks() == (renamed, ["score_assessment"])
    command.downgrade(scratch.config, "0015")
    assert tasks() == (old_names, ["rampart.assessments.score"])
