"""The password policy through the real API: signup and invitation acceptance refuse
common, repetitive and sequential passwords and the user's own email, with a 422 envelope
naming the `password` field and why, and write nothing (the invitation stays usable)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from tests.integration.test_invitations import accept, invite, mailed_token, users_of
from tests.support.users import PASSWORD, Account, signup


def _signup(http: httpx.Client, email: str, password: str) -> httpx.Response:
    return http.post(
        "/api/v1/auth/signup",
        json={"email": email, "password": password, "tenant_name": "Policy"},
    )


def _refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["trace_id"]
    [detail] = error["details"]
    assert detail["field"] == "password", detail
    assert words in detail["problem"], detail
    assert "Value error" not in detail["problem"]  # a sentence for a person


@pytest.mark.parametrize(
    "password", ["password1234", "aaaaaaaaaaaaaaaa", "abcdefghijklmn", "1q2w3e4r5t6y"]
)
def test_signup_refuses_a_common_or_trivial_password(http, password):
    email = f"policy-{uuid.uuid4().hex[:10]}@example.com"
    _refused(_signup(http, email, password), "easy to guess")
    # Nothing was created: the same email signs up with a good password, and logs in.
    assert _signup(http, email, PASSWORD).status_code == 202
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text


def test_signup_refuses_the_users_own_email_as_password(http):
    local = f"policy.{uuid.uuid4().hex[:10]}"
    email = f"{local}@example.com"
    _refused(_signup(http, email, email), "email")
    _refused(_signup(http, email, local.upper()), "email")


@pytest.fixture
def owner(http: httpx.Client) -> Account:
    return signup(http, "Inviting")


def test_invitation_accept_refuses_a_weak_password_and_stays_usable(http, owner, superuser):
    local = f"invitee.{uuid.uuid4().hex[:10]}"
    email = f"{local}@example.com"
    invited = invite(http, owner, "member", email)
    assert invited.status_code == 201, invited.text
    token = mailed_token(owner, invited.json())

    _refused(accept(http, token, "x" * 20), "easy to guess")
    _refused(accept(http, token, email), "email")  # known only from the invitation
    _refused(accept(http, token, local), "email")
    assert email not in users_of(superuser, owner.tenant_id)

    accepted = accept(http, token)  # a good password: the invitation was never used up
    assert accepted.status_code == 202, accepted.text
    assert email in users_of(superuser, owner.tenant_id)
