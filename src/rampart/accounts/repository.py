"""All SQL of accounts. Login runs before any tenant is known: it goes through the
SECURITY DEFINER function app.user_for_login, the one cross-tenant read of users.
Accepting an invitation is another step before a tenant is known: app.invitation_accept.
Making an account first claims its address across tenants (app.email_claim), and a
confirmation link is used up by app.email_verify (migration 0012). Role changes and
removals go through app.user_set_role / app.user_remove (migration 0010), which check
the caller's authority and write the audit trail themselves.

Every email here is canonical (kit/security/emails.py): the schemas make it so."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from asyncpg import Record

from rampart.kit.db.transaction import Tx

USER_COLUMNS = (
    "u.id, u.email, u.email_verified_at IS NOT NULL AS email_verified, u.role, u.created_at"
)
USER_FIELDS = ("id", "email", "email_verified", "role", "created_at")
TENANT_COLUMNS = "t.id, t.name, t.plan, t.created_at"


@dataclass(frozen=True)
class LoginRecord:
    id: uuid.UUID
    tenant_id: uuid.UUID
    password_hash: str
    role: str
    token_version: int


@dataclass(frozen=True)
class Actor:
    role: str
    token_version: int
    plan: str
    verified: bool


async def user_for_login(tx: Tx, email: str) -> LoginRecord | None:
    row = await tx.fetchrow(
        "SELECT id, tenant_id, password_hash, role, token_version FROM app.user_for_login($1)",
        email,
    )
    return LoginRecord(*row) if row else None


async def actor(tx: Tx, user_id: uuid.UUID) -> Actor | None:
    """The live user's role and token version and their tenant's plan (under RLS: only
    within the claims' tenant)."""
    row = await tx.fetchrow(
        "SELECT u.role, u.token_version, t.plan, u.email_verified_at IS NOT NULL"
        " FROM users u JOIN tenants t ON t.id = u.tenant_id"
        " WHERE u.id = $1 AND u.removed_at IS NULL",
        user_id,
    )
    return Actor(*row) if row else None


async def create_tenant_with_owner(
    tx: Tx,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    tenant_name: str,
    email: str,
    password_hash: str,
) -> None:
    """The tenant and its owner, whose address is not confirmed yet. One statement; the
    unique index on email raises UniqueViolationError for a live duplicate, whatever
    tenant holds it (app.email_claim, run first, makes that a race that cannot happen)."""
    await tx.execute(
        "WITH tenant AS (INSERT INTO tenants (id, name) VALUES ($1, $2))"
        " INSERT INTO users (id, tenant_id, email, password_hash, role)"
        " VALUES ($3, $1, $4, $5, 'owner')",
        tenant_id,
        tenant_name,
        user_id,
        email,
        password_hash,
    )


async def user_and_tenant(tx: Tx, user_id: uuid.UUID) -> tuple[Record, Record] | None:
    row = await tx.fetchrow(
        f"SELECT {USER_COLUMNS}, {TENANT_COLUMNS} FROM users u"  # noqa: S608 - constants
        " JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1 AND u.removed_at IS NULL",
        user_id,
    )
    if row is None:
        return None
    values = list(row.values())
    count = len(USER_FIELDS)
    user = dict(zip(USER_FIELDS, values[:count], strict=True))
    tenant = dict(zip(("id", "name", "plan", "created_at"), values[count:], strict=True))
    return user, tenant  # type: ignore[return-value]


# --- roles and invitations ----------------------------------------------------------------


async def list_users(tx: Tx) -> list[Record]:
    return await tx.fetch(
        f"SELECT {USER_COLUMNS} FROM users u WHERE u.removed_at IS NULL"  # noqa: S608
        " ORDER BY u.created_at, u.id"
    )


async def set_role(tx: Tx, user_id: uuid.UUID, role: str, trace_id: str | None) -> str:
    """The target's old role; raises the function's errors (see migration 0010)."""
    return await tx.fetchval("SELECT app.user_set_role($1, $2, $3)", user_id, role, trace_id)


async def remove_user(tx: Tx, user_id: uuid.UUID, trace_id: str | None) -> str:
    return await tx.fetchval("SELECT app.user_remove($1, $2)", user_id, trace_id)


async def user_role(tx: Tx, user_id: uuid.UUID) -> Record | None:
    return await tx.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1 AND u.removed_at IS NULL",  # noqa: S608
        user_id,
    )


async def count_members(tx: Tx) -> int:
    """Live users of the claims' tenant."""
    return await tx.fetchval("SELECT count(*) FROM users WHERE removed_at IS NULL")


async def email_in_tenant(tx: Tx, email: str) -> bool:
    found = await tx.fetchval("SELECT 1 FROM users WHERE email = $1 AND removed_at IS NULL", email)
    return found is not None


async def insert_invitation(
    tx: Tx,
    *,
    invitation_id: uuid.UUID,
    tenant_id: uuid.UUID,
    email: str,
    role: str,
    token_hash: str,
    invited_by: uuid.UUID,
    expires_at: datetime,
) -> None:
    # No RETURNING: app_rw may insert invitations but not read them.
    await tx.execute(
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        invitation_id,
        tenant_id,
        email,
        role,
        token_hash,
        invited_by,
        expires_at,
    )


@dataclass(frozen=True)
class AcceptedInvitation:
    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    role: str


async def accept_invitation(tx: Tx, token_hash: str) -> AcceptedInvitation | None:
    """Use up the unused, unexpired invitation with this token hash (the definer function
    app.invitation_accept, cross-tenant path 5); None for any other token."""
    row = await tx.fetchrow(
        "SELECT id, tenant_id, email, role FROM app.invitation_accept($1)", token_hash
    )
    return AcceptedInvitation(*row) if row else None


async def insert_verified_user(
    tx: Tx, *, user_id: uuid.UUID, tenant_id: uuid.UUID, email: str, password_hash: str, role: str
) -> None:
    """A user whose address is proven (the invitation token reached its mailbox)."""
    await tx.execute(
        "INSERT INTO users (id, tenant_id, email, password_hash, role, email_verified_at)"
        " VALUES ($1, $2, $3, $4, $5, now())",
        user_id,
        tenant_id,
        email,
        password_hash,
        role,
    )


# --- addresses and their confirmation ------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    user_id: uuid.UUID
    tenant_id: uuid.UUID


async def claim_email(tx: Tx, email: str, trace_id: str | None) -> Holder | None:
    """Before making an account for `email`: its live verified holder (then make none), or
    None when the address is free, an unverified holder having been removed (the definer
    function app.email_claim, cross-tenant path 9)."""
    row = await tx.fetchrow(
        "SELECT holder_id, holder_tenant_id FROM app.email_claim($1, $2)", email, trace_id
    )
    return Holder(*row) if row else None


async def insert_verification(
    tx: Tx,
    *,
    verification_id: uuid.UUID,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    email: str,
    token_hash: str,
    expires_at: datetime,
) -> None:
    # No RETURNING: app_rw may insert links but not read them.
    await tx.execute(
        "INSERT INTO email_verifications (id, tenant_id, user_id, email, token_hash, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        verification_id,
        tenant_id,
        user_id,
        email,
        token_hash,
        expires_at,
    )


async def verify_email(tx: Tx, token_hash: str) -> Holder | None:
    """Use up the link with this token hash and mark its user verified (the definer
    function app.email_verify, cross-tenant path 10); None for any other token."""
    row = await tx.fetchrow("SELECT user_id, tenant_id FROM app.email_verify($1)", token_hash)
    return Holder(*row) if row else None


async def name_of_tenant(tx: Tx, tenant_id: uuid.UUID) -> str | None:
    return await tx.fetchval("SELECT name FROM tenants WHERE id = $1", tenant_id)
