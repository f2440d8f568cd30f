"""Billing for real: usage counters, subscription state, an audit trail with before/after.

Revision ID: 0015
Revises: 0014

Reading guide (docs/billing.md). Zero-downtime: new tables and nullable or defaulted columns
only, no blocking index build (squawk-clean); the running release ignores them.
Reversible: the downgrade drops what this adds and puts 0010's role functions back
(tests/integration/test_billing_migration.py).

1. `usage_counters`: one row per (tenant, metric, calendar month), counted in the same
   transaction as the work it counts. The quota check is the increment itself
   (`INSERT ... ON CONFLICT DO UPDATE ... WHERE used < limit`): the row lock serializes
   concurrent creates, so at quota - 1 exactly one of many gets through. app_rw reads and
   writes its own tenant's rows (RLS); readonly_audit reads them.
2. `assessments.usage_period`: the month an assessment was counted in; set NULL when the
   unit is refunded (failed or quarantined), so a refund happens once.
3. Subscription state on `tenants` (columns app_rw may update, like 0010's bookkeeping):
   the Stripe subscription, its status, the end of its current period and whether it
   cancels then.
4. `audit_events` gains before/after/reason and becomes append-only: a trigger refuses
   UPDATE, DELETE and TRUNCATE for every role, the owner included, except the cascade of a
   deliberate tenant deletion (a DELETE run by the foreign key's own trigger). Owners read
   their tenant's trail through `app.audit_page` (the caller must be a live owner):
   app_rw still has no SELECT on the table; readonly_audit reads it all.
5. Role changes and removals (0010's `app.user_set_role`, `app.user_remove`) write
   before → after into their audit rows; nothing else about them changes.
6. `app.billing_customers()` (cross-tenant path 5, the reconciliation job): every tenant
   bound to a Stripe customer, its id, plan, subscription status and payment flag; no
   other data. `app.billing_grace_expired(seconds)`: the tenants still on pro whose
   payment failed longer ago than the grace period. `app.billing_summary()`: tenant counts
   by plan and subscription status (the relay's gauges), nothing else.
"""

import re
from pathlib import Path

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE usage_counters (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  metric        text NOT NULL CHECK (metric ~ '^[a-z_]{1,40}$'),
  -- First day of the calendar month (UTC) the usage belongs to.
  period_start  date NOT NULL,
  used          bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, metric, period_start)
);

ALTER TABLE assessments ADD COLUMN usage_period date;

ALTER TABLE tenants
  ADD COLUMN subscription_id text CHECK (length(subscription_id) BETWEEN 1 AND 255),
  ADD COLUMN subscription_status text CHECK (subscription_status ~ '^[a-z_]{1,64}$'),
  ADD COLUMN current_period_end timestamptz,
  ADD COLUMN cancel_at_period_end boolean NOT NULL DEFAULT false;

ALTER TABLE audit_events
  ADD COLUMN before_state jsonb,
  ADD COLUMN after_state jsonb,
  ADD COLUMN reason text CHECK (length(reason) <= 1000);
-- No new index: the trail is read per tenant, newest first, through 0001's
-- audit_events_tenant_idx (tenant_id, created_at).
"""

POLICIES = """
ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_counters_tenant ON usage_counters FOR ALL TO app_rw
  USING (tenant_id = (SELECT app.tenant_id())) WITH CHECK (tenant_id = (SELECT app.tenant_id()));
CREATE POLICY usage_counters_audit ON usage_counters FOR SELECT TO readonly_audit USING (true);
GRANT SELECT, INSERT, UPDATE ON usage_counters TO app_rw;
GRANT SELECT ON usage_counters TO readonly_audit;

GRANT UPDATE (subscription_id, subscription_status, current_period_end, cancel_at_period_end)
  ON tenants TO app_rw;
"""

APPEND_ONLY = """
CREATE FUNCTION app.audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  -- Depth 1: the statement itself. Deeper: run by another trigger, i.e. the ON DELETE
  -- CASCADE of a tenant being deleted on purpose; that alone may remove audit rows.
  IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION app.audit_events_append_only();
"""

DEFINER_FUNCTIONS = """
-- The caller's tenant's audit trail, newest first, for a live owner only (42501 else).
CREATE FUNCTION app.audit_page(p_limit integer, p_before bigint, p_action text)
RETURNS TABLE (id bigint, actor_id uuid, action text, subject text, before_state jsonb,
               after_state jsonb, reason text, trace_id text, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM public.users u
                  WHERE u.id = app.uid() AND u.tenant_id = app.tenant_id()
                    AND u.role = 'owner' AND u.removed_at IS NULL) THEN
    RAISE EXCEPTION 'only owners read the audit trail' USING ERRCODE = '42501';
  END IF;
  RETURN QUERY
    SELECT a.id, a.actor_id, a.action, a.subject, a.before_state, a.after_state, a.reason,
           a.trace_id, a.created_at
      FROM public.audit_events a
     WHERE a.tenant_id = app.tenant_id()
       AND (p_before IS NULL OR a.id < p_before)
       AND (p_action IS NULL OR a.action = p_action)
     ORDER BY a.id DESC
     LIMIT least(greatest(p_limit, 1), 201);
END
$$;

-- Cross-tenant path 5: the reconciliation job compares our tenants with Stripe.
CREATE FUNCTION app.billing_customers()
RETURNS TABLE (tenant_id uuid, stripe_customer_id text, plan text, subscription_status text,
               payment_failed_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT t.id, t.stripe_customer_id, t.plan, t.subscription_status, t.payment_failed_at
    FROM public.tenants t WHERE t.stripe_customer_id IS NOT NULL
   ORDER BY t.id
$$;

-- Tenants on pro whose payment failed more than p_grace_seconds ago (to be downgraded).
CREATE FUNCTION app.billing_grace_expired(p_grace_seconds integer)
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT t.id FROM public.tenants t
   WHERE t.plan = 'pro' AND t.payment_failed_at IS NOT NULL
     AND t.payment_failed_at < now() - make_interval(secs => p_grace_seconds)
   ORDER BY t.id
$$;

-- Counts only, for the relay's gauges (tenants by plan and subscription status).
CREATE FUNCTION app.billing_summary()
RETURNS TABLE (plan text, subscription_status text, tenants bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT t.plan, coalesce(t.subscription_status, 'none'), count(*)
    FROM public.tenants t GROUP BY 1, 2
$$;

REVOKE ALL ON FUNCTION app.audit_page(integer, bigint, text), app.billing_customers(),
  app.billing_grace_expired(integer), app.billing_summary(),
  app.audit_events_append_only() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.audit_page(integer, bigint, text), app.billing_customers(),
  app.billing_grace_expired(integer), app.billing_summary() TO app_rw;
"""


# 0010's role change and removal, now with before → after in their audit rows (same
# signatures, same checks, same subjects).
AUTHORITY_AUDIT = """
CREATE OR REPLACE FUNCTION app.user_set_role(p_user uuid, p_role text, p_trace_id text)
RETURNS text
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
  INSERT INTO public.audit_events
    (tenant_id, actor_id, action, subject, trace_id, before_state, after_state)
  VALUES (app.tenant_id(), app.uid(), 'role_changed',
          'user:' || p_user || ' ' || old_role || '->' || p_role,
          p_trace_id, jsonb_build_object('role', old_role), jsonb_build_object('role', p_role));
  RETURN old_role;
END
$$;

CREATE OR REPLACE FUNCTION app.user_remove(p_user uuid, p_trace_id text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  old_role text := app.authority_check(p_user, false);
BEGIN
  IF old_role = 'owner' THEN
    PERFORM app.last_owner_guard(p_user);
  END IF;
  UPDATE public.users SET removed_at = now(), token_version = token_version + 1
   WHERE id = p_user;
  INSERT INTO public.audit_events
    (tenant_id, actor_id, action, subject, trace_id, before_state, after_state)
  VALUES (app.tenant_id(), app.uid(), 'user_removed', 'user:' || p_user || ' ' || old_role,
          p_trace_id, jsonb_build_object('role', old_role, 'removed', false),
          jsonb_build_object('role', old_role, 'removed', true));
  RETURN old_role;
END
$$;
"""


def upgrade() -> None:
    for block in (TABLES, POLICIES, APPEND_ONLY, DEFINER_FUNCTIONS, AUTHORITY_AUDIT):
        op.execute(block)


# Reversible (docs/migrations.md): everything above is new, so the downgrade drops it and
# puts 0010's role change and removal back, verbatim. Data in the new columns and tables
# (usage, subscription state, audit before/after) is lost; the previous release never
# reads it.
def _authority_functions_of_0010() -> str:
    source = (Path(__file__).with_name("0010_authority.py")).read_text()
    bodies = [
        re.search(rf"CREATE FUNCTION app\.{name}\(.*?\n\$\$;\n", source, re.DOTALL)
        for name in ("user_set_role", "user_remove")
    ]
    assert all(bodies), "0010's functions not found"
    return "".join(
        b.group(0).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        for b in bodies  # type: ignore[union-attr]
    )


DOWN = """
DROP FUNCTION app.billing_summary();
DROP FUNCTION app.billing_grace_expired(integer);
DROP FUNCTION app.billing_customers();
DROP FUNCTION app.audit_page(integer, bigint, text);
DROP TRIGGER audit_events_append_only ON audit_events;
DROP FUNCTION app.audit_events_append_only();
ALTER TABLE audit_events
  DROP COLUMN reason, DROP COLUMN after_state, DROP COLUMN before_state;
ALTER TABLE tenants
  DROP COLUMN cancel_at_period_end, DROP COLUMN current_period_end,
  DROP COLUMN subscription_status, DROP COLUMN subscription_id;
ALTER TABLE assessments DROP COLUMN usage_period;
DROP TABLE usage_counters;
"""


def downgrade() -> None:
    op.execute(_authority_functions_of_0010())
    op.execute(DOWN)
