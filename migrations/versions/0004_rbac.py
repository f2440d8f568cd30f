"""RBAC: invitations, soft-deleted assessments.

Revision ID: 0004
Revises: 0002

Reading guide. Roles already live on `users.role` (owner, admin, member, viewer); who may
do what is decided by the app (src/rampart/kit/security/permissions.py) from the role in
the database, not the one in the token. This migration adds:

- `invitations`: an owner or admin invites an email with a role; the invitee gets a
  one-time token of which only the sha256 is stored. app_rw may INSERT invitations of its
  own tenant, made by itself (`app.uid()`), and nothing else: it never reads them back.
- Accepting happens before any tenant is known (the token is all the invitee has), so it
  is a narrow SECURITY DEFINER function (cross-tenant path 5, docs/security.md):
  `app.invitation_accept(token_hash)` marks one unused, unexpired invitation accepted and
  returns its tenant, email and role; the user is then inserted under RLS with the claims
  of that tenant, in the same transaction.
- `assessments.deleted_at`: a soft delete. Deleted assessments vanish from the API and
  their pending jobs do nothing; the rows stay for audit.
"""

from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE invitations (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  email        text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  -- sha256 (hex) of the one-time token; the token itself is never stored.
  token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  invited_by   uuid NOT NULL REFERENCES users (id),
  expires_at   timestamptz NOT NULL,
  accepted_at  timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitations_tenant_idx ON invitations (tenant_id, created_at);

ALTER TABLE assessments ADD COLUMN deleted_at timestamptz;
-- Lists read live assessments only, newest first.
CREATE INDEX assessments_tenant_live_idx ON assessments (tenant_id, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;
"""

POLICIES = """
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;  ALTER TABLE invitations FORCE ROW LEVEL SECURITY;

-- An invitation is created within the caller's tenant, by the caller themself.
CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_rw
  WITH CHECK (tenant_id = app.tenant_id() AND invited_by = app.uid());
GRANT INSERT ON invitations TO app_rw;

-- The owner (this migration role) passes RLS here for the definer function below only.
-- UPDATE ... WHERE ... RETURNING needs a SELECT policy as well as the UPDATE one.
CREATE POLICY definer_invitation_lookup ON invitations FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY definer_invitation_accept ON invitations FOR UPDATE TO CURRENT_USER
  USING (true) WITH CHECK (true);
"""

# Cross-tenant path 5: accepting an invitation, before the invitee belongs to any tenant.
DEFINER_FUNCTIONS = """
-- Exact match on the token's hash; one row at most (token_hash is unique). Used, expired
-- and unknown tokens all return no row, so the caller cannot tell them apart. Marking it
-- accepted in the same statement makes the token one-time even under concurrent accepts.
CREATE FUNCTION app.invitation_accept(p_token_hash text)
RETURNS TABLE (id uuid, tenant_id uuid, email text, role text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  UPDATE public.invitations i SET accepted_at = now()
   WHERE i.token_hash = p_token_hash AND i.accepted_at IS NULL AND i.expires_at > now()
  RETURNING i.id, i.tenant_id, i.email, i.role
$$;

REVOKE ALL ON FUNCTION app.invitation_accept(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.invitation_accept(text) TO app_rw;
"""


def upgrade() -> None:
    for block in (TABLES, POLICIES, DEFINER_FUNCTIONS):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
