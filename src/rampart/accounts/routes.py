from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response

from rampart.accounts import service
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
    TokenOut,
    UserList,
    UserOut,
)
from rampart.kit.db.dependency import AnonymousSession, TenantSession
from rampart.kit.security import sessions
from rampart.kit.security.auth import CurrentBrowserSession, CurrentPrincipal
from rampart.kit.security.permissions import CurrentActor
from rampart.kit.security.ratelimit import login_rate_limit, signup_rate_limit

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post(
    "/auth/signup",
    status_code=201,
    response_model=SignupOut,
    dependencies=[Depends(signup_rate_limit)],
)
def signup(data: SignupIn, session: AnonymousSession) -> SignupOut:
    return service.signup(session, data)


@router.post("/auth/login", response_model=TokenOut, dependencies=[Depends(login_rate_limit)])
def login(data: LoginIn, session: AnonymousSession) -> TokenOut:
    return service.login(session, data)


@router.get("/me", response_model=MeOut)
def me(principal: CurrentPrincipal, session: TenantSession) -> MeOut:
    return service.me(session, principal)


# --- users, roles and invitations (permission checks in the service) ----------------------


@router.get("/users", response_model=UserList)
def list_users(actor: CurrentActor, session: TenantSession) -> UserList:
    return service.list_users(session, actor)


@router.patch("/users/{user_id}/role", response_model=UserOut)
def change_role(
    user_id: uuid.UUID, data: RoleIn, actor: CurrentActor, session: TenantSession
) -> UserOut:
    return service.change_role(session, actor, user_id, data)


@router.post("/invitations", status_code=201, response_model=InvitationOut)
def invite(data: InvitationIn, actor: CurrentActor, session: TenantSession) -> InvitationOut:
    return service.invite(session, actor, data)


# Public: the invitee has no account yet; the one-time token in the body is the credential.
@router.post("/invitations/accept", status_code=201, response_model=InvitationAcceptedOut)
def accept_invitation(data: InvitationAcceptIn, session: AnonymousSession) -> InvitationAcceptedOut:
    return service.accept_invitation(session, data)


# --- browser sessions: cookie + CSRF token instead of a bearer token ----------------------


# Public (the credentials are the body) and CSRF-exempt (no session exists yet); limited
# with the same buckets as /auth/login, so it is no way around the login limits.
@router.post(
    "/auth/session",
    status_code=201,
    response_model=SessionOut,
    dependencies=[Depends(login_rate_limit)],
)
def create_session(data: LoginIn, session: AnonymousSession, response: Response) -> SessionOut:
    browser = service.start_session(session, data)
    sessions.set_cookies(response, browser)
    return service.session_info(browser)


@router.get("/auth/session", response_model=SessionOut)
def get_session(browser: CurrentBrowserSession) -> SessionOut:
    """The current session's CSRF token again (a frontend on another site cannot read the
    `__Host-csrf` cookie after a reload); CORS keeps other sites from reading it."""
    return service.session_info(browser)


@router.post("/auth/logout", status_code=204)
def logout(browser: CurrentBrowserSession, session: TenantSession) -> Response:
    service.end_session(session, browser)
    response = Response(status_code=204)
    sessions.clear_cookies(response)
    return response
