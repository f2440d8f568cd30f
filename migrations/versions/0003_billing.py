"""Billing: Stripe webhook events (deduplicated), tenant billing columns, append-only
billing_events.

Revision ID: 0003
Revises: 0002

Reading guide. Stripe does not know our tenants, so the webhook needs two cross-tenant
steps, each a narrow SECURITY DEFINER function (cross-tenant path 4, docs/security.md):

- `app.webhook_event_record(...)` inserts the delivered event into `webhook_events` unless
  its (provider, event_id) is already there, and says which. app_rw has no privilege at
  all on `webhook_events` (payloads hold customer PII): this function is its only way in,
  and it never returns a row.
- `app.stripe_customer_tenant(customer_id)` finds the one tenant bound to a Stripe
  customer id: the tenant id only, never its data.

Every effect (plan, payment flag, billing_events row) is then written under RLS with the
claims of that tenant, like any other tenant write. `billing_events` is append-only: a
trigger refuses UPDATE, DELETE and TRUNCATE for every role, table owner included, and
app_rw is granted INSERT only. readonly_audit reads it.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE tenants
  -- Bound by checkout.session.completed; later subscription and invoice events name it.
  ADD COLUMN stripe_customer_id text UNIQUE CHECK (length(stripe_customer_id) BETWEEN 1 AND 255),
  -- Set by invoice.payment_failed, cleared by a later invoice.paid.
  ADD COLUMN payment_failed_at timestamptz,
  -- `created` of the newest Stripe event applied to the plan: older ones, delivered late
  -- (Stripe delivers in any order), change nothing.
  ADD COLUMN billing_event_at timestamptz;

CREATE TABLE webhook_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  provider     text NOT NULL CHECK (provider ~ '^[a-z0-9_]{1,40}$'),
  event_id     text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
  type         text NOT NULL CHECK (length(type) BETWEEN 1 AND 255),
  -- NULL: the event named no tenant we know (recorded, no effect).
  tenant_id    uuid REFERENCES tenants (id) ON DELETE SET NULL,
  payload      jsonb NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  -- Stripe retries for days and may deliver twice: one row, so one effect, per event.
  UNIQUE (provider, event_id)
);
CREATE INDEX webhook_events_tenant_idx ON webhook_events (tenant_id, received_at);

-- Append-only history of plan changes. No cascade from tenants: billing history outlives
-- nothing by accident (deleting a tenant with billing history is a deliberate act).
CREATE TABLE billing_events (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id        uuid NOT NULL REFERENCES tenants (id),
  from_plan        text NOT NULL CHECK (from_plan IN ('free', 'pro')),
  to_plan          text NOT NULL CHECK (to_plan IN ('free', 'pro')),
  -- At most one plan change per Stripe event, whatever happens upstream.
  stripe_event_id  text NOT NULL UNIQUE,
  trace_id         text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (from_plan <> to_plan)
);
CREATE INDEX billing_events_tenant_idx ON billing_events (tenant_id, created_at);
"""

APPEND_ONLY = """
CREATE FUNCTION app.billing_events_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  RAISE EXCEPTION 'billing_events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Per statement, not per row: the attempt itself fails, even when RLS shows it no rows.
CREATE TRIGGER billing_events_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON billing_events
  FOR EACH STATEMENT EXECUTE FUNCTION app.billing_events_append_only();
"""

POLICIES = """
ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;  ALTER TABLE webhook_events FORCE ROW LEVEL SECURITY;
ALTER TABLE billing_events ENABLE ROW LEVEL SECURITY;  ALTER TABLE billing_events FORCE ROW LEVEL SECURITY;

-- billing_events: written within the tenant the event names (the webhook sets its claims);
-- read by auditors only.
CREATE POLICY billing_events_insert ON billing_events FOR INSERT TO app_rw
  WITH CHECK (tenant_id = app.tenant_id());
CREATE POLICY billing_events_read ON billing_events FOR SELECT TO readonly_audit USING (true);
GRANT INSERT ON billing_events TO app_rw;
GRANT SELECT ON billing_events TO readonly_audit;

-- webhook_events: no policy and no privilege for app_rw. The owner passes RLS here, and
-- reads tenants, for the definer functions below only.
CREATE POLICY definer_webhook_events ON webhook_events FOR ALL TO CURRENT_USER USING (true);
CREATE POLICY definer_stripe_customer ON tenants FOR SELECT TO CURRENT_USER USING (true);
"""

# Cross-tenant path 4: the Stripe webhook, before it knows which tenant an event is for.
DEFINER_FUNCTIONS = """
-- true: recorded now, apply its effects; false: this event was recorded before.
CREATE FUNCTION app.webhook_event_record(
  p_provider text, p_event_id text, p_type text, p_tenant_id uuid, p_payload jsonb)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  WITH recorded AS (
    INSERT INTO public.webhook_events (provider, event_id, type, tenant_id, payload)
    VALUES (p_provider, p_event_id, p_type, p_tenant_id, p_payload)
    ON CONFLICT (provider, event_id) DO NOTHING
    RETURNING 1
  )
  SELECT count(*) = 1 FROM recorded
$$;

-- Exact match only (never a pattern); NULL when no tenant has that customer.
CREATE FUNCTION app.stripe_customer_tenant(p_customer_id text)
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT t.id FROM public.tenants t WHERE t.stripe_customer_id = p_customer_id
$$;

REVOKE ALL ON FUNCTION app.webhook_event_record(text, text, text, uuid, jsonb),
  app.stripe_customer_tenant(text), app.billing_events_append_only() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.webhook_event_record(text, text, text, uuid, jsonb),
  app.stripe_customer_tenant(text) TO app_rw;
"""


def upgrade() -> None:
    for block in (TABLES, APPEND_ONLY, POLICIES, DEFINER_FUNCTIONS):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
