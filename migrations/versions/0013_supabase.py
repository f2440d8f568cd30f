"""Supabase: the Data API's roles get nothing of ours, the auth shim is Supabase's shape,
connection metrics work for a monitoring role that is no superuser.

Revision ID: 0013
Revises: 0012

Reading guide (docs/supabase.md).

1. Supabase's default privileges give `anon`, `authenticated` and `service_role` (the roles
   PostgREST and pg_graphql switch to) ALL, TRUNCATE included, on every table, sequence and
   function `postgres` creates in public. RLS does not stop TRUNCATE, and service_role
   bypasses RLS. So every table, sequence and function the migration role owns in public
   and app loses every privilege those three roles and PUBLIC hold, the migration role's
   default privileges in public and app are altered the same way (later migrations' objects
   start with nothing), and schema app grants them nothing. Our own roles keep exactly
   their explicit grants. Note: run as `postgres`, this also changes what tables
   `postgres` creates later in public get (nothing for the API roles): Rampart wants a
   Supabase project of its own.
2. The auth shim (0001, plain Postgres only: where this role owns schema auth) no longer
   grants PUBLIC anything, as on Supabase, where app_rw may not use schema auth: a policy
   calling auth.* fails on both shapes alike, in tests first. Ours call app.uid() and
   app.tenant_id(), which read the transaction-local claims; Supabase's auth.uid() reads
   the same `sub` claim, so it names the same user.
3. Policies read the claims through `(SELECT app.tenant_id())` and `(SELECT app.uid())`:
   an initplan, evaluated once per statement instead of once per row (what Supabase's
   performance advisor asks, auth_rls_initplan). Same rows, same checks.
4. Every foreign key gets an index that leads with its columns (deleting a tenant, user
   or job no longer scans the referencing table; Supabase's unindexed_foreign_keys).
5. `app.db_connection_counts()` (0006) runs as the migration role. Without
   pg_read_all_stats (granted here where this role may grant it; the dev stack grants it;
   Supabase grants pg_monitor to `postgres` since 2023, not to a role you create) other
   roles' sessions show no state and no backend type, and the old function counted none.
   It now counts them as state `unknown`; `app.db_connection_states_readable()` says
   whether states are readable (`rampart_db_connection_states_readable`).
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

API_ROLES = """
DO $$
DECLARE
  me oid := (SELECT oid FROM pg_roles WHERE rolname = current_user);
  grantee text;
  target record;
  kind text;
BEGIN
  FOR grantee IN
    SELECT 'PUBLIC' UNION ALL
    SELECT quote_ident(rolname) FROM pg_roles
     WHERE rolname IN ('anon', 'authenticated', 'service_role')
  LOOP
    FOR target IN
      SELECT c.oid::regclass::text AS name, c.relkind = 'S' AS is_sequence FROM pg_class c
       WHERE c.relnamespace IN ('public'::regnamespace, 'app'::regnamespace)
         AND c.relowner = me AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    LOOP
      EXECUTE format('REVOKE ALL ON %s %s FROM %s',
        CASE WHEN target.is_sequence THEN 'SEQUENCE' ELSE 'TABLE' END, target.name, grantee);
    END LOOP;
    FOR target IN
      SELECT p.oid::regprocedure::text AS name FROM pg_proc p
       WHERE p.pronamespace IN ('public'::regnamespace, 'app'::regnamespace)
         AND p.proowner = me
    LOOP
      EXECUTE format('REVOKE ALL ON ROUTINE %s FROM %s', target.name, grantee);
    END LOOP;
    EXECUTE format('REVOKE ALL ON SCHEMA app FROM %s', grantee);
    FOREACH kind IN ARRAY ARRAY['TABLES', 'SEQUENCES', 'ROUTINES'] LOOP
      EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public, app REVOKE ALL ON %s FROM %s',
                     kind, grantee);
    END LOOP;
  END LOOP;
END
$$;
"""

POLICIES = """
ALTER POLICY tenant_select ON tenants USING (id = (SELECT app.tenant_id()));
ALTER POLICY tenant_insert ON tenants WITH CHECK (id = (SELECT app.tenant_id()));
ALTER POLICY tenant_update ON tenants
  USING (id = (SELECT app.tenant_id())) WITH CHECK (id = (SELECT app.tenant_id()));
ALTER POLICY users_tenant ON users USING (tenant_id = (SELECT app.tenant_id()))
  WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY assessments_select ON assessments USING (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY assessments_insert ON assessments
  WITH CHECK (tenant_id = (SELECT app.tenant_id()) AND created_by = (SELECT app.uid()));
ALTER POLICY assessments_update ON assessments USING (tenant_id = (SELECT app.tenant_id()))
  WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY roadmaps_tenant ON roadmaps USING (tenant_id = (SELECT app.tenant_id()))
  WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY jobs_tenant ON jobs USING (tenant_id = (SELECT app.tenant_id()))
  WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY outbox_insert ON outbox WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY audit_insert ON audit_events WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY dead_letters_tenant ON dead_letters USING (tenant_id = (SELECT app.tenant_id()))
  WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY billing_events_insert ON billing_events
  WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY evidence_select ON evidence USING (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY evidence_insert ON evidence
  WITH CHECK (
    tenant_id = (SELECT app.tenant_id())
    AND uploaded_by = (SELECT app.uid())
    AND EXISTS (SELECT 1 FROM assessments a WHERE a.id = evidence.assessment_id)
  );
ALTER POLICY invitations_insert ON invitations
  WITH CHECK (tenant_id = (SELECT app.tenant_id()) AND invited_by = (SELECT app.uid()));
ALTER POLICY idempotency_keys_tenant ON idempotency_keys
  USING (tenant_id = (SELECT app.tenant_id())) WITH CHECK (tenant_id = (SELECT app.tenant_id()));
ALTER POLICY email_verifications_insert ON email_verifications
  WITH CHECK (
    tenant_id = (SELECT app.tenant_id())
    AND EXISTS (SELECT 1 FROM users u WHERE u.id = email_verifications.user_id)
  );
"""

FOREIGN_KEY_INDEXES = """
CREATE INDEX assessments_created_by_idx ON assessments (created_by);
CREATE INDEX outbox_tenant_idx ON outbox (tenant_id);
CREATE INDEX dead_letters_tenant_idx ON dead_letters (tenant_id);
CREATE INDEX dead_letters_job_idx ON dead_letters (job_id);
CREATE INDEX evidence_assessment_only_idx ON evidence (assessment_id);
CREATE INDEX evidence_uploaded_by_idx ON evidence (uploaded_by);
CREATE INDEX invitations_invited_by_idx ON invitations (invited_by);
CREATE INDEX email_verifications_tenant_idx ON email_verifications (tenant_id);
"""

AUTH_SHIM = """
DO $$
DECLARE
  shim record;
BEGIN
  IF EXISTS (SELECT FROM pg_namespace
              WHERE nspname = 'auth'
                AND nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)) THEN
    REVOKE ALL ON SCHEMA auth FROM PUBLIC;
    FOR shim IN
      SELECT p.oid::regprocedure::text AS name FROM pg_proc p
       WHERE p.pronamespace = 'auth'::regnamespace
    LOOP
      EXECUTE format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', shim.name);
    END LOOP;
  END IF;
END
$$;
"""

CONNECTIONS = """
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN
    EXECUTE format('GRANT pg_read_all_stats TO %I', current_user);
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'rampart_db_connections will count other roles'' sessions as state unknown: '
    '% may not read their state (grant it pg_read_all_stats or pg_monitor)', current_user;
END
$$;

-- Without pg_read_all_stats, another role's session shows its database, its user and
-- neither state nor backend type: it counts as `unknown`. (A parallel worker of such a
-- session looks the same and counts too; background processes have no user.)
CREATE OR REPLACE FUNCTION app.db_connection_counts()
RETURNS TABLE (state text, connections bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(a.state, 'unknown'), count(*)
  FROM pg_catalog.pg_stat_activity a
  WHERE a.datname = current_database()
    AND (a.backend_type = 'client backend'
         OR (a.backend_type IS NULL AND a.usesysid IS NOT NULL))
  GROUP BY 1
$$;

-- Whether app.db_connection_counts() sees every session's state (false: some count as
-- `unknown`). Superusers are members of every role.
CREATE FUNCTION app.db_connection_states_readable()
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
$$;
REVOKE ALL ON FUNCTION app.db_connection_states_readable() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.db_connection_states_readable() TO app_rw;
"""


def upgrade() -> None:
    # CONNECTIONS first: API_ROLES then also covers the function it creates.
    for block in (CONNECTIONS, API_ROLES, AUTH_SHIM, POLICIES, FOREIGN_KEY_INDEXES):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
