"""All SQL of accounts. Login runs before any tenant is known: it goes through the
SECURITY DEFINER function app.user_for_login, the one cross-tenant read of users.
Accepting an invitation is the other step before a tenant is known: app.invitation_accept.
Role changes and removals go through app.user_set_role / app.user_remove (migration
0010), which check the caller's authority and write the audit trail themselves."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from asyncpg import Record

from rampart.kit.db.transaction import Tx

USER_COLUMNS = "u.id, u.email, u.role, u.created_at"
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
        "SELECT u.role, u.token_version, t.plan FROM users u JOIN tenants t ON t.id = u.tenant_id"
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
    # One statement; the unique index on lower(email) raises UniqueViolationError for a
    # live duplicate, whatever tenant holds it.
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
    user = dict(zip(("id", "email", "role", "created_at"), values[:4], strict=True))
    tenant = dict(zip(("id", "name", "plan", "created_at"), values[4:], strict=True))
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


async def email_in_tenant(tx: Tx, email: str) -> bool:
    found = await tx.fetchval(
        "SELECT 1 FROM users WHERE lower(email) = lower($1) AND removed_at IS NULL", email
    )
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


async def insert_user(
    tx: Tx, *, user_id: uuid.UUID, tenant_id: uuid.UUID, email: str, password_hash: str, role: str
) -> None:
    await tx.execute(
        "INSERT INTO users (id, tenant_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
        user_id,
        tenant_id,
        email,
        password_hash,
        role,
    )
