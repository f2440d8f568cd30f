"""Age of the oldest job in `processing`, for the relay's metrics.

Revision ID: 0009
Revises: 0008

Reading guide. A delivery that starts marks its job `processing` (and sets `started_at`);
if the worker running it dies (SIGKILL, OOM, a lost host), the job stays `processing` and
its message waits in Redis, unacknowledged, for CELERY_VISIBILITY_TIMEOUT_SECONDS (1 h)
before another worker gets it. `app.job_counts()` (0006) ages jobs by `created_at`, and the
queue age the relay reports counts only `pending` jobs: nothing showed that wait.

One SECURITY DEFINER function (cross-tenant path 5, read-only, docs/security.md),
executable by app_rw only; the relay calls it at scrape time:

- `app.jobs_processing_oldest_age()`: seconds since the oldest `processing` job's current
  delivery started (`started_at`, else `updated_at`), over every tenant; 0 when none. One
  number, never a row. The relay reports it as
  `rampart_jobs_processing_oldest_age_seconds`; past TASK_TIME_LIMIT_SECONDS no live
  delivery can still be running it (Celery kills a task at that limit), so the alert
  `RampartJobProcessingTooLong` fires.

It reads `processing` rows through the partial index `jobs_open_updated_idx` (0008). The
owner passes RLS on jobs already (`definer_dlq_jobs`, 0002): no new policy.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FUNCTIONS = """
CREATE FUNCTION app.jobs_processing_oldest_age()
RETURNS double precision
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(extract(epoch FROM now() - min(coalesce(j.started_at, j.updated_at))), 0)
           ::double precision
    FROM public.jobs j
   WHERE j.status = 'processing'
$$;

REVOKE ALL ON FUNCTION app.jobs_processing_oldest_age() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.jobs_processing_oldest_age() TO app_rw;
"""


def upgrade() -> None:
    op.execute(FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
