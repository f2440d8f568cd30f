"""Stale-job sweeper: republish jobs whose message vanished from the broker.

Revision ID: 0008
Revises: 0002

Reading guide. A job is published once, through its outbox row; after that its message
lives only in Redis. If Redis restarts without its data, or Celery drops a message (a task
that raised outside the job runner, a retry that could not be published while Redis was
down), the job row stays `pending` or `processing` and nothing would ever run it.

One SECURITY DEFINER function (cross-tenant path 6, docs/security.md), executable by
app_rw only; the outbox relay calls it every JOB_SWEEP_INTERVAL_SECONDS:

- `app.jobs_republish_stale(stale_after_seconds, max_rows)`: jobs `pending` or
  `processing` whose row has not changed for `stale_after_seconds`, that have been
  published (an outbox row exists) and have no outbox row still waiting to be published,
  at most `max_rows` (capped at 1000), locked with SKIP LOCKED (a delivery starting now
  holds the row: it is skipped, not waited for). For each one: a new outbox row with the
  task of the job's latest outbox row and headers `{"trace_id": <the job's>, "republished":
  true}`, and the job's `updated_at` set to now, so it is republished again only after
  another stale period. Returns job id, tenant, type and trace id of each, never payloads.

Every delivery that starts bumps `updated_at` (the runner counts it on the job row), so a
job whose task is running (bounded by TASK_TIME_LIMIT_SECONDS) or waiting for a retry
(bounded by JOB_RETRY_MAX_SECONDS) is never stale while JOB_STALE_AFTER_SECONDS exceeds
CELERY_VISIBILITY_TIMEOUT_SECONDS (checked at startup). A job with no outbox row at all was
not created by `enqueue` and is left alone. The owner passes RLS on jobs (`definer_dlq_jobs`,
0002) and outbox (`definer_outbox_relay`, 0001) already: no new policy.
"""

from alembic import op

revision = "0008"
down_revision = "0002"
branch_labels = None
depends_on = None

FUNCTIONS = """
CREATE INDEX jobs_open_updated_idx ON jobs (updated_at)
  WHERE status IN ('pending', 'processing');

CREATE FUNCTION app.jobs_republish_stale(p_stale_after_seconds integer, p_max_rows integer)
RETURNS TABLE (job_id uuid, tenant_id uuid, type text, trace_id text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  WITH stale AS (
    SELECT j.id, j.tenant_id, j.type, j.trace_id,
           (SELECT o.task FROM public.outbox o
             WHERE o.job_id = j.id ORDER BY o.id DESC LIMIT 1) AS task
      FROM public.jobs j
     WHERE j.status IN ('pending', 'processing')
       AND j.updated_at < now() - make_interval(secs => greatest(p_stale_after_seconds, 1))
       AND EXISTS (SELECT 1 FROM public.outbox o WHERE o.job_id = j.id)
       AND NOT EXISTS (SELECT 1 FROM public.outbox o
                        WHERE o.job_id = j.id AND o.sent_at IS NULL)
     ORDER BY j.updated_at
     LIMIT least(greatest(p_max_rows, 0), 1000)
     FOR UPDATE OF j SKIP LOCKED
  ),
  bumped AS (
    UPDATE public.jobs j SET updated_at = now() FROM stale s WHERE j.id = s.id
  ),
  queued AS (
    INSERT INTO public.outbox (tenant_id, job_id, task, headers)
    SELECT s.tenant_id, s.id, s.task,
           jsonb_build_object('trace_id', s.trace_id, 'republished', true)
      FROM stale s
  )
  -- Both data-modifying parts above run to completion whether or not this reads them.
  SELECT s.id, s.tenant_id, s.type, s.trace_id FROM stale s ORDER BY s.id
$$;

REVOKE ALL ON FUNCTION app.jobs_republish_stale(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.jobs_republish_stale(integer, integer) TO app_rw;
"""


def upgrade() -> None:
    op.execute(FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
