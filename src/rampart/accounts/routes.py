from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from rampart.accounts import service
from rampart.accounts.limits import invitation_rate_limit
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
    TokenOut,
    UserList,
    UserOut,
    VerifyEmailIn,
)
from rampart.billing import service as billing
from rampart.kit import idempotency
from rampart.kit.security import sessions
from rampart.kit.security.auth import CurrentBrowserSession
from rampart.kit.security.permissions import CurrentActor, VerifiedActor, requires
from rampart.kit.security.principal import Principal
from rampart.kit.security.ratelimit import CountSignup, login_rate_limit, signup_rate_limit
from rampart.kit.security.request_tx import AnonymousTx, TenantTx
from rampart.kit.security.roles import Action

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/signup", status_code=202, response_model=NextStep)
async def signup(
    data: SignupIn,
    count_signup: Annotated[CountSignup, Depends(signup_rate_limit)],
    tx: AnonymousTx,
) -> NextStep:
    """Sign up: the same 202 whether or not the address has an account. A new account gets
    a mail with a link to confirm the address; until then it may log in and read, not
    write. An address with a confirmed account gets a mail saying someone tried."""
    return await service.signup(tx, data, count_signup)


# Public: the one-time token from the mail is the credential.
@router.post(
    "/auth/verify-email",
    response_model=NextStep,
    responses={
        400: {
            "description": "The token is unknown, used or expired (`verification_invalid`), "
            "or the body is not valid JSON (`malformed_json`)."
        }
    },
)
async def verify_email(data: VerifyEmailIn, tx: AnonymousTx) -> NextStep:
    """Confirm an address with the token of the link mailed at signup."""
    return await service.verify_email(tx, data)


@router.post("/auth/login", response_model=TokenOut, dependencies=[Depends(login_rate_limit)])
async def login(data: LoginIn, tx: AnonymousTx) -> TokenOut:
    return await service.login(tx, data)


@router.get("/me", response_model=MeOut)
async def me(actor: CurrentActor, tx: TenantTx) -> MeOut:
    return await service.me(tx, actor)


# --- users, roles and invitations ---------------------------------------------------------
# Role changes and removals depend on the target user (only an owner touches an owner; never
# the last owner; another tenant's user is a 404 first): the database function decides
# (migration 0010), so those routes take the verified caller and no `requires`.


@router.get("/users", response_model=UserList)
async def list_users(
    _actor: Annotated[Principal, requires(Action.READ, verified=False)], tx: TenantTx
) -> UserList:
    return await service.list_users(tx)


@router.patch("/users/{user_id}/role", response_model=UserOut)
async def change_role(
    user_id: uuid.UUID, data: RoleIn, _actor: VerifiedActor, tx: TenantTx
) -> UserOut:
    return await service.change_role(tx, user_id, data)


@router.delete(
    "/users/{user_id}",
    status_code=204,
    responses={
        404: {"description": "No such user in the tenant."},
        409: {"description": "The last owner cannot be removed (`last_owner`)."},
    },
)
async def remove_user(user_id: uuid.UUID, _actor: VerifiedActor, tx: TenantTx) -> Response:
    """Remove a member (owners and admins; only an owner removes an owner; never the last
    owner). Their tokens and sessions stop working at once."""
    await service.remove_user(tx, user_id)
    return Response(status_code=204)


@router.post(
    "/invitations",
    status_code=201,
    response_model=InvitationOut,
    dependencies=[Depends(invitation_rate_limit)],
    responses=billing.PLAN_LIMIT_RESPONSE,
)
async def invite(
    data: InvitationIn,
    actor: Annotated[Principal, requires(Action.MANAGE_MEMBERS)],  # owners: the service
    tx: TenantTx,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> InvitationOut:
    return await idempotency.once(
        tx,
        idempotency_key,
        idempotency.fingerprint("POST", "/api/v1/invitations", data.model_dump_json()),
        lambda: service.invite(tx, actor, data),
        InvitationOut,
        response,
        status=201,
    )


# Public: the invitee has no account yet; the one-time token in the body is the credential.
@router.post(
    "/invitations/accept",
    status_code=202,
    response_model=NextStep,
    responses={
        400: {
            "description": "The token is unknown, used or expired (`invitation_invalid`), or "
            "the body is not valid JSON (`malformed_json`)."
        },
        **billing.PLAN_LIMIT_RESPONSE,
    },
)
async def accept_invitation(data: InvitationAcceptIn, tx: AnonymousTx) -> NextStep:
    """Accept with the token mailed to the invited address, and choose a password; then log
    in. The same 202 whether or not the address already has an account (then nothing is
    made, and the address is mailed why)."""
    return await service.accept_invitation(tx, data)


# --- browser sessions: cookie + CSRF token instead of a bearer token ----------------------


# Public (the credentials are the body) and CSRF-exempt (no session exists yet); limited
# with the same buckets as /auth/login, so it is no way around the login limits.
@router.post(
    "/auth/session",
    status_code=201,
    response_model=SessionOut,
    dependencies=[Depends(login_rate_limit)],
)
async def create_session(data: LoginIn, tx: AnonymousTx, response: Response) -> SessionOut:
    browser = await service.start_session(tx, data)
    sessions.set_cookies(response, browser)
    return service.session_info(browser, browser.role)


@router.get("/auth/session", response_model=SessionOut)
async def get_session(
    browser: CurrentBrowserSession, actor: CurrentActor, _tx: TenantTx
) -> SessionOut:
    """The current session's CSRF token again (a frontend on another site cannot read the
    `__Host-csrf` cookie after a reload); CORS keeps other sites from reading it."""
    return service.session_info(browser, actor.role)


@router.post("/auth/logout", status_code=204)
async def logout(browser: CurrentBrowserSession, tx: TenantTx) -> Response:
    await service.end_session(tx, browser)
    response = Response(status_code=204)
    sessions.clear_cookies(response)
    return response
