"""assessments.finished_at: when an assessment reached `completed` or `failed`.

Revision ID: 0014
Revises: 0013

Reading guide. The expand step of an expand/contract change (docs/migrations.md, the
worked example). The API shows `finished_at`; the time from created_at to it is what a
tenant waits for a roadmap.

Expand (this migration; the previous release keeps running while and after it applies):
1. ADD COLUMN, nullable and without a default: a catalog change, no table rewrite; the
   ACCESS EXCLUSIVE lock is held for milliseconds (and given up after lock_timeout).
2. A BEFORE trigger keeps the column right for every writer, the previous release too,
   which knows nothing of it: a status change into `completed`/`failed` sets it to now(),
   one out of them (a replayed job) clears it.
3. Backfill of the rows finished before the trigger: finished_at = updated_at (the last
   change of a finished assessment is its finishing), in batches of 1,000 rows,
   each its own transaction (autocommit block), so no lock is held for long and no
   statement comes near statement_timeout. It may be cut short and run again.

Contract (a later release, once no running release predates this one): the app writes
finished_at where it sets the status, the trigger goes, and
`CHECK ((status IN ('completed', 'failed')) = (finished_at IS NOT NULL)) NOT VALID`, then
VALIDATE CONSTRAINT in a separate transaction (a SHARE UPDATE EXCLUSIVE lock: reads and
writes go on while it checks the rows).

Reversible: downgrade drops the trigger, its function and the column (the previous release
never reads them).
"""

from alembic import context, op
from sqlalchemy import text

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


# IF NOT EXISTS / OR REPLACE: a backfill cut short leaves this committed, and the
# migration is run again from the top.
EXPAND = """
ALTER TABLE assessments ADD COLUMN IF NOT EXISTS finished_at timestamptz;

CREATE OR REPLACE FUNCTION app.assessments_finished_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  IF NEW.status NOT IN ('completed', 'failed') THEN
    NEW.finished_at := NULL;
  ELSIF TG_OP = 'INSERT' OR OLD.status NOT IN ('completed', 'failed') THEN
    NEW.finished_at := now();
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.assessments_finished_at() FROM PUBLIC;

CREATE OR REPLACE TRIGGER assessments_finished_at
  BEFORE INSERT OR UPDATE OF status ON assessments
  FOR EACH ROW EXECUTE FUNCTION app.assessments_finished_at();

-- RLS is FORCEd on the owner too: without a policy of its own the backfill sees no row
-- and silently does nothing. For the backfill only (definer functions run as this role).
DROP POLICY IF EXISTS migration_0014_backfill ON assessments;
CREATE POLICY migration_0014_backfill ON assessments FOR UPDATE TO CURRENT_USER
  USING (true) WITH CHECK (true);
"""

# One batch: the next 1,000 rows by primary key (an index range, never a scan of what
# earlier batches did), each batch a short transaction of its own; returns the last id.
BACKFILL = """
WITH batch AS (
  SELECT id FROM assessments WHERE id > CAST(:after AS uuid) ORDER BY id LIMIT 1000
), filled AS (
  UPDATE assessments a SET finished_at = a.updated_at FROM batch
   WHERE a.id = batch.id AND a.status IN ('completed', 'failed') AND a.finished_at IS NULL
)
SELECT id FROM batch ORDER BY id DESC LIMIT 1
"""
FIRST = "00000000-0000-0000-0000-000000000000"


def upgrade() -> None:
    op.execute(EXPAND)
    with op.get_context().autocommit_block():
        if context.is_offline_mode():
            op.execute(
                "-- repeated with :after = the id it returns, until it returns NULL\n"
                + BACKFILL.strip().replace(":after", f"'{FIRST}'")
            )
        else:
            after = FIRST
            while after is not None:
                after = op.get_bind().execute(text(BACKFILL), {"after": after}).scalar()
    op.execute("DROP POLICY migration_0014_backfill ON assessments")


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER assessments_finished_at ON assessments;"
        " DROP FUNCTION app.assessments_finished_at();"
        " ALTER TABLE assessments DROP COLUMN finished_at;"
    )
