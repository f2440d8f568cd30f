"""Quarantine (dead letters) for jobs that failed for good, and the operator's functions.

Revision ID: 0002
Revises: 0001

A job that fails definitively, exhausts its retries or keeps killing its worker is
quarantined: its row says `quarantined` and a dead letter keeps the error, traceback,
attempts, payload and trace id. Workers write dead letters within the job's tenant (RLS).
The operator's `rampart dlq` lists, replays and discards across tenants through the
SECURITY DEFINER functions below (cross-tenant path 3, see docs/security.md).
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE dead_letters (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  job_type        text NOT NULL,
  task            text NOT NULL,
  error_class     text NOT NULL,
  error_message   text NOT NULL,
  traceback       text,
  attempts        integer NOT NULL,
  payload         jsonb NOT NULL,
  trace_id        text,
  quarantined_at  timestamptz NOT NULL DEFAULT now(),
  replayed_at     timestamptz,
  discarded_at    timestamptz
);
CREATE INDEX dead_letters_open_idx ON dead_letters (quarantined_at)
  WHERE replayed_at IS NULL AND discarded_at IS NULL;

ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE dead_letters FORCE ROW LEVEL SECURITY;
CREATE POLICY dead_letters_tenant ON dead_letters FOR ALL TO app_rw
  USING (tenant_id = app.tenant_id()) WITH CHECK (tenant_id = app.tenant_id());
-- The owner passes RLS here, on jobs (replay resets the job) and on outbox (already
-- granted in 0001) for the definer functions below only.
CREATE POLICY definer_dlq ON dead_letters FOR ALL TO CURRENT_USER USING (true);
CREATE POLICY definer_dlq_jobs ON jobs FOR ALL TO CURRENT_USER USING (true);
GRANT SELECT, INSERT, UPDATE ON dead_letters TO app_rw;
"""

FUNCTIONS = """
CREATE FUNCTION app.dlq_list(p_include_closed boolean DEFAULT false)
RETURNS TABLE (id bigint, tenant_id uuid, job_id uuid, job_type text, error_class text,
               error_message text, attempts integer, trace_id text,
               quarantined_at timestamptz, replayed_at timestamptz, discarded_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT d.id, d.tenant_id, d.job_id, d.job_type, d.error_class, d.error_message, d.attempts,
         d.trace_id, d.quarantined_at, d.replayed_at, d.discarded_at
  FROM public.dead_letters d
  WHERE p_include_closed OR (d.replayed_at IS NULL AND d.discarded_at IS NULL)
  ORDER BY d.quarantined_at, d.id
$$;

CREATE FUNCTION app.dlq_show(p_id bigint)
RETURNS SETOF public.dead_letters
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT * FROM public.dead_letters WHERE id = p_id
$$;

-- Replay: the job goes back to pending with a fresh delivery budget, and a new outbox row
-- carries the original trace id and the dead letter's id (the link to the old attempt).
-- Returns false when the dead letter does not exist or is already replayed or discarded.
CREATE FUNCTION app.dlq_replay(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  d public.dead_letters;
BEGIN
  UPDATE public.dead_letters SET replayed_at = now()
   WHERE id = p_id AND replayed_at IS NULL AND discarded_at IS NULL
  RETURNING * INTO d;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE public.jobs SET status = 'pending', attempts = 0, last_error = NULL,
                         finished_at = NULL, updated_at = now()
   WHERE id = d.job_id;
  INSERT INTO public.outbox (tenant_id, job_id, task, headers)
  VALUES (d.tenant_id, d.job_id, d.task,
          jsonb_build_object('trace_id', d.trace_id, 'replay_of', d.id));
  RETURN true;
END
$$;

CREATE FUNCTION app.dlq_discard(p_id bigint)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  WITH discarded AS (
    UPDATE public.dead_letters SET discarded_at = now()
     WHERE id = p_id AND replayed_at IS NULL AND discarded_at IS NULL
    RETURNING 1
  )
  SELECT count(*) = 1 FROM discarded
$$;

REVOKE ALL ON FUNCTION app.dlq_list(boolean), app.dlq_show(bigint), app.dlq_replay(bigint),
  app.dlq_discard(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.dlq_list(boolean), app.dlq_show(bigint), app.dlq_replay(bigint),
  app.dlq_discard(bigint) TO app_rw;
"""


def upgrade() -> None:
    op.execute(TABLE)
    op.execute(FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
