"""Foundation: roles, the auth shim, tenant tables with row-level security, jobs and outbox.

Revision ID: 0001
Revises:

Reading guide. The migration role (whoever runs this: `migration_admin` here, `postgres` on
Supabase) owns every object. The runtime role `app_rw` owns nothing and gets only the DML it
needs. Every tenant table has RLS ENABLEd and FORCEd; policies compare the row's tenant with
the `tenant_id` claim of `request.jwt.claims`, set per transaction by the app. No claims, no
rows. The two cross-tenant paths (login lookup, outbox relay) are SECURITY DEFINER functions
in schema `app`, the only way app_rw reaches other tenants' rows.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLES = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_rw') THEN
    -- API and workers connect as app_rw; the password is set by `rampart migrate`.
    CREATE ROLE app_rw LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'readonly_audit') THEN
    -- Auditors: grant this role to a person's login role; it reads audit tables only.
    CREATE ROLE readonly_audit NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
  END IF;
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO app_rw, readonly_audit;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
"""

# Supabase ships schema `auth` with these functions; plain Postgres gets the same shim, so
# auth.uid() names the same user on both. Nothing of ours calls them (app.tenant_id() and
# app.uid() below do): this file called auth.* until migration 0013 came, which made
# migrating fail on Supabase projects without auth.jwt(); databases migrated before then
# were brought to the same place by 0010 (the policies) and 0013 (the shim's grants).
AUTH_SHIM = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'auth') THEN
    CREATE SCHEMA auth;
    CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
      )::jsonb
    $f$;
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $f$;
    GRANT USAGE ON SCHEMA auth TO PUBLIC;
    GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid() TO PUBLIC;
  END IF;
END
$$;

CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO app_rw;

-- The tenant and user claims of the current transaction; NULL (so: no rows) when unset.
-- They read the claims themselves, never through auth.*: on Supabase app_rw may not use
-- schema auth, and older projects have no auth.jwt() (0010 and 0013 say more).
CREATE FUNCTION app.tenant_id() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'tenant_id', '')::uuid
$$;
CREATE FUNCTION app.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid
$$;
GRANT EXECUTE ON FUNCTION app.tenant_id(), app.uid() TO app_rw, readonly_audit;
"""

TABLES = """
CREATE TABLE tenants (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  plan        text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro')),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  password_hash  text NOT NULL,
  role           text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  created_at     timestamptz NOT NULL DEFAULT now()
);
-- One account per email across all tenants (login looks users up by email alone).
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id);

CREATE TABLE assessments (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  created_by         uuid NOT NULL REFERENCES users (id),
  answers            jsonb NOT NULL,
  context            text CHECK (length(context) <= 2000),
  status             text NOT NULL DEFAULT 'queued' CHECK (status IN
                       ('queued', 'scoring', 'scored', 'roadmapping', 'completed', 'failed')),
  overall_score      smallint CHECK (overall_score BETWEEN 0 AND 100),
  dimension_scores   jsonb,
  provider           text,
  model              text,
  degraded           boolean NOT NULL DEFAULT false,
  score_duration_ms  integer,
  roadmap_id         uuid,
  error              text,
  trace_id           text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assessments_tenant_recent_idx ON assessments (tenant_id, created_at DESC, id DESC);

CREATE TABLE roadmaps (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  -- One roadmap per assessment: a re-run task cannot write a second one.
  assessment_id  uuid NOT NULL UNIQUE REFERENCES assessments (id) ON DELETE CASCADE,
  items          jsonb NOT NULL,
  provider       text NOT NULL,
  model          text NOT NULL,
  degraded       boolean NOT NULL DEFAULT false,
  duration_ms    integer NOT NULL,
  trace_id       text,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX roadmaps_tenant_idx ON roadmaps (tenant_id);

CREATE TABLE jobs (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  type             text NOT NULL,
  -- The same unit of work is one job, however often it is requested or delivered.
  idempotency_key  text NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN
                     ('pending', 'processing', 'succeeded', 'failed', 'quarantined')),
  attempts         integer NOT NULL DEFAULT 0,
  trace_id         text,
  payload          jsonb NOT NULL DEFAULT '{}',
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX jobs_status_idx ON jobs (status, created_at);

CREATE TABLE outbox (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  job_id            uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  task              text NOT NULL,
  headers           jsonb NOT NULL DEFAULT '{}',
  created_at        timestamptz NOT NULL DEFAULT now(),
  sent_at           timestamptz
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

-- Append-only record of security-relevant actions (who did what, under which trace).
CREATE TABLE audit_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  actor_id    uuid,
  action      text NOT NULL,
  subject     text,
  trace_id    text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, created_at);
"""

POLICIES = """
ALTER TABLE tenants      ENABLE ROW LEVEL SECURITY;  ALTER TABLE tenants      FORCE ROW LEVEL SECURITY;
ALTER TABLE users        ENABLE ROW LEVEL SECURITY;  ALTER TABLE users        FORCE ROW LEVEL SECURITY;
ALTER TABLE assessments  ENABLE ROW LEVEL SECURITY;  ALTER TABLE assessments  FORCE ROW LEVEL SECURITY;
ALTER TABLE roadmaps     ENABLE ROW LEVEL SECURITY;  ALTER TABLE roadmaps     FORCE ROW LEVEL SECURITY;
ALTER TABLE jobs         ENABLE ROW LEVEL SECURITY;  ALTER TABLE jobs         FORCE ROW LEVEL SECURITY;
ALTER TABLE outbox       ENABLE ROW LEVEL SECURITY;  ALTER TABLE outbox       FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;  ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;

-- tenants: a member sees and updates only their own tenant; signup inserts the tenant
-- named by its own fresh claims.
CREATE POLICY tenant_select ON tenants FOR SELECT TO app_rw USING (id = app.tenant_id());
CREATE POLICY tenant_insert ON tenants FOR INSERT TO app_rw WITH CHECK (id = app.tenant_id());
CREATE POLICY tenant_update ON tenants FOR UPDATE TO app_rw
  USING (id = app.tenant_id()) WITH CHECK (id = app.tenant_id());

CREATE POLICY users_tenant ON users FOR ALL TO app_rw
  USING (tenant_id = app.tenant_id()) WITH CHECK (tenant_id = app.tenant_id());

-- Assessments are read and updated within the tenant; a new one must be created by the
-- authenticated user themself (app.uid(): the `sub` claim).
CREATE POLICY assessments_select ON assessments FOR SELECT TO app_rw
  USING (tenant_id = app.tenant_id());
CREATE POLICY assessments_insert ON assessments FOR INSERT TO app_rw
  WITH CHECK (tenant_id = app.tenant_id() AND created_by = app.uid());
CREATE POLICY assessments_update ON assessments FOR UPDATE TO app_rw
  USING (tenant_id = app.tenant_id()) WITH CHECK (tenant_id = app.tenant_id());

CREATE POLICY roadmaps_tenant ON roadmaps FOR ALL TO app_rw
  USING (tenant_id = app.tenant_id()) WITH CHECK (tenant_id = app.tenant_id());
CREATE POLICY jobs_tenant ON jobs FOR ALL TO app_rw
  USING (tenant_id = app.tenant_id()) WITH CHECK (tenant_id = app.tenant_id());
CREATE POLICY outbox_insert ON outbox FOR INSERT TO app_rw
  WITH CHECK (tenant_id = app.tenant_id());
CREATE POLICY audit_insert ON audit_events FOR INSERT TO app_rw
  WITH CHECK (tenant_id = app.tenant_id());
CREATE POLICY audit_read ON audit_events FOR SELECT TO readonly_audit USING (true);

-- The owner (this migration role) passes RLS only for the definer functions below.
CREATE POLICY definer_login_lookup ON users FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY definer_outbox_relay ON outbox FOR ALL TO CURRENT_USER USING (true);

GRANT SELECT, INSERT, UPDATE ON tenants, users, assessments, roadmaps, jobs TO app_rw;
GRANT INSERT ON outbox, audit_events TO app_rw;
GRANT SELECT ON audit_events TO readonly_audit;
"""

# Cross-tenant path 1: login looks a user up by email before any tenant is known.
# Cross-tenant path 2: the outbox relay publishes every tenant's committed jobs.
DEFINER_FUNCTIONS = """
CREATE FUNCTION app.user_for_login(p_email text)
RETURNS TABLE (id uuid, tenant_id uuid, password_hash text, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT u.id, u.tenant_id, u.password_hash, u.role
  FROM public.users u WHERE lower(u.email) = lower(p_email)
$$;

CREATE FUNCTION app.outbox_claim(p_limit integer)
RETURNS TABLE (id bigint, tenant_id uuid, job_id uuid, task text, headers jsonb)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT o.id, o.tenant_id, o.job_id, o.task, o.headers
  FROM public.outbox o WHERE o.sent_at IS NULL
  ORDER BY o.id LIMIT least(p_limit, 1000)
  FOR UPDATE SKIP LOCKED
$$;

CREATE FUNCTION app.outbox_mark_sent(p_ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  WITH sent AS (
    UPDATE public.outbox SET sent_at = now() WHERE id = ANY (p_ids) AND sent_at IS NULL
    RETURNING 1
  )
  SELECT count(*)::integer FROM sent
$$;

CREATE FUNCTION app.outbox_pending()
RETURNS TABLE (pending bigint, oldest_age_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::double precision
  FROM public.outbox WHERE sent_at IS NULL
$$;

REVOKE ALL ON FUNCTION app.user_for_login(text), app.outbox_claim(integer),
  app.outbox_mark_sent(bigint[]), app.outbox_pending() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_for_login(text), app.outbox_claim(integer),
  app.outbox_mark_sent(bigint[]), app.outbox_pending() TO app_rw;
"""


def upgrade() -> None:
    for block in (ROLES, AUTH_SHIM, TABLES, POLICIES, DEFINER_FUNCTIONS):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
