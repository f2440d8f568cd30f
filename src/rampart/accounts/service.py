"""Signup, login, "who am I", roles and invitations. Services never commit: the request's
transaction does."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rampart.accounts import repository
from rampart.accounts.schemas import (
    InvitationAcceptedOut,
    InvitationAcceptIn,
    InvitationIn,
    InvitationOut,
    LoginIn,
    MeOut,
    RoleIn,
    SessionOut,
    SignupIn,
    SignupOut,
    TenantOut,
    TokenOut,
    UserList,
    UserOut,
)
from rampart.config import get_settings
from rampart.kit import audit, context
from rampart.kit.db.transaction import Claims, set_claims
from rampart.kit.errors import AppError, Conflict, NotFound, Unauthorized, ValidationFailed
from rampart.kit.logging import get_logger
from rampart.kit.metrics import SIGNUPS
from rampart.kit.security import permissions, sessions
from rampart.kit.security.auth import Principal
from rampart.kit.security.passwords import hash_password, password_problem, verify_password
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


def authenticate(
    session: Session, data: LoginIn, *, subject: str | None = None
) -> repository.LoginRecord:
    """The user these credentials belong to, with the login audited; 401 otherwise. Shared
    by token and cookie-session logins, so both check credentials the same way."""
    record = repository.user_for_login(session, str(data.email))
    # Same argon2 work whether or not the email exists: no enumeration by timing.
    ok = verify_password(data.password, record.password_hash if record else None)
    if record is None or not ok:
        log.info("login_failed")
        raise Unauthorized("Invalid email or password.")
    set_claims(session, Claims(tenant_id=str(record.tenant_id), sub=str(record.id)))
    audit.record(
        session, tenant_id=record.tenant_id, actor_id=record.id, action="login", subject=subject
    )
    context.bind(tenant_id=str(record.tenant_id), user_id=str(record.id))
    log.info("login_succeeded")
    return record


def login(session: Session, data: LoginIn) -> TokenOut:
    record = authenticate(session, data)
    return _token(record.id, record.tenant_id, record.role)


def me(session: Session, principal: Principal) -> MeOut:
    found = repository.get_user_and_tenant(session, uuid.UUID(principal.user_id))
    if found is None:
        raise NotFound("User not found.")
    user, tenant = found
    return MeOut(
        user=UserOut.model_validate(user), tenant=TenantOut.model_validate(tenant), role=user.role
    )


# --- users, roles and invitations ---------------------------------------------------------
# Who may do what is the kit's table (kit/security/permissions.py); `actor.role` is the role
# the database holds now (CurrentActor), never the one written in the token.


class InvitationInvalid(AppError):
    # One answer for unknown, used and expired tokens: no oracle for which.
    code, status, message = "invitation_invalid", 400, "The invitation is invalid or expired."


class LastOwner(Conflict):
    code, message = "last_owner", "A tenant keeps at least one owner: make another owner first."


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def list_users(session: Session, actor: Principal) -> UserList:
    permissions.require(permissions.can_read(actor.role))
    return UserList(items=[UserOut.model_validate(u) for u in repository.list_users(session)])


def change_role(session: Session, actor: Principal, user_id: uuid.UUID, data: RoleIn) -> UserOut:
    repository.lock_membership(session, uuid.UUID(actor.tenant_id))
    # Read again under the lock: a concurrent change may have just changed the actor's role.
    actor_role = repository.role_of(session, uuid.UUID(actor.user_id)) or ""
    target = repository.get_user_for_update(session, user_id)
    if target is None:  # another tenant's user is invisible under RLS
        raise NotFound("User not found.")
    permissions.require(permissions.allowed(actor_role, permissions.Action.MANAGE_MEMBERS))
    permissions.require(
        permissions.can_change_role(actor_role, current=target.role, new=data.role),
        "Only an owner can make an owner or change an owner's role.",
    )
    old_role = target.role
    if old_role == data.role:
        return UserOut.model_validate(target)
    if old_role == "owner" and repository.count_owners(session) <= 1:
        raise LastOwner()
    target.role = data.role
    session.flush()
    audit.record(
        session,
        tenant_id=uuid.UUID(actor.tenant_id),
        actor_id=uuid.UUID(actor.user_id),
        action="role_changed",
        subject=f"user:{target.id} {old_role}->{data.role}",
    )
    log.info("role_changed", target_user_id=str(target.id), old_role=old_role, role=data.role)
    return UserOut.model_validate(target)


def invite(session: Session, actor: Principal, data: InvitationIn) -> InvitationOut:
    permissions.require(permissions.allowed(actor.role, permissions.Action.MANAGE_MEMBERS))
    permissions.require(
        permissions.can_invite(actor.role, data.role), "Only an owner can invite an owner."
    )
    email = str(data.email)
    if repository.email_in_tenant(session, email):
        raise Conflict("This email already belongs to a user of the tenant.")
    token = secrets.token_urlsafe(32)
    invitation_id = uuid.uuid4()
    expires_at = datetime.now(UTC) + timedelta(seconds=get_settings().invitation_ttl_seconds)
    repository.insert_invitation(
        session,
        {
            "id": invitation_id,
            "tenant_id": uuid.UUID(actor.tenant_id),
            "email": email,
            "role": data.role,
            "token_hash": _token_hash(token),
            "invited_by": uuid.UUID(actor.user_id),
            "expires_at": expires_at,
        },
    )
    audit.record(
        session,
        tenant_id=uuid.UUID(actor.tenant_id),
        actor_id=uuid.UUID(actor.user_id),
        action="invitation_created",
        subject=f"invitation:{invitation_id} role:{data.role}",
    )
    log.info("invitation_created", invitation_id=str(invitation_id), role=data.role)
    return InvitationOut(
        id=invitation_id, email=email, role=data.role, expires_at=expires_at, token=token
    )


def accept_invitation(session: Session, data: InvitationAcceptIn) -> InvitationAcceptedOut:
    """Use up the invitation and create its user in the inviting tenant, in one transaction:
    if creating the user fails, the invitation stays unused."""
    invitation = repository.accept_invitation(session, _token_hash(data.token))
    if invitation is None:
        log.info("invitation_rejected")
        raise InvitationInvalid()
    problem = password_problem(data.password, email=invitation.email)
    if problem:  # the schema checked all but the email, known only now; rolled back: unused
        raise ValidationFailed(details=[{"field": "password", "problem": problem}])
    user_id = uuid.uuid4()
    # From here on RLS scopes everything to the inviting tenant, as for its own users.
    set_claims(session, Claims(tenant_id=str(invitation.tenant_id), sub=str(user_id)))
    try:
        repository.insert_user(
            session,
            {
                "id": user_id,
                "tenant_id": invitation.tenant_id,
                "email": invitation.email,
                "password_hash": hash_password(data.password),
                "role": invitation.role,
            },
        )
    except IntegrityError as exc:  # the email has an account already, in some tenant
        raise Conflict("An account with this email already exists.") from exc
    audit.record(
        session,
        tenant_id=invitation.tenant_id,
        actor_id=user_id,
        action="invitation_accepted",
        subject=f"invitation:{invitation.id} role:{invitation.role}",
    )
    user, tenant = repository.get_user_and_tenant(session, user_id)  # type: ignore[misc]
    context.bind(tenant_id=str(invitation.tenant_id), user_id=str(user_id))
    log.info("invitation_accepted", invitation_id=str(invitation.id))
    return InvitationAcceptedOut(
        user=UserOut.model_validate(user),
        tenant=TenantOut.model_validate(tenant),
        token=_token(user_id, invitation.tenant_id, invitation.role),
    )


# --- browser sessions (state in Redis: kit/security/sessions.py) --------------------------


def start_session(session: Session, data: LoginIn) -> sessions.BrowserSession:
    """Log in for a browser: a new server-side session instead of a bearer token."""
    record = authenticate(session, data, subject="session")
    return sessions.create(
        user_id=str(record.id), tenant_id=str(record.tenant_id), role=record.role
    )


def session_info(browser: sessions.BrowserSession) -> SessionOut:
    return SessionOut(
        csrf_token=browser.csrf_token,
        idle_timeout_seconds=get_settings().session_ttl_seconds,
        user_id=uuid.UUID(browser.user_id),
        tenant_id=uuid.UUID(browser.tenant_id),
        role=browser.role,
    )


def end_session(session: Session, browser: sessions.BrowserSession) -> None:
    """Logout: the session is deleted server-side, so its cookie authenticates nothing
    from now on, wherever a copy of it is."""
    sessions.revoke(browser.id)
    audit.record(
        session,
        tenant_id=uuid.UUID(browser.tenant_id),
        actor_id=uuid.UUID(browser.user_id),
        action="logout",
    )
    log.info("logout")
