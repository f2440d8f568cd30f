"""Email identity: canonical addresses, email verification, addresses reclaimed from
accounts that never confirmed them.

Revision ID: 0012
Revises: 0011

Reading guide (docs/security.md, "Email identity").

1. Canonical addresses. `users.email` and `invitations.email` hold the canonical form of
   the address (`rampart.kit.security.emails.canonical_email`: NFKC, the domain through
   IDNA to ASCII, the whole address casefolded), and the unique index is on `email`
   itself among live users. Existing rows are rewritten to that form here, in Python
   (Postgres has no IDNA). **Collisions**: two live accounts whose addresses differ only
   in spelling (`Alice@x` and `ａｌｉｃｅ@x` could both sign up before) cannot both keep
   it. The oldest account (created first) keeps the address; each younger one is removed
   the way `app.user_remove` removes a member (row kept, `removed_at` set, token version
   bumped: its tokens and sessions stop working) with an `email_collision_removed` audit
   event in its tenant naming the account that kept the address. The migration logs how
   many; docs/security.md says how to find and restore one.
2. Verification. `users.email_verified_at`: NULL until the owner of the address follows the
   link mailed to it (`email_verifications`: one row per link, the sha256 of its token,
   expiry, single use) or accepts an invitation, whose token reached that mailbox. Accounts
   that exist before this migration count as verified (they had no way to verify; treating
   them as unverified would let any new signup take their address over, rule 3).
   Invitations not yet accepted are expired here: their tokens were handed to the inviter,
   so accepting one proves nothing about the address; inviters send them again and the
   invitee gets the token by mail.
3. Addresses are reclaimed, never squatted. `app.email_claim(email, trace_id)` (cross-tenant
   path 9) runs before signup or invitation acceptance creates an account, serialized per
   address by a transaction advisory lock: a live verified holder is returned (no account
   is made: its owner gets a mail); a live unverified holder is removed (as above, audit
   `email_reclaimed` in its tenant), so the address is free for the new account. Whoever
   confirms the address keeps it.
4. `app.email_verify(token_hash)` (cross-tenant path 10) uses up one unexpired link and
   marks its user verified, if that user is still live and still has that address.
5. An unverified user may read, not write: the API refuses writes (403
   `email_not_verified`), and `app.authority_role()` no longer sees an unverified caller
   as an owner or admin, so role changes and removals refuse them in the database too.
"""

import logging

from alembic import context, op
from sqlalchemy import text

from rampart.kit.security.emails import canonical_email

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

COLUMNS = """
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
-- Grandfathered: accounts from before verification existed (see the reading guide).
UPDATE users SET email_verified_at = now();
-- Their tokens went to the inviter, not the invitee's mailbox (see the reading guide).
UPDATE invitations SET expires_at = now() WHERE accepted_at IS NULL AND expires_at > now();
DROP INDEX users_email_key;
"""

INDEX = """
-- One live account per address across all tenants; the address is stored canonical.
CREATE UNIQUE INDEX users_email_key ON users (email) WHERE removed_at IS NULL;
"""

VERIFICATIONS = """
CREATE TABLE email_verifications (
  id          uuid PRIMARY KEY,
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The address the link proves (canonical), checked against the user's when used.
  email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  -- sha256 (hex) of the link's token; the token itself is never stored.
  token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);

ALTER TABLE email_verifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_verifications FORCE ROW LEVEL SECURITY;
-- app_rw writes a link for a user of its own tenant, and never reads links back.
CREATE POLICY email_verifications_insert ON email_verifications FOR INSERT TO app_rw
  WITH CHECK (
    tenant_id = app.tenant_id()
    AND EXISTS (SELECT 1 FROM users u WHERE u.id = email_verifications.user_id)
  );
GRANT INSERT ON email_verifications TO app_rw;

-- The owner passes RLS here for app.email_verify only (UPDATE ... RETURNING needs SELECT).
CREATE POLICY definer_email_verify_lookup ON email_verifications FOR SELECT TO CURRENT_USER
  USING (true);
CREATE POLICY definer_email_verify ON email_verifications FOR UPDATE TO CURRENT_USER
  USING (true) WITH CHECK (true);
"""

# Cross-tenant paths 9 and 10 (docs/security.md); login keeps path 1 on the new index.
DEFINER_FUNCTIONS = """
CREATE OR REPLACE FUNCTION app.user_for_login(p_email text)
RETURNS TABLE (id uuid, tenant_id uuid, password_hash text, role text, token_version integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT u.id, u.tenant_id, u.password_hash, u.role, u.token_version
  FROM public.users u WHERE u.email = p_email AND u.removed_at IS NULL
$$;

-- Before an account is made for p_email (canonical): returns the live verified holder, if
-- any (then no account is made); removes a live unverified holder (the address is free
-- again); returns nothing when the address is free. One at a time per address.
CREATE FUNCTION app.email_claim(p_email text, p_trace_id text)
RETURNS TABLE (holder_id uuid, holder_tenant_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  found_id uuid;
  found_tenant uuid;
  found_verified timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('rampart.email:' || p_email, 0));
  SELECT u.id, u.tenant_id, u.email_verified_at INTO found_id, found_tenant, found_verified
    FROM public.users u WHERE u.email = p_email AND u.removed_at IS NULL FOR UPDATE;
  IF found_id IS NULL THEN
    RETURN;
  END IF;
  IF found_verified IS NOT NULL THEN
    holder_id := found_id;
    holder_tenant_id := found_tenant;
    RETURN NEXT;
    RETURN;
  END IF;
  UPDATE public.users SET removed_at = now(), token_version = token_version + 1
   WHERE id = found_id;
  INSERT INTO public.audit_events (tenant_id, actor_id, action, subject, trace_id)
  VALUES (found_tenant, NULL, 'email_reclaimed', 'user:' || found_id, p_trace_id);
END
$$;

-- Use up the unused, unexpired link with this token hash and mark its user verified, if
-- that user is live and still has the link's address; no row for any other token.
CREATE FUNCTION app.email_verify(p_token_hash text)
RETURNS TABLE (user_id uuid, tenant_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  WITH link AS (
    UPDATE public.email_verifications v SET used_at = now()
     WHERE v.token_hash = p_token_hash AND v.used_at IS NULL AND v.expires_at > now()
    RETURNING v.user_id, v.tenant_id, v.email
  )
  UPDATE public.users u SET email_verified_at = now()
    FROM link
   WHERE u.id = link.user_id AND u.tenant_id = link.tenant_id AND u.email = link.email
     AND u.removed_at IS NULL AND u.email_verified_at IS NULL
  RETURNING u.id, u.tenant_id
$$;

-- An unverified caller has no authority (rule 5): role changes and removals refuse them.
CREATE OR REPLACE FUNCTION app.authority_role() RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  caller_role text;
BEGIN
  PERFORM 1 FROM public.tenants t WHERE t.id = app.tenant_id() FOR NO KEY UPDATE;
  SELECT u.role INTO caller_role FROM public.users u
   WHERE u.id = app.uid() AND u.tenant_id = app.tenant_id() AND u.removed_at IS NULL
     AND u.email_verified_at IS NOT NULL;
  RETURN caller_role;
END
$$;

REVOKE ALL ON FUNCTION app.email_claim(text, text), app.email_verify(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.email_claim(text, text), app.email_verify(text) TO app_rw;
"""


OFFLINE_GUARD = """
DO $$
BEGIN
  IF EXISTS (SELECT FROM users) OR EXISTS (SELECT FROM invitations) THEN
    RAISE EXCEPTION '0012 rewrites addresses in Python: apply it with rampart migrate';
  END IF;
END
$$;
"""


def _canonical(email: str) -> str:
    try:
        return canonical_email(email)
    except ValueError:  # cannot happen for addresses the API accepted; leave it be
        log.warning("0012: an address has no canonical form; left as it is")
        return email


def _canonicalize_users() -> None:
    conn = op.get_bind()
    users = conn.execute(
        text("SELECT id, tenant_id, email, removed_at FROM users ORDER BY created_at, id")
    ).all()
    keeper: dict[str, object] = {}
    collided = 0
    for user_id, tenant_id, email, removed_at in users:
        canonical = _canonical(email)
        if removed_at is None:
            if canonical in keeper:
                collided += 1
                conn.execute(
                    text(
                        "UPDATE users SET removed_at = now(), token_version = token_version + 1"
                        " WHERE id = :id"
                    ),
                    {"id": user_id},
                )
                conn.execute(
                    text(
                        "INSERT INTO audit_events (tenant_id, actor_id, action, subject)"
                        " VALUES (:tenant, NULL, 'email_collision_removed',"
                        " 'user:' || :id || ' kept by user:' || :keeper)"
                    ),
                    {"tenant": tenant_id, "id": str(user_id), "keeper": str(keeper[canonical])},
                )
            else:
                keeper[canonical] = user_id
        if canonical != email:
            conn.execute(
                text("UPDATE users SET email = :email WHERE id = :id"),
                {"email": canonical, "id": user_id},
            )
    if collided:
        log.warning(
            "0012: %d account(s) removed: another live account has the same address in its "
            "canonical form (audit action email_collision_removed)",
            collided,
        )


def _canonicalize_invitations() -> None:
    conn = op.get_bind()
    for invitation_id, email in conn.execute(text("SELECT id, email FROM invitations")).all():
        canonical = _canonical(email)
        if canonical != email:
            conn.execute(
                text("UPDATE invitations SET email = :email WHERE id = :id"),
                {"email": canonical, "id": invitation_id},
            )


def upgrade() -> None:
    op.execute(COLUMNS)
    # The rewrite reads rows in Python. Offline (`alembic upgrade --sql`, what the squawk
    # lint reads) it cannot run: the printed script refuses a database that has rows.
    if context.is_offline_mode():
        op.execute(OFFLINE_GUARD)
    else:
        _canonicalize_users()
        _canonicalize_invitations()
    for block in (INDEX, VERIFICATIONS, DEFINER_FUNCTIONS):
        op.execute(block)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from a backup instead")
