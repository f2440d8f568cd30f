from __future__ import annotations

from fastapi import APIRouter

from rampart.accounts import service
from rampart.accounts.schemas import LoginIn, MeOut, SignupIn, SignupOut, TokenOut
from rampart.kit.db.dependency import AnonymousSession, TenantSession
from rampart.kit.security.auth import CurrentPrincipal

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/signup", status_code=201, response_model=SignupOut)
def signup(data: SignupIn, session: AnonymousSession) -> SignupOut:
    return service.signup(session, data)


@router.post("/auth/login", response_model=TokenOut)
def login(data: LoginIn, session: AnonymousSession) -> TokenOut:
    return service.login(session, data)


@router.get("/me", response_model=MeOut)
def me(principal: CurrentPrincipal, session: TenantSession) -> MeOut:
    return service.me(session, principal)
