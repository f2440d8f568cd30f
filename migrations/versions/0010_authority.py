"""Authority: transaction-local claims only, revocable tokens, narrow paths for plan and
role changes, and an operator role for the operator functions.

Revision ID: 0010
Revises: 0004, 0005, 0006, 0007, 0008

Reading guide.

1. Claims. `app.tenant_id()` and the new `app.uid()` read only `request.jwt.claims`, the
   transaction-local setting the app writes with set_config(..., true). Supabase's
   `auth.jwt()` and `auth.uid()` (and our shim of them) prefer `request.jwt.claim`, which
   a session could set with a plain SET and which would then outlive the transaction on a
   pooled connection. The policies that called `auth.uid()` now call `app.uid()`; the shim,
   where this migration role owns it (plain Postgres), reads the claims alone too.
2. Revocable tokens. `users.token_version` is written into every access token and browser
   session; the API checks it on every request, in the round trip that opens the request's
   transaction (`app.actor_check`, kit/security/auth.py). Removing a member
   (`removed_at`) or changing their role bumps it, so their older tokens and sessions stop
   working at once. Emails are unique among live users only, so a removed member's address
   can sign up or be invited again. Login never finds a removed user.
3. Narrow paths. app_rw may no longer UPDATE `tenants` or `users` at will: it keeps UPDATE
   on the three billing bookkeeping columns only. The plan, a user's role and a removal
   change only through SECURITY DEFINER functions that check the caller's authority
   themselves (from the claims: tenant and user) and write the audit trail in the same
   statement:
   - `app.user_set_role(user, role, trace_id)`: the caller is a live owner or admin of the tenant;
     giving or taking away `owner` needs an owner; the last owner keeps the role. Bumps the
     target's token version; audit `role_changed`. Returns the old role.
   - `app.user_remove(user, trace_id)`: same authority rules; the last owner cannot be removed; the
     row stays (the audit trail and assessments refer to it), marked removed, version
     bumped; audit `user_removed`.
   - `app.tenant_set_plan(plan, stripe_event_id, trace_id)`: background (`service`) claims only
     (the billing webhook); writes the billing_events row. Returns the old plan.
   Errors: SQLSTATE 42501 (not allowed), P0002 (no such user in the tenant), RA001 (the
   last owner).
4. Operator role. `rampart_operator` alone may run the operator functions (dead letters,
   incidents list, trace lookup); app_rw, the API's role, no longer can. `rampart migrate`
   gives it LOGIN and the password of OPERATOR_DATABASE_URL.
"""

from alembic import op

revision = "0010"
down_revision = ("0004", "0005", "0006", "0007", "0008")
branch_labels = None
depends_on = None

CLAIMS = """
CREATE OR REPLACE FUNCTION app.tenant_id() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'tenant_id', '')::uuid
$$;
CREATE OR REPLACE FUNCTION app.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid
$$;
REVOKE ALL ON FUNCTION app.uid() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.uid() TO app_rw, readonly_audit;

DO $$
BEGIN
  -- Looked up in the catalog, not as 'auth.jwt()'::regprocedure: a Supabase project may
  -- have no auth.jwt(), and the cast would fail.
  IF EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'auth' AND p.proname = 'jwt' AND p.pronargs = 0
                AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)) THEN
    CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
      SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb
    $f$;
    CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
      SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid
    $f$;
  END IF;
END
$$;

ALTER POLICY assessments_insert ON assessments
  WITH CHECK (tenant_id = app.tenant_id() AND created_by = app.uid());
ALTER POLICY invitations_insert ON invitations
  WITH CHECK (tenant_id = app.tenant_id() AND invited_by = app.uid());
ALTER POLICY evidence_insert ON evidence
  WITH CHECK (
    tenant_id = app.tenant_id()
    AND uploaded_by = app.uid()
    AND EXISTS (SELECT 1 FROM assessments a WHERE a.id = evidence.assessment_id)
  );
"""

USERS = """
ALTER TABLE users
  ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
  ADD COLUMN removed_at timestamptz;
DROP INDEX users_email_key;
-- One live account per email across all tenants (login looks users up by email alone).
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE removed_at IS NULL;

DROP FUNCTION app.user_for_login(text);
CREATE FUNCTION app.user_for_login(p_email text)
RETURNS TABLE (id uuid, tenant_id uuid, password_hash text, role text, token_version integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT u.id, u.tenant_id, u.password_hash, u.role, u.token_version
  FROM public.users u WHERE lower(u.email) = lower(p_email) AND u.removed_at IS NULL
$$;
REVOKE ALL ON FUNCTION app.user_for_login(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_for_login(text) TO app_rw;

-- Is the caller still who their token or session says? Runs as the caller (RLS: only the
-- claims' tenant's users), in the same round trip as BEGIN and the claims; refuses with
-- SQLSTATE RA401 (no such live user) or RA402 (the token version moved on).
CREATE FUNCTION app.actor_check(p_user uuid, p_version integer) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public AS $$
DECLARE
  current_version integer;
BEGIN
  SELECT u.token_version INTO current_version FROM public.users u
   WHERE u.id = p_user AND u.removed_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the account no longer exists' USING ERRCODE = 'RA401';
  END IF;
  IF current_version <> p_version THEN
    RAISE EXCEPTION 'the token or session was revoked' USING ERRCODE = 'RA402';
  END IF;
END
$$;
REVOKE ALL ON FUNCTION app.actor_check(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.actor_check(uuid, integer) TO app_rw;
"""

NARROW_PATHS = """
REVOKE UPDATE ON tenants, users FROM app_rw;
GRANT UPDATE (stripe_customer_id, payment_failed_at, billing_event_at) ON tenants TO app_rw;

-- The owner passes RLS on users, tenants and audit_events for the functions below, which
-- scope every statement to the caller's tenant themselves.
CREATE POLICY definer_users_authority ON users FOR ALL TO CURRENT_USER USING (true);
CREATE POLICY definer_tenants_authority ON tenants FOR ALL TO CURRENT_USER USING (true);
CREATE POLICY definer_audit_authority ON audit_events FOR INSERT TO CURRENT_USER WITH CHECK (true);
CREATE POLICY definer_billing_authority ON billing_events FOR INSERT TO CURRENT_USER WITH CHECK (true);

-- The caller's live role in the caller's tenant (NULL: not a live member), with the
-- tenant row locked so concurrent role changes in one tenant run one at a time.
CREATE FUNCTION app.authority_role() RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  caller_role text;
BEGIN
  PERFORM 1 FROM public.tenants t WHERE t.id = app.tenant_id() FOR NO KEY UPDATE;
  SELECT u.role INTO caller_role FROM public.users u
   WHERE u.id = app.uid() AND u.tenant_id = app.tenant_id() AND u.removed_at IS NULL;
  RETURN caller_role;
END
$$;

-- Checks shared by role changes and removals; returns the target's current role.
CREATE FUNCTION app.authority_check(p_user uuid, p_touches_owner boolean) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  caller_role text := app.authority_role();
  target_role text;
BEGIN
  -- Another tenant's user is "not found" before any permission is asked.
  SELECT u.role INTO target_role FROM public.users u
   WHERE u.id = p_user AND u.tenant_id = app.tenant_id() AND u.removed_at IS NULL
   FOR UPDATE;
  IF target_role IS NULL THEN
    RAISE EXCEPTION 'no such user in this tenant' USING ERRCODE = 'P0002';
  END IF;
  IF caller_role IS NULL OR caller_role NOT IN ('owner', 'admin') THEN
    RAISE EXCEPTION 'your role does not allow managing members' USING ERRCODE = '42501';
  END IF;
  IF (p_touches_owner OR target_role = 'owner') AND caller_role <> 'owner' THEN
    RAISE EXCEPTION 'only an owner can make an owner or change an owner''s role'
      USING ERRCODE = '42501';
  END IF;
  RETURN target_role;
END
$$;

CREATE FUNCTION app.last_owner_guard(p_user uuid) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM public.users u
     WHERE u.tenant_id = app.tenant_id() AND u.role = 'owner' AND u.removed_at IS NULL
       AND u.id <> p_user
  ) THEN
    RAISE EXCEPTION 'a tenant keeps at least one owner' USING ERRCODE = 'RA001';
  END IF;
END
$$;

CREATE FUNCTION app.user_set_role(p_user uuid, p_role text, p_trace_id text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  old_role text := app.authority_check(p_user, p_role = 'owner');
BEGIN
  IF p_role NOT IN ('owner', 'admin', 'member', 'viewer') THEN
    RAISE EXCEPTION 'unknown role %', p_role USING ERRCODE = '22023';
  END IF;
  IF old_role = p_role THEN
    RETURN old_role;
  END IF;
  IF old_role = 'owner' THEN
    PERFORM app.last_owner_guard(p_user);
  END IF;
  UPDATE public.users SET role = p_role, token_version = token_version + 1 WHERE id = p_user;
  INSERT INTO public.audit_events (tenant_id, actor_id, action, subject, trace_id)
  VALUES (app.tenant_id(), app.uid(), 'role_changed',
          'user:' || p_user || ' ' || old_role || '->' || p_role,
          p_trace_id);
  RETURN old_role;
END
$$;

CREATE FUNCTION app.user_remove(p_user uuid, p_trace_id text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  old_role text := app.authority_check(p_user, false);
BEGIN
  IF old_role = 'owner' THEN
    PERFORM app.last_owner_guard(p_user);
  END IF;
  UPDATE public.users SET removed_at = now(), token_version = token_version + 1
   WHERE id = p_user;
  INSERT INTO public.audit_events (tenant_id, actor_id, action, subject, trace_id)
  VALUES (app.tenant_id(), app.uid(), 'user_removed', 'user:' || p_user || ' ' || old_role,
          p_trace_id);
  RETURN old_role;
END
$$;

CREATE FUNCTION app.tenant_set_plan(p_plan text, p_stripe_event_id text, p_trace_id text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  old_plan text;
BEGIN
  IF coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role', '')
     <> 'service' THEN
    RAISE EXCEPTION 'only background work (billing events) changes a plan'
      USING ERRCODE = '42501';
  END IF;
  SELECT t.plan INTO old_plan FROM public.tenants t WHERE t.id = app.tenant_id() FOR UPDATE;
  IF old_plan IS NULL THEN
    RAISE EXCEPTION 'no tenant in the claims' USING ERRCODE = 'P0002';
  END IF;
  IF old_plan <> p_plan THEN
    UPDATE public.tenants SET plan = p_plan WHERE id = app.tenant_id();
    INSERT INTO public.billing_events (tenant_id, from_plan, to_plan, stripe_event_id, trace_id)
    VALUES (app.tenant_id(), old_plan, p_plan, p_stripe_event_id,
            p_trace_id);
  END IF;
  RETURN old_plan;
END
$$;

REVOKE ALL ON FUNCTION app.authority_role(), app.authority_check(uuid, boolean),
  app.last_owner_guard(uuid), app.user_set_role(uuid, text, text),
  app.user_remove(uuid, text), app.tenant_set_plan(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_set_role(uuid, text, text), app.user_remove(uuid, text),
  app.tenant_set_plan(text, text, text) TO app_rw;
"""

OPERATOR = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rampart_operator') THEN
    CREATE ROLE rampart_operator NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA app TO rampart_operator;
REVOKE EXECUTE ON FUNCTION app.dlq_list(boolean), app.dlq_show(bigint), app.dlq_replay(bigint),
  app.dlq_discard(bigint), app.incident_list(boolean, integer), app.trace_lookup(text)
  FROM app_rw;
GRANT EXECUTE ON FUNCTION app.dlq_list(boolean), app.dlq_show(bigint), app.dlq_replay(bigint),
  app.dlq_discard(bigint), app.incident_list(boolean, integer), app.trace_lookup(text)
  TO rampart_operator;
"""


def upgrade() -> None:
    for block in (CLAIMS, USERS, NARROW_PATHS, OPERATOR):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
