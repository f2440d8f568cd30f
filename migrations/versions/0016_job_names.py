"""One name per job type: outbox and dead-letter rows carry the job type as their task.

Revision ID: 0016
Revises: 0015

Reading guide. A data migration, no DDL. Up to this release a job type had two names: the
jobs row's `type` (`score_assessment`) and the Celery task name in `outbox.task` and
`dead_letters.task` (`rampart.assessments.score`). From this release both are the job type
(kit/jobs/task.py). This rewrites the task of the rows written before, so the stale-job
sweeper (which republishes a job under its latest outbox row's task) and `rampart
quarantine replay` use the one name.

Rolling deploy: the worker of this release accepts the old names as aliases
(assessments/tasks.py, accounts/tasks.py), so a message already in the broker, or
published by a relay of the previous release, still runs. A worker of the previous
release does not know the new names: deploy the workers first; a message one of them
refuses as unregistered is dropped by Celery and its job, still pending, is published
again by the stale-job sweeper (docs/migrations.md, "Renaming a job type").

Batches of 1,000 rows by primary key, each its own transaction (autocommit block): no
long row locks, no statement near statement_timeout; idempotent (only old names change),
so a cut-short run is run again. The migration role has its definer policies on both
tables (0001, 0002): RLS lets it see every row.

Reversible: downgrade writes the old names back (the previous release's workers know only
those).
"""

from alembic import context, op
from sqlalchemy import text

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# old Celery name -> the job type
RENAMED = {
    "rampart.assessments.score": "score_assessment",
    "rampart.assessments.roadmap": "generate_roadmap",
    "rampart.accounts.send_mail": "send_mail",
}

# One batch of one table: the next 1,000 rows by primary key; returns the last id.
BATCH = """
WITH batch AS (
  SELECT id FROM {table} WHERE id > :after ORDER BY id LIMIT 1000
), renamed AS (
  UPDATE {table} t SET task = CASE t.task {cases} END FROM batch
   WHERE t.id = batch.id AND t.task IN ({names})
)
SELECT id FROM batch ORDER BY id DESC LIMIT 1
"""


def _sql(table: str, mapping: dict[str, str]) -> str:
    def quoted(name: str) -> str:
        return "'" + name.replace("'", "''") + "'"

    cases = " ".join(f"WHEN {quoted(old)} THEN {quoted(new)}" for old, new in mapping.items())
    names = ", ".join(quoted(old) for old in mapping)
    return BATCH.format(table=table, cases=cases, names=names)


def _rename(mapping: dict[str, str]) -> None:
    with op.get_context().autocommit_block():
        for table in ("outbox", "dead_letters"):
            sql = _sql(table, mapping)
            if context.is_offline_mode():
                op.execute(
                    "-- repeated with :after = the id it returns, until it returns NULL\n"
                    + sql.strip().replace(":after", "0")
                )
                continue
            after: int | None = 0
            while after is not None:
                after = op.get_bind().execute(text(sql), {"after": after}).scalar()


def upgrade() -> None:
    _rename(RENAMED)


def downgrade() -> None:
    _rename({new: old for old, new in RENAMED.items()})
