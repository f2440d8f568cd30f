"""Signup, login, "who am I", roles, invitations and email confirmation. Services never
commit: the request's transaction does.

Email identity (docs/security.md, "Email identity"): every address is canonical (the
schemas make it so). Signup, invite and accept answer the same whatever the address: a
mail to the address tells its owner what happened. Mails are jobs enqueued in the
request's transaction and sent by the worker (`mail_step`), never in the request."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from anyio import to_thread

from rampart.accounts import mails, repository
from rampart.accounts.metrics import SIGNUPS
from rampart.accounts.schemas import (
    InvitationAcceptIn,
    InvitationIn,
    InvitationOut,
    LoginIn,
    MeOut,
    NextStep,
    RoleIn,
    SessionOut,
    SignupIn,
    TenantOut,
    TokenOut,
    UserList,
    UserOut,
    VerifyEmailIn,
)
from rampart.billing import service as billing
from rampart.config import get_settings
from rampart.kit import audit, context
from rampart.kit.db.transaction import Claims, DatabaseUnavailable, Tx
from rampart.kit.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from rampart.kit.jobs.enqueue import enqueue
from rampart.kit.jobs.runner import JobRun
from rampart.kit.logging import get_logger
from rampart.kit.mail import get_mailer
from rampart.kit.security import roles, sessions
from rampart.kit.security.links import link_token, token_hash
from rampart.kit.security.passwords import (
    hash_password,
    password_problem_off_loop,
    verify_password,
)
from rampart.kit.security.principal import CHALLENGE, Principal, TokenRevoked
from rampart.kit.security.tokens import issue_access_token

log = get_logger(__name__)


def _token(user_id: uuid.UUID, tenant_id: uuid.UUID, role: str, version: int) -> TokenOut:
    token, ttl = issue_access_token(
        user_id=str(user_id), tenant_id=str(tenant_id), role=role, version=version
    )
    return TokenOut(access_token=token, expires_in=ttl)


async def _require_strong(password: str, email: str, context: Sequence[str] = ()) -> None:
    """The whole password policy (the schema made only its instant checks), or a 422."""
    problem = await password_problem_off_loop(password, email=email, context=context)
    if problem:
        raise ValidationFailed(details=[{"field": "password", "problem": problem}])


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
        principal,
        role=found.role,
        token_version=found.token_version,
        plan=found.plan,
        verified=found.verified,
    )


async def _user_and_tenant(tx: Tx, user_id: uuid.UUID) -> tuple[UserOut, TenantOut]:
    found = await repository.user_and_tenant(tx, user_id)
    if found is None:
        raise NotFound("User not found.")
    user, tenant = found
    return UserOut.model_validate(user), TenantOut.model_validate(tenant)


# --- mail: enqueued with the request's rows, sent by the worker --------------------------

MAIL_JOB = "send_mail"  # the job type: one name (kit/jobs/task.py)


async def _mail(tx: Tx, tenant_id: uuid.UUID, template: str, to: str, **facts: Any) -> None:
    """Enqueue one mail in the transaction's tenant (its claims must be that tenant's)."""
    await enqueue(
        tx,
        tenant_id=tenant_id,
        job_type=MAIL_JOB,
        idempotency_key=f"mail:{uuid.uuid4()}",
        payload={"template": template, "to": to, **facts},
    )


async def mail_step(run: JobRun) -> None:
    """The mail job: render the mail (link tokens computed again from their row ids) and
    send it. The delivery's transaction commits before the SMTP conversation, so no
    database connection waits on a mail server; the job is marked done after."""
    payload = dict(run.payload)
    if payload.get("template") in (mails.INVITATION, mails.INVITATION_EXISTING):
        async with run.transaction() as tx:
            payload["tenant_name"] = await repository.name_of_tenant(tx, run.tenant_id) or ""
    await run.close()
    mail = mails.render(payload, message_id=f"<{run.job_id}@rampart>")
    await get_mailer().send(mail)
    async with run.transaction() as tx:
        await run.succeed(tx)


# --- signup and email confirmation --------------------------------------------------------

SIGNUP_ANSWER = (
    "Check your inbox: if this address can be used, we sent it a link to confirm it. "
    "Open it, then log in."
)


class VerificationInvalid(AppError):
    # One answer for unknown, used and expired links: no oracle for which.
    code, status, message = (
        "verification_invalid",
        400,
        "The confirmation link is invalid or expired; sign up again for a new one.",
    )


async def _claim_email(tx: Tx, email: str) -> repository.Holder | None:
    try:
        return await repository.claim_email(tx, email, _trace_id())
    except asyncpg.PostgresError as exc:  # e.g. a deadlock between two claims: retry
        raise DatabaseUnavailable() from exc


async def signup(tx: Tx, data: SignupIn, count_signup: Callable[[], Awaitable[None]]) -> NextStep:
    """The same answer whatever the address. Free (or held by an account that never
    confirmed it, which is removed): a new tenant, its unconfirmed owner and a mail with
    the confirmation link. Held by a confirmed account: nothing is made, and its owner is
    mailed that someone tried. Either way the signup is counted by `count_signup` (the
    caller's signup limit; it raises when over), so the limit tells the two apart no more
    than the answer does."""
    email = str(data.email)
    await _require_strong(data.password, email, context=[data.tenant_name])  # before counting
    await count_signup()
    password_hash = await _hash(data.password)  # argon2 either way: no oracle by timing
    holder = await _claim_email(tx, email)
    if holder is not None:
        await tx.set_claims(Claims(tenant_id=str(holder.tenant_id)))
        await audit.record(tx, tenant_id=holder.tenant_id, actor_id=None, action="signup_refused")
        await _mail(tx, holder.tenant_id, mails.SIGNUP_EXISTING, email)
        log.info("signup_refused_address_taken")
        return NextStep(message=SIGNUP_ANSWER)
    tenant_id, user_id = uuid.uuid4(), uuid.uuid4()
    # The new tenant's own claims let RLS accept exactly these rows and no others.
    await tx.set_claims(Claims(tenant_id=str(tenant_id), sub=str(user_id)))
    try:
        await repository.create_tenant_with_owner(
            tx,
            tenant_id=tenant_id,
            user_id=user_id,
            tenant_name=data.tenant_name,
            email=email,
            password_hash=password_hash,
        )
    except asyncpg.UniqueViolationError as exc:  # app.email_claim serializes: not expected
        raise DatabaseUnavailable() from exc
    await _send_confirmation(tx, tenant_id, user_id, email)
    await audit.record(tx, tenant_id=tenant_id, actor_id=user_id, action="signup")
    context.bind(tenant_id=str(tenant_id), user_id=str(user_id))
    SIGNUPS.inc()
    log.info("signup_completed")
    return NextStep(message=SIGNUP_ANSWER)


async def _send_confirmation(tx: Tx, tenant_id: uuid.UUID, user_id: uuid.UUID, email: str) -> None:
    verification_id = uuid.uuid4()
    ttl = get_settings().email_verification_ttl_seconds
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    await repository.insert_verification(
        tx,
        verification_id=verification_id,
        tenant_id=tenant_id,
        user_id=user_id,
        email=email,
        token_hash=token_hash(link_token(mails.VERIFY_EMAIL, verification_id)),
        expires_at=expires_at,
    )
    await _mail(
        tx,
        tenant_id,
        mails.VERIFY_EMAIL,
        email,
        verification_id=str(verification_id),
        expires_at=expires_at.isoformat(),
    )


async def verify_email(tx: Tx, data: VerifyEmailIn) -> NextStep:
    """Use up a confirmation link: its user's address is confirmed from now on."""
    found = await repository.verify_email(tx, token_hash(data.token))
    if found is None:
        log.info("email_verification_rejected")
        raise VerificationInvalid()
    await tx.set_claims(Claims(tenant_id=str(found.tenant_id), sub=str(found.user_id)))
    await audit.record(
        tx, tenant_id=found.tenant_id, actor_id=found.user_id, action="email_verified"
    )
    context.bind(tenant_id=str(found.tenant_id), user_id=str(found.user_id))
    log.info("email_verified")
    return NextStep(message="Your email address is confirmed.")


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
# Who may do what is the kit's table (kit/security/roles.py); `actor.role` is the role
# the database holds now (CurrentActor), never the one written in the token. Role changes
# and removals are also checked by the database functions that make them (migration 0010).


class InvitationInvalid(AppError):
    # One answer for unknown, used and expired tokens: no oracle for which.
    code, status, message = "invitation_invalid", 400, "The invitation is invalid or expired."


class LastOwner(Conflict):
    code, message = "last_owner", "A tenant keeps at least one owner: make another owner first."


async def list_users(tx: Tx) -> UserList:
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


async def _require_member_room(tx: Tx, tenant_id: uuid.UUID) -> None:
    await billing.require_room(
        tx, tenant_id, "members", lambda: repository.count_members(tx), adding=1
    )


def _trace_id() -> str | None:
    value = context.current("trace_id")
    return str(value) if value else None


async def invite(tx: Tx, actor: Principal, data: InvitationIn) -> InvitationOut:
    # The route checked Action.MANAGE_MEMBERS; inviting an owner depends on the body.
    roles.require(
        roles.can_invite(actor.role, data.role), "Only an owner can invite an owner."
    )
    email = str(data.email)
    # The tenant's own members only (its admins list them anyway): no cross-tenant oracle.
    if await repository.email_in_tenant(tx, email):
        raise Conflict("This email already belongs to a user of the tenant.")
    await _require_member_room(tx, uuid.UUID(actor.tenant_id))
    invitation_id = uuid.uuid4()
    expires_at = datetime.now(UTC) + timedelta(seconds=get_settings().invitation_ttl_seconds)
    await repository.insert_invitation(
        tx,
        invitation_id=invitation_id,
        tenant_id=uuid.UUID(actor.tenant_id),
        email=email,
        role=data.role,
        token_hash=token_hash(link_token(mails.INVITATION, invitation_id)),
        invited_by=uuid.UUID(actor.user_id),
        expires_at=expires_at,
    )
    # The token goes to the invited address only: whoever accepts it holds that mailbox.
    await _mail(
        tx,
        uuid.UUID(actor.tenant_id),
        mails.INVITATION,
        email,
        invitation_id=str(invitation_id),
        role=data.role,
        expires_at=expires_at.isoformat(),
    )
    await audit.record(
        tx,
        tenant_id=actor.tenant_id,
        actor_id=actor.user_id,
        action="invitation_created",
        subject=f"invitation:{invitation_id} role:{data.role}",
    )
    log.info("invitation_created", invitation_id=str(invitation_id), role=data.role)
    return InvitationOut(id=invitation_id, email=email, role=data.role, expires_at=expires_at)


ACCEPT_ANSWER = (
    "Invitation accepted: log in with this address and the password you chose. We also "
    "sent you a mail."
)


async def accept_invitation(tx: Tx, data: InvitationAcceptIn) -> NextStep:
    """Use up the invitation and create its user in the inviting tenant, in one transaction
    (if that fails, the invitation stays unused). The token reached the invited mailbox,
    so the new user's address is confirmed. If the address already has a confirmed
    account, nothing is made and the address is mailed why: the same answer either way."""
    password_hash = await _hash(data.password)
    invitation = await repository.accept_invitation(tx, token_hash(data.token))
    if invitation is None:
        log.info("invitation_rejected")
        raise InvitationInvalid()
    # The invitee's email is known only now; refused, the transaction rolls back: unused.
    await _require_strong(data.password, invitation.email)
    holder = await _claim_email(tx, invitation.email)
    if holder is not None:
        await tx.set_claims(Claims(tenant_id=str(invitation.tenant_id)))
        await audit.record(
            tx,
            tenant_id=invitation.tenant_id,
            actor_id=None,
            action="invitation_refused",
            subject=f"invitation:{invitation.id} address has an account",
        )
        await _mail(tx, invitation.tenant_id, mails.INVITATION_EXISTING, invitation.email)
        log.info("invitation_refused_address_taken", invitation_id=str(invitation.id))
        return NextStep(message=ACCEPT_ANSWER)
    user_id = uuid.uuid4()
    # From here on RLS scopes everything to the inviting tenant, as for its own users.
    await tx.set_claims(Claims(tenant_id=str(invitation.tenant_id), sub=str(user_id)))
    # Checked again here: the tenant may have filled up (or downgraded) since the invite.
    # Refused, the transaction rolls back and the invitation stays unused.
    await _require_member_room(tx, invitation.tenant_id)
    try:
        await repository.insert_verified_user(
            tx,
            user_id=user_id,
            tenant_id=invitation.tenant_id,
            email=invitation.email,
            password_hash=password_hash,
            role=invitation.role,
        )
    except asyncpg.UniqueViolationError as exc:  # app.email_claim serializes: not expected
        raise DatabaseUnavailable() from exc
    await audit.record(
        tx,
        tenant_id=invitation.tenant_id,
        actor_id=user_id,
        action="invitation_accepted",
        subject=f"invitation:{invitation.id} role:{invitation.role}",
    )
    context.bind(tenant_id=str(invitation.tenant_id), user_id=str(user_id))
    log.info("invitation_accepted", invitation_id=str(invitation.id))
    return NextStep(message=ACCEPT_ANSWER)


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
