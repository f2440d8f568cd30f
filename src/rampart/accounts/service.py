"""Signup, login, "who am I", roles and invitations. Services never commit: the request's
transaction does."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from anyio import to_thread

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
from rampart.kit.db.transaction import Claims, Tx
from rampart.kit.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from rampart.kit.logging import get_logger
from rampart.kit.metrics import SIGNUPS
from rampart.kit.security import permissions, sessions
from rampart.kit.security.auth import CHALLENGE, Principal, TokenRevoked
from rampart.kit.security.passwords import hash_password, password_problem, verify_password
from rampart.kit.security.tokens import issue_access_token

log = get_logger(__name__)


def _token(user_id: uuid.UUID, tenant_id: uuid.UUID, role: str, version: int) -> TokenOut:
    token, ttl = issue_access_token(
        user_id=str(user_id), tenant_id=str(tenant_id), role=role, version=version
    )
    return TokenOut(access_token=token, expires_in=ttl)


async def _hash(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU: off the event loop (it releases the GIL).
    return await to_thread.run_sync(hash_password, password)


def actor_check_sql(principal: Principal) -> str:
    """The check run as the request's transaction opens (kit/security/auth.py): RA401 unless
    the user is live in the claims' tenant, RA402 if the token version moved on. Literals
    from validated values only: a canonical UUID and an int."""
    user_id = str(uuid.UUID(principal.user_id))
    return f"SELECT app.actor_check('{user_id}', {int(principal.token_version)})"


async def load_actor(tx: Tx, principal: Principal) -> Principal:
    """The caller as the database knows them now, with role and plan: a removed user, or a
    token or session older than the user's token version, is a 401."""
    found = await repository.actor(tx, uuid.UUID(principal.user_id))
    if found is None:
        raise Unauthorized("The account no longer exists.", headers=CHALLENGE)
    if found.token_version != principal.token_version:
        raise TokenRevoked(headers=CHALLENGE)
    return dataclasses.replace(
        principal, role=found.role, token_version=found.token_version, plan=found.plan
    )


async def _user_and_tenant(tx: Tx, user_id: uuid.UUID) -> tuple[UserOut, TenantOut]:
    found = await repository.user_and_tenant(tx, user_id)
    if found is None:
        raise NotFound("User not found.")
    user, tenant = found
    return UserOut.model_validate(user), TenantOut.model_validate(tenant)


async def signup(tx: Tx, data: SignupIn) -> SignupOut:
    tenant_id, user_id = uuid.uuid4(), uuid.uuid4()
    password_hash = await _hash(data.password)
    # The new tenant's own claims let RLS accept exactly these rows and no others.
    await tx.set_claims(Claims(tenant_id=str(tenant_id), sub=str(user_id)))
    try:
        await repository.create_tenant_with_owner(
            tx,
            tenant_id=tenant_id,
            user_id=user_id,
            tenant_name=data.tenant_name,
            email=str(data.email),
            password_hash=password_hash,
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("An account with this email already exists.") from exc
    await audit.record(tx, tenant_id=tenant_id, actor_id=user_id, action="signup")
    user, tenant = await _user_and_tenant(tx, user_id)
    context.bind(tenant_id=str(tenant_id), user_id=str(user_id))
    SIGNUPS.inc()
    log.info("signup_completed")
    return SignupOut(user=user, tenant=tenant, token=_token(user_id, tenant_id, "owner", 0))


async def authenticate(
    tx: Tx, data: LoginIn, *, subject: str | None = None
) -> repository.LoginRecord:
    """The user these credentials belong to, with the login audited; 401 otherwise. Shared
    by token and cookie-session logins, so both check credentials the same way."""
    record = await repository.user_for_login(tx, str(data.email))
    # Same argon2 work whether or not the email exists: no enumeration by timing.
    ok = await to_thread.run_sync(
        verify_password, data.password, record.password_hash if record else None
    )
    if record is None or not ok:
        log.info("login_failed")
        raise Unauthorized("Invalid email or password.")
    await tx.set_claims(Claims(tenant_id=str(record.tenant_id), sub=str(record.id)))
    await audit.record(
        tx, tenant_id=record.tenant_id, actor_id=record.id, action="login", subject=subject
    )
    context.bind(tenant_id=str(record.tenant_id), user_id=str(record.id))
    log.info("login_succeeded")
    return record


async def login(tx: Tx, data: LoginIn) -> TokenOut:
    record = await authenticate(tx, data)
    return _token(record.id, record.tenant_id, record.role, record.token_version)


async def me(tx: Tx, principal: Principal) -> MeOut:
    user, tenant = await _user_and_tenant(tx, uuid.UUID(principal.user_id))
    return MeOut(user=user, tenant=tenant, role=user.role)


# --- users, roles and invitations ---------------------------------------------------------
# Who may do what is the kit's table (kit/security/permissions.py); `actor.role` is the role
# the database holds now (CurrentActor), never the one written in the token. Role changes
# and removals are also checked by the database functions that make them (migration 0010).


class InvitationInvalid(AppError):
    # One answer for unknown, used and expired tokens: no oracle for which.
    code, status, message = "invitation_invalid", 400, "The invitation is invalid or expired."


class LastOwner(Conflict):
    code, message = "last_owner", "A tenant keeps at least one owner: make another owner first."


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def list_users(tx: Tx, actor: Principal) -> UserList:
    permissions.require(permissions.can_read(actor.role))
    return UserList(
        items=[UserOut.model_validate(dict(u)) for u in await repository.list_users(tx)]
    )


def _authority_error(exc: asyncpg.PostgresError) -> AppError:
    """The database function's refusal as the API's error (migration 0010's SQLSTATEs)."""
    if exc.sqlstate == "RA001":
        return LastOwner()
    if exc.sqlstate == "P0002":
        return NotFound("User not found.")
    if exc.sqlstate == "42501":
        return Forbidden(exc.args[0][:1].upper() + exc.args[0][1:] + ".")
    raise exc


async def change_role(tx: Tx, user_id: uuid.UUID, data: RoleIn) -> UserOut:
    """The database function decides (migration 0010): another tenant's user is a 404,
    then the caller must be an owner or admin, and only an owner touches owners."""
    try:
        old_role = await repository.set_role(tx, user_id, data.role, _trace_id())
    except asyncpg.PostgresError as exc:
        raise _authority_error(exc) from exc
    if old_role != data.role:
        log.info("role_changed", target_user_id=str(user_id), old_role=old_role, role=data.role)
    row = await repository.user_role(tx, user_id)
    return UserOut.model_validate(dict(row))  # type: ignore[arg-type]


async def remove_user(tx: Tx, user_id: uuid.UUID) -> None:
    """The member loses access at once: their row is marked removed and their token
    version bumped, so every token and session they hold fails its next request. The same
    rules as a role change, decided by the database function."""
    try:
        old_role = await repository.remove_user(tx, user_id, _trace_id())
    except asyncpg.PostgresError as exc:
        raise _authority_error(exc) from exc
    log.info("user_removed", target_user_id=str(user_id), old_role=old_role)


def _trace_id() -> str | None:
    value = context.current("trace_id")
    return str(value) if value else None


async def invite(tx: Tx, actor: Principal, data: InvitationIn) -> InvitationOut:
    permissions.require(permissions.allowed(actor.role, permissions.Action.MANAGE_MEMBERS))
    permissions.require(
        permissions.can_invite(actor.role, data.role), "Only an owner can invite an owner."
    )
    email = str(data.email)
    if await repository.email_in_tenant(tx, email):
        raise Conflict("This email already belongs to a user of the tenant.")
    token = secrets.token_urlsafe(32)
    invitation_id = uuid.uuid4()
    expires_at = datetime.now(UTC) + timedelta(seconds=get_settings().invitation_ttl_seconds)
    await repository.insert_invitation(
        tx,
        invitation_id=invitation_id,
        tenant_id=uuid.UUID(actor.tenant_id),
        email=email,
        role=data.role,
        token_hash=_token_hash(token),
        invited_by=uuid.UUID(actor.user_id),
        expires_at=expires_at,
    )
    await audit.record(
        tx,
        tenant_id=actor.tenant_id,
        actor_id=actor.user_id,
        action="invitation_created",
        subject=f"invitation:{invitation_id} role:{data.role}",
    )
    log.info("invitation_created", invitation_id=str(invitation_id), role=data.role)
    return InvitationOut(
        id=invitation_id, email=email, role=data.role, expires_at=expires_at, token=token
    )


async def accept_invitation(tx: Tx, data: InvitationAcceptIn) -> InvitationAcceptedOut:
    """Use up the invitation and create its user in the inviting tenant, in one transaction:
    if creating the user fails, the invitation stays unused."""
    password_hash = await _hash(data.password)
    invitation = await repository.accept_invitation(tx, _token_hash(data.token))
    if invitation is None:
        log.info("invitation_rejected")
        raise InvitationInvalid()
    problem = password_problem(data.password, email=invitation.email)
    if problem:  # the schema checked all but the email, known only now; rolled back: unused
        raise ValidationFailed(details=[{"field": "password", "problem": problem}])
    user_id = uuid.uuid4()
    # From here on RLS scopes everything to the inviting tenant, as for its own users.
    await tx.set_claims(Claims(tenant_id=str(invitation.tenant_id), sub=str(user_id)))
    try:
        await repository.insert_user(
            tx,
            user_id=user_id,
            tenant_id=invitation.tenant_id,
            email=invitation.email,
            password_hash=password_hash,
            role=invitation.role,
        )
    except asyncpg.UniqueViolationError as exc:  # the email has an account already
        raise Conflict("An account with this email already exists.") from exc
    await audit.record(
        tx,
        tenant_id=invitation.tenant_id,
        actor_id=user_id,
        action="invitation_accepted",
        subject=f"invitation:{invitation.id} role:{invitation.role}",
    )
    user, tenant = await _user_and_tenant(tx, user_id)
    context.bind(tenant_id=str(invitation.tenant_id), user_id=str(user_id))
    log.info("invitation_accepted", invitation_id=str(invitation.id))
    return InvitationAcceptedOut(
        user=user, tenant=tenant, token=_token(user_id, invitation.tenant_id, invitation.role, 0)
    )


# --- browser sessions (state in Redis: kit/security/sessions.py) --------------------------


async def start_session(tx: Tx, data: LoginIn) -> sessions.BrowserSession:
    """Log in for a browser: a new server-side session instead of a bearer token."""
    record = await authenticate(tx, data, subject="session")
    return await sessions.create(
        user_id=str(record.id),
        tenant_id=str(record.tenant_id),
        role=record.role,
        version=record.token_version,
    )


def session_info(browser: sessions.BrowserSession, role: str) -> SessionOut:
    return SessionOut(
        csrf_token=browser.csrf_token,
        idle_timeout_seconds=get_settings().session_ttl_seconds,
        user_id=uuid.UUID(browser.user_id),
        tenant_id=uuid.UUID(browser.tenant_id),
        role=role,
    )


async def end_session(tx: Tx, browser: sessions.BrowserSession) -> None:
    """Logout: the session is deleted server-side, so its cookie authenticates nothing
    from now on, wherever a copy of it is."""
    await sessions.revoke(browser.id)
    await audit.record(tx, tenant_id=browser.tenant_id, actor_id=browser.user_id, action="logout")
    log.info("logout")
