"""Idempotency keys: a client retrying a creating POST gets the first response again.

Revision ID: 0011
Revises: 0010

Reading guide. One row per (tenant, Idempotency-Key), written in the same transaction as
the work it guards (kit/idempotency.py): the request's fingerprint (method, route, body
digest) and, once the work is done, the response it got. A second request with the key
finds the row and replays the response; with another body it gets 422. Two concurrent
requests with one key are resolved by the primary key: the second INSERT waits for the
first transaction and then finds its row (or, if it rolled back, goes ahead itself).
Keys live 24 hours: an older row is replaced as if absent, and the relay purges them
(`app.idempotency_purge`, cross-tenant path 8, docs/security.md).
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE idempotency_keys (
  tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  fingerprint      text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  response_status  smallint,
  response_body    jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_tenant ON idempotency_keys FOR ALL TO app_rw
  USING (tenant_id = app.tenant_id()) WITH CHECK (tenant_id = app.tenant_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO app_rw;

CREATE POLICY definer_idempotency_purge ON idempotency_keys FOR DELETE TO CURRENT_USER
  USING (true);
CREATE POLICY definer_idempotency_purge_read ON idempotency_keys FOR SELECT TO CURRENT_USER
  USING (true);

-- Cross-tenant path 8: the relay deletes keys older than 24 hours, every tenant's.
CREATE FUNCTION app.idempotency_purge(p_max_rows integer)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  WITH old AS (
    SELECT tenant_id, key FROM public.idempotency_keys
     WHERE created_at < now() - interval '24 hours'
     ORDER BY created_at LIMIT least(p_max_rows, 10000)
     FOR UPDATE SKIP LOCKED
  ), purged AS (
    DELETE FROM public.idempotency_keys k USING old
     WHERE k.tenant_id = old.tenant_id AND k.key = old.key
    RETURNING 1
  )
  SELECT count(*)::integer FROM purged
$$;
REVOKE ALL ON FUNCTION app.idempotency_purge(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.idempotency_purge(integer) TO app_rw;
"""


def upgrade() -> None:
    op.execute(TABLE)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
