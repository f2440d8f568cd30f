"""All SQL of accounts. Login runs before any tenant is known: it goes through the
SECURITY DEFINER function app.user_for_login, the one cross-tenant read of users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from rampart.accounts.models import Tenant, User


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
