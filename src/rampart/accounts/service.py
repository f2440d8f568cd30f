"""Signup, login and "who am I". Services never commit: the request's transaction does."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rampart.accounts import repository
from rampart.accounts.schemas import (
    LoginIn,
    MeOut,
    SignupIn,
    SignupOut,
    TenantOut,
    TokenOut,
    UserOut,
)
from rampart.kit import audit, context
from rampart.kit.db.transaction import Claims, set_claims
from rampart.kit.errors import Conflict, NotFound, Unauthorized
from rampart.kit.logging import get_logger
from rampart.kit.metrics import SIGNUPS
from rampart.kit.security.auth import Principal
from rampart.kit.security.passwords import hash_password, verify_password
from rampart.kit.security.tokens import issue_access_token

log = get_logger(__name__)


def _token(user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> TokenOut:
    token, ttl = issue_access_token(user_id=str(user_id), tenant_id=str(tenant_id), role=role)
    return TokenOut(access_token=token, expires_in=ttl)


def signup(session: Session, data: SignupIn) -> SignupOut:
    tenant_id, user_id = uuid.uuid4(), uuid.uuid4()
    # The new tenant's own claims let RLS accept exactly these rows and no others.
    set_claims(session, Claims(tenant_id=str(tenant_id), sub=str(user_id)))
    try:
        repository.create_tenant_with_owner(
            session,
            tenant_id=tenant_id,
            user_id=user_id,
            tenant_name=data.tenant_name,
            email=str(data.email),
            password_hash=hash_password(data.password),
        )
    except IntegrityError as exc:
        raise Conflict("An account with this email already exists.") from exc
    audit.record(session, tenant_id=tenant_id, actor_id=user_id, action="signup")
    user, tenant = repository.get_user_and_tenant(session, user_id)  # type: ignore[misc]
    context.bind(tenant_id=str(tenant_id), user_id=str(user_id))
    SIGNUPS.inc()
    log.info("signup_completed")
    return SignupOut(
        user=UserOut.model_validate(user),
        tenant=TenantOut.model_validate(tenant),
        token=_token(user_id, tenant_id, "owner"),
    )


def login(session: Session, data: LoginIn) -> TokenOut:
    record = repository.user_for_login(session, str(data.email))
    # Same argon2 work whether or not the email exists: no enumeration by timing.
    ok = verify_password(data.password, record.password_hash if record else None)
    if record is None or not ok:
        log.info("login_failed")
        raise Unauthorized("Invalid email or password.")
    set_claims(session, Claims(tenant_id=str(record.tenant_id), sub=str(record.id)))
    audit.record(session, tenant_id=record.tenant_id, actor_id=record.id, action="login")
    context.bind(tenant_id=str(record.tenant_id), user_id=str(record.id))
    log.info("login_succeeded")
    return _token(record.id, record.tenant_id, record.role)


def me(session: Session, principal: Principal) -> MeOut:
    found = repository.get_user_and_tenant(session, uuid.UUID(principal.user_id))
    if found is None:
        raise NotFound("User not found.")
    user, tenant = found
    return MeOut(
        user=UserOut.model_validate(user), tenant=TenantOut.model_validate(tenant), role=user.role
    )
