"""Incidents: what Alertmanager told us, one row per alert (fingerprint + startsAt).

Revision ID: 0007
Revises: 0002

Reading guide. Incidents are operator data, not tenant data: no tenant_id, so no tenant
policy could ever match them. The table still has RLS ENABLEd and FORCEd (invariant 1: no
table the runtime role can reach around RLS) and app_rw has no privilege on it at all. The
incident webhook and `rampart incidents` reach it only through two narrow SECURITY
DEFINER functions (docs/security.md, the cross-tenant paths table):

- `app.incident_record(...)`: upserts one alert of an Alertmanager notification. A new
  (fingerprint, starts_at) inserts a row; the same one again (a repeat or a retried
  notification) updates status, end time, labels and annotations, and counts one more
  notification. `resolved` sets resolved_at (kept from the first resolved notification);
  `firing` after `resolved` reopens the row (Alertmanager re-fires an alert with the same
  startsAt after a resolve timeout). Returns the row's id, status and notification count.
- `app.incident_list(include_resolved, limit)`: open incidents (or all), newest first.

Neither takes claims or reads any tenant table: the owner passes RLS on `incidents` only,
through the policy `definer_incidents`.
"""

from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE incidents (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- Alertmanager's fingerprint of the alert's label set (16 hex digits).
  fingerprint        text NOT NULL CHECK (fingerprint ~ '^[0-9A-Za-z]{1,64}$'),
  alertname          text NOT NULL CHECK (length(alertname) <= 200),
  severity           text CHECK (length(severity) <= 64),
  service            text CHECK (length(service) <= 200),
  status             text NOT NULL CHECK (status IN ('firing', 'resolved')),
  summary            text CHECK (length(summary) <= 4096),
  description        text CHECK (length(description) <= 16384),
  runbook_url        text CHECK (length(runbook_url) <= 2048),
  labels             jsonb NOT NULL DEFAULT '{}',
  annotations        jsonb NOT NULL DEFAULT '{}',
  starts_at          timestamptz NOT NULL,
  -- NULL while firing (Alertmanager sends the zero time then).
  ends_at            timestamptz,
  first_received_at  timestamptz NOT NULL DEFAULT now(),
  last_received_at   timestamptz NOT NULL DEFAULT now(),
  notifications      integer NOT NULL DEFAULT 1 CHECK (notifications >= 1),
  resolved_at        timestamptz,
  -- One incident per firing of an alert: a repeated notification is the same row.
  UNIQUE (fingerprint, starts_at),
  CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX incidents_open_idx ON incidents (starts_at DESC, id DESC) WHERE status = 'firing';
CREATE INDEX incidents_recent_idx ON incidents (starts_at DESC, id DESC);
"""

POLICIES = """
ALTER TABLE incidents ENABLE ROW LEVEL SECURITY;  ALTER TABLE incidents FORCE ROW LEVEL SECURITY;

-- No policy and no privilege for app_rw. The owner passes RLS for the definer functions.
CREATE POLICY definer_incidents ON incidents FOR ALL TO CURRENT_USER USING (true);
"""

# Operator path (no tenant at all): the incident webhook and `rampart incidents`.
DEFINER_FUNCTIONS = """
CREATE FUNCTION app.incident_record(
  p_fingerprint text, p_starts_at timestamptz, p_status text, p_ends_at timestamptz,
  p_alertname text, p_severity text, p_service text, p_summary text, p_description text,
  p_runbook_url text, p_labels jsonb, p_annotations jsonb)
RETURNS TABLE (id bigint, status text, notifications integer)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  INSERT INTO public.incidents AS i (
    fingerprint, starts_at, status, ends_at, alertname, severity, service, summary,
    description, runbook_url, labels, annotations, resolved_at)
  VALUES (
    p_fingerprint, p_starts_at, p_status, p_ends_at, p_alertname, p_severity, p_service,
    p_summary, p_description, p_runbook_url, p_labels, p_annotations,
    CASE WHEN p_status = 'resolved' THEN now() END)
  ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
    status = excluded.status,
    ends_at = excluded.ends_at,
    alertname = excluded.alertname,
    severity = excluded.severity,
    service = excluded.service,
    summary = excluded.summary,
    description = excluded.description,
    runbook_url = excluded.runbook_url,
    labels = excluded.labels,
    annotations = excluded.annotations,
    last_received_at = now(),
    notifications = i.notifications + 1,
    resolved_at = CASE WHEN excluded.status = 'resolved' THEN coalesce(i.resolved_at, now()) END
  RETURNING i.id, i.status, i.notifications
$$;

CREATE FUNCTION app.incident_list(p_include_resolved boolean, p_limit integer)
RETURNS SETOF public.incidents
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT * FROM public.incidents i
  WHERE p_include_resolved OR i.status = 'firing'
  ORDER BY i.starts_at DESC, i.id DESC
  LIMIT least(greatest(p_limit, 0), 1000)
$$;

REVOKE ALL ON FUNCTION
  app.incident_record(text, timestamptz, text, timestamptz, text, text, text, text, text, text,
                      jsonb, jsonb),
  app.incident_list(boolean, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  app.incident_record(text, timestamptz, text, timestamptz, text, text, text, text, text, text,
                      jsonb, jsonb),
  app.incident_list(boolean, integer) TO app_rw;
"""


def upgrade() -> None:
    for block in (TABLE, POLICIES, DEFINER_FUNCTIONS):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
