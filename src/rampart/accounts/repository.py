"""All SQL of accounts. Login runs before any tenant is known: it goes through the
SECURITY DEFINER function app.user_for_login, the one cross-tenant read of users.
Accepting an invitation is the other step before a tenant is known: app.invitation_accept."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from rampart.accounts.models import Invitation, Tenant, User


@dataclass(frozen=True)
class LoginRecord:
    id: uuid.UUID
    tenant_id: uuid.UUID
    password_hash: str
    role: str


def user_for_login(session: Session, email: str) -> LoginRecord | None:
    row = session.execute(
        text("SELECT id, tenant_id, password_hash, role FROM app.user_for_login(:email)"),
        {"email": email},
    ).first()
    return LoginRecord(*row) if row else None


def create_tenant_with_owner(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    tenant_name: str,
    email: str,
    password_hash: str,
) -> None:
    # Core INSERTs without RETURNING keep to the privileges app_rw has; the unique index on
    # lower(email) raises IntegrityError for a duplicate, whatever tenant holds it.
    session.execute(insert(Tenant).values(id=tenant_id, name=tenant_name))
    session.execute(
        insert(User).values(
            id=user_id,
            tenant_id=tenant_id,
            email=email,
            password_hash=password_hash,
            role="owner",
        )
    )


def get_user_and_tenant(session: Session, user_id: uuid.UUID) -> tuple[User, Tenant] | None:
    row = session.execute(
        select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == user_id)
    ).first()
    return (row[0], row[1]) if row else None


# --- roles and invitations ----------------------------------------------------------------


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.created_at, User.id)).scalars())


def lock_membership(session: Session, tenant_id: uuid.UUID) -> None:
    """Serialize role changes within the tenant (the tenant row, FOR NO KEY UPDATE: inserts
    that reference the tenant are not blocked). Without it two owners demoting each other
    at once would each still count the other and leave the tenant with no owner."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))


def role_of(session: Session, user_id: uuid.UUID) -> str | None:
    return session.execute(select(User.role).where(User.id == user_id)).scalar_one_or_none()


def get_user_for_update(session: Session, user_id: uuid.UUID) -> User | None:
    return session.execute(
        select(User).where(User.id == user_id).with_for_update()
    ).scalar_one_or_none()


def count_owners(session: Session) -> int:
    return session.execute(
        select(func.count()).select_from(User).where(User.role == "owner")
    ).scalar_one()


def email_in_tenant(session: Session, email: str) -> bool:
    found = session.execute(select(User.id).where(func.lower(User.email) == email.lower()))
    return found.first() is not None


def insert_invitation(session: Session, values: dict) -> None:
    # No RETURNING: app_rw may insert invitations but not read them.
    session.execute(insert(Invitation).values(**values))


@dataclass(frozen=True)
class AcceptedInvitation:
    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    role: str


def accept_invitation(session: Session, token_hash: str) -> AcceptedInvitation | None:
    """Use up the unused, unexpired invitation with this token hash (the definer function
    app.invitation_accept, cross-tenant path 5); None for any other token."""
    row = session.execute(
        text("SELECT id, tenant_id, email, role FROM app.invitation_accept(:hash)"),
        {"hash": token_hash},
    ).first()
    return AcceptedInvitation(*row) if row else None


def insert_user(session: Session, values: dict) -> None:
    session.execute(insert(User).values(**values))
