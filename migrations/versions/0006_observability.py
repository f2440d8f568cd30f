"""Observability: cross-tenant counts for the metrics, and the trace lookup.

Revision ID: 0006
Revises: 0002

Reading guide. Three SECURITY DEFINER functions (cross-tenant path 5, read-only, counts and
timelines, never payloads), executable by app_rw only:

- `app.job_counts()`: jobs by type and state (pending, processing, failed; quarantined =
  open dead letters) with the age of the oldest one. The relay reports them as
  `rampart_jobs{type,state}` and `rampart_queue_oldest_age_seconds` at scrape time.
- `app.db_connection_counts()`: this database's client connections by state, from
  pg_stat_activity (`rampart_db_connections{state}`). Postgres shows the state of other
  roles' sessions only to members of pg_read_all_stats: grant it to the migration role
  (the dev stack does); without it those sessions count as state `unknown`.
- `app.trace_lookup(trace_id)`: what the database holds under one trace id, as timeline
  rows (kind, id, tenant_id, status, at, detail): assessments, jobs (created, started,
  finished), outbox rows (enqueued, published), dead letters (quarantined, replayed,
  discarded), audit events and, when that table exists, billing events. Used by
  `rampart trace`.

The owner (this migration role) passes RLS on jobs, outbox and dead_letters already (0001,
0002); the policies below let it read audit_events and assessments for these functions
only. The indexes keep a lookup by trace id from scanning whole tables.
"""

from alembic import op

revision = "0006"
down_revision = "0002"
branch_labels = None
# Not a parent, an ordering: billing_events (0003) must exist for its policy below.
depends_on = "0003"

POLICIES_AND_INDEXES = """
CREATE POLICY definer_trace_audit ON audit_events FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY definer_trace_assessments ON assessments FOR SELECT TO CURRENT_USER USING (true);

CREATE INDEX jobs_trace_idx ON jobs (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX outbox_job_idx ON outbox (job_id);
CREATE INDEX dead_letters_trace_idx ON dead_letters (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX assessments_trace_idx ON assessments (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX audit_events_trace_idx ON audit_events (trace_id) WHERE trace_id IS NOT NULL;

-- billing_events comes from migration 0003 (another branch, applied first: depends_on).
DO $$
BEGIN
  IF to_regclass('public.billing_events') IS NOT NULL THEN
    CREATE POLICY definer_trace_billing ON public.billing_events
      FOR SELECT TO CURRENT_USER USING (true);
  END IF;
END
$$;
"""

FUNCTIONS = """
CREATE FUNCTION app.job_counts()
RETURNS TABLE (job_type text, state text, jobs bigint, oldest_age_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT j.type, j.status, count(*),
         coalesce(extract(epoch FROM now() - min(j.created_at)), 0)::double precision
  FROM public.jobs j
  WHERE j.status IN ('pending', 'processing', 'failed')
  GROUP BY j.type, j.status
  UNION ALL
  SELECT d.job_type, 'quarantined', count(*),
         coalesce(extract(epoch FROM now() - min(d.quarantined_at)), 0)::double precision
  FROM public.dead_letters d
  WHERE d.replayed_at IS NULL AND d.discarded_at IS NULL
  GROUP BY d.job_type
$$;

CREATE FUNCTION app.db_connection_counts()
RETURNS TABLE (state text, connections bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(a.state, 'unknown'), count(*)
  FROM pg_catalog.pg_stat_activity a
  WHERE a.datname = current_database() AND a.backend_type = 'client backend'
  GROUP BY 1
$$;

CREATE FUNCTION app.trace_lookup(p_trace_id text)
RETURNS TABLE (kind text, id text, tenant_id uuid, status text, at timestamptz, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF p_trace_id IS NULL OR length(p_trace_id) NOT BETWEEN 8 AND 128 THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT 'assessment'::text, a.id::text, a.tenant_id, 'created'::text, a.created_at,
           'now ' || a.status
    FROM public.assessments a WHERE a.trace_id = p_trace_id
    UNION ALL
    SELECT 'job', j.id::text, j.tenant_id, 'created', j.created_at, j.type
    FROM public.jobs j WHERE j.trace_id = p_trace_id
    UNION ALL
    SELECT 'job', j.id::text, j.tenant_id, 'started', j.started_at,
           j.type || ' (attempt ' || j.attempts || ')'
    FROM public.jobs j WHERE j.trace_id = p_trace_id AND j.started_at IS NOT NULL
    UNION ALL
    SELECT 'job', j.id::text, j.tenant_id, j.status, j.finished_at,
           j.type || coalesce(': ' || left(j.last_error, 300), '')
    FROM public.jobs j WHERE j.trace_id = p_trace_id AND j.finished_at IS NOT NULL
    UNION ALL
    SELECT 'outbox', o.id::text, o.tenant_id, 'enqueued', o.created_at,
           o.task || coalesce(' (replay of dead letter ' || (o.headers ->> 'replay_of') || ')', '')
    FROM public.outbox o JOIN public.jobs j ON j.id = o.job_id WHERE j.trace_id = p_trace_id
    UNION ALL
    SELECT 'outbox', o.id::text, o.tenant_id, 'published', o.sent_at, o.task
    FROM public.outbox o JOIN public.jobs j ON j.id = o.job_id
    WHERE j.trace_id = p_trace_id AND o.sent_at IS NOT NULL
    UNION ALL
    SELECT 'dead_letter', d.id::text, d.tenant_id, 'quarantined', d.quarantined_at,
           d.job_type || ': ' || d.error_class || ': ' || left(d.error_message, 300)
    FROM public.dead_letters d WHERE d.trace_id = p_trace_id
    UNION ALL
    SELECT 'dead_letter', d.id::text, d.tenant_id, 'replayed', d.replayed_at, d.job_type
    FROM public.dead_letters d WHERE d.trace_id = p_trace_id AND d.replayed_at IS NOT NULL
    UNION ALL
    SELECT 'dead_letter', d.id::text, d.tenant_id, 'discarded', d.discarded_at, d.job_type
    FROM public.dead_letters d WHERE d.trace_id = p_trace_id AND d.discarded_at IS NOT NULL
    UNION ALL
    SELECT 'audit', e.id::text, e.tenant_id, e.action, e.created_at, coalesce(e.subject, '')
    FROM public.audit_events e WHERE e.trace_id = p_trace_id;
  IF to_regclass('public.billing_events') IS NOT NULL THEN
    RETURN QUERY EXECUTE
      'SELECT ''billing''::text, b.id::text, b.tenant_id, ''plan_changed''::text, b.created_at,
              b.from_plan || '' -> '' || b.to_plan || '' (event '' || b.stripe_event_id || '')''
       FROM public.billing_events b WHERE b.trace_id = $1'
      USING p_trace_id;
  END IF;
END
$$;

REVOKE ALL ON FUNCTION app.job_counts(), app.db_connection_counts(), app.trace_lookup(text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.job_counts(), app.db_connection_counts(), app.trace_lookup(text)
  TO app_rw;
"""


def upgrade() -> None:
    op.execute(POLICIES_AND_INDEXES)
    op.execute(FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
