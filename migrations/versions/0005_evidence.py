"""Evidence: files attached to assessments.

Revision ID: 0005
Revises: 0002

Reading guide. One row per stored file; the bytes live in storage (EVIDENCE_DIR) under
`storage_key`, a key the app makes. Rows are immutable: app_rw may SELECT and INSERT, never
UPDATE or DELETE. RLS ENABLEd and FORCEd; a new row must be in the caller's tenant, made
by the caller (`app.uid()`), for an assessment the caller can see: the subquery runs under
the caller's own RLS, so another tenant's assessment id fails the check even though a
foreign key alone would accept it.
"""

from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE evidence (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  assessment_id  uuid NOT NULL REFERENCES assessments (id) ON DELETE CASCADE,
  uploaded_by    uuid NOT NULL REFERENCES users (id),
  -- The client's filename, sanitized, for display only; never a path.
  filename       text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
  -- Decided by the file's bytes, never by the client's Content-Type.
  content_type   text NOT NULL CHECK (content_type IN ('application/pdf', 'image/png', 'image/jpeg')),
  size_bytes     bigint NOT NULL CHECK (size_bytes > 0),
  sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  storage_key    text NOT NULL UNIQUE CHECK (storage_key ~ '^[0-9a-f/-]{1,200}$'),
  trace_id       text,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evidence_assessment_idx ON evidence (tenant_id, assessment_id, created_at);
"""

POLICIES = """
ALTER TABLE evidence ENABLE ROW LEVEL SECURITY;  ALTER TABLE evidence FORCE ROW LEVEL SECURITY;

CREATE POLICY evidence_select ON evidence FOR SELECT TO app_rw
  USING (tenant_id = app.tenant_id());
CREATE POLICY evidence_insert ON evidence FOR INSERT TO app_rw
  WITH CHECK (
    tenant_id = app.tenant_id()
    AND uploaded_by = app.uid()
    AND EXISTS (SELECT 1 FROM assessments a WHERE a.id = evidence.assessment_id)
  );

GRANT SELECT, INSERT ON evidence TO app_rw;
"""


def upgrade() -> None:
    for block in (TABLE, POLICIES):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
