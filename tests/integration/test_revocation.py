"""Access ends when the database says so (issue 9, findings 5 and 6): a removed member, or
one whose role changed, loses access at their next request, bearer token and cookie session
alike; a validly signed token with malformed claims is a 401, never a 500."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from tests.integration.test_sessions_csrf import open_session
from tests.support.db import add_user
from tests.support.mail import deliver, link_token, wait_for_mail
from tests.support.users import PASSWORD, Account, answers, log_in, signup

from rampart.config import get_settings


def _error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def _invite_and_join(http, owner: Account, role: str) -> Account:
    invited = http.post(
        "/api/v1/invitations",
        json={"email": f"m-{uuid.uuid4().hex[:10]}@example.com", "role": role},
        headers=owner.headers,
    )
    assert invited.status_code == 201, invited.text
    email = invited.json()["email"]
    deliver(owner.tenant_id)
    token = link_token(wait_for_mail(email, "You are invited to"))
    joined = http.post("/api/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert joined.status_code == 202, joined.text
    access = log_in(http, email)
    me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"}).json()
    return Account(
        email=email, user_id=me["user"]["id"], tenant_id=me["tenant"]["id"], token=access
    )


def test_a_removed_member_loses_access_at_once_with_token_and_session(http):
    owner = signup(http, "Removal")
    member = _invite_and_join(http, owner, "member")
    browser = open_session(http, member)
    assert http.get("/api/v1/me", headers=member.headers).status_code == 200
    assert http.get("/api/v1/me", headers=browser.cookie()).status_code == 200

    removed = http.delete(f"/api/v1/users/{member.user_id}", headers=owner.headers)

    assert removed.status_code == 204
    _error(http.get("/api/v1/me", headers=member.headers), 401, "unauthorized")
    _error(http.get("/api/v1/assessments", headers=browser.cookie()), 401, "unauthorized")
    created = http.post("/api/v1/assessments", json={"answers": answers()}, headers=member.headers)
    _error(created, 401, "unauthorized")
    users = http.get("/api/v1/users", headers=owner.headers).json()["items"]
    assert member.user_id not in {u["id"] for u in users}
    # The address is free again: its owner may sign up or be invited anew.
    again = http.post(
        "/api/v1/auth/signup",
        json={"email": member.email, "password": PASSWORD, "tenant_name": "Fresh start"},
    )
    assert again.status_code == 202, again.text
    assert http.post(
        "/api/v1/auth/login", json={"email": member.email, "password": PASSWORD}
    ).json()["access_token"]


def test_a_role_change_revokes_the_older_tokens_and_sessions(http):
    owner = signup(http, "Demotion")
    admin = _invite_and_join(http, owner, "admin")
    browser = open_session(http, admin)

    changed = http.patch(
        f"/api/v1/users/{admin.user_id}/role", json={"role": "viewer"}, headers=owner.headers
    )

    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    _error(http.get("/api/v1/me", headers=admin.headers), 401, "token_revoked")
    _error(http.get("/api/v1/me", headers=browser.cookie()), 401, "token_revoked")
    # A fresh login gets a token of the new version, with the new role.
    login = http.post("/api/v1/auth/login", json={"email": admin.email, "password": PASSWORD})
    fresh = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert http.get("/api/v1/me", headers=fresh).json()["role"] == "viewer"


def test_removal_follows_the_role_rules_and_keeps_the_last_owner(http):
    owner = signup(http, "Rules")
    admin = _invite_and_join(http, owner, "admin")
    member = _invite_and_join(http, owner, "member")
    stranger = signup(http, "Elsewhere")

    _error(http.delete(f"/api/v1/users/{owner.user_id}", headers=member.headers), 403, "forbidden")
    _error(http.delete(f"/api/v1/users/{owner.user_id}", headers=admin.headers), 403, "forbidden")
    _error(http.delete(f"/api/v1/users/{owner.user_id}", headers=owner.headers), 409, "last_owner")
    # Another tenant's user does not exist for this tenant: 404 before any permission.
    _error(
        http.delete(f"/api/v1/users/{stranger.user_id}", headers=member.headers), 404, "not_found"
    )
    assert http.get("/api/v1/me", headers=stranger.headers).status_code == 200
    assert http.delete(f"/api/v1/users/{member.user_id}", headers=admin.headers).status_code == 204


def _forged(**claims) -> dict[str, str]:
    base = {
        "sub": str(uuid.uuid4()),
        "tenant_id": str(uuid.uuid4()),
        "role": "owner",
        "aud": "rampart-api",
        "exp": int(time.time()) + 600,
    }
    token = jwt.encode(
        {**base, **claims}, get_settings().jwt_secret.get_secret_value(), algorithm="HS256"
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "claims",
    [
        {"tenant_id": 5},
        {"tenant_id": None},
        {"tenant_id": ["a"]},
        {"sub": 12},
        {"sub": "not-a-uuid"},
        {"role": {"owner": True}},
        {"role": "superuser"},
        {"ver": -1},
        {"ver": "1"},
        {"ver": 1.5},
    ],
    ids=repr,
)
def test_a_validly_signed_token_with_malformed_claims_is_401_not_500(http, claims):
    _error(http.get("/api/v1/me", headers=_forged(**claims)), 401, "unauthorized")


def test_a_token_for_a_user_who_does_not_exist_is_401(http):
    owner = signup(http, "Ghost")
    ghost = _forged(tenant_id=owner.tenant_id)  # well formed, no such user in the tenant
    _error(http.get("/api/v1/assessments", headers=ghost), 401, "unauthorized")
    # A real user's token for another tenant is no key to it either.
    viewer = add_user(owner.tenant_id, "viewer")
    other = signup(http, "Other")
    crossed = _forged(sub=viewer.user_id, tenant_id=other.tenant_id)
    _error(http.get("/api/v1/assessments", headers=crossed), 401, "unauthorized")
