"""Invitations over real HTTP: owners and admins invite, the invitee accepts with the token
mailed to the invited address (never shown to the inviter).

What must hold: the user is created in the inviting tenant with the invited role, address
confirmed, and can log in; only the token's sha256 is stored; a token works once, until it
expires; used, expired and unknown tokens get the very same answer (no oracle) and write
nothing; a refused acceptance (weak password) leaves the invitation unused; bad input is a
4xx envelope and writes nothing. Whether the address has an account elsewhere changes no
answer (tests/integration/test_email_identity.py).

Ground truth (rows written, hashes stored) is read as the Postgres superuser, which
bypasses RLS: app_rw cannot read invitations at all, by design.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from psycopg import errors
from tests.support import httpclient
from tests.support.db import app_rw, su_rows, su_value
from tests.support.mail import deliver, link_token, wait_for_mail
from tests.support.users import Account, log_in, signup

INVITEE_PASSWORD = "invited and quite long enough"


@pytest.fixture
def owner(http: httpx.Client) -> Account:
    return signup(http, "Inviting")


def new_email() -> str:
    return f"invitee-{uuid.uuid4().hex[:12]}@example.com"


def invite(http: httpx.Client, inviter: Account, role: str, email: str | None = None):
    return http.post(
        "/api/v1/invitations",
        json={"email": email or new_email(), "role": role},
        headers=inviter.headers,
    )


def accept(http: httpx.Client, token: str, password: str = INVITEE_PASSWORD):
    return http.post("/api/v1/invitations/accept", json={"token": token, "password": password})


def mailed_token(inviter: Account, invited: dict) -> str:
    """The token of the invitation mail (the mail job runs here: no worker in these tests)."""
    deliver(inviter.tenant_id)
    return link_token(wait_for_mail(invited["email"], "You are invited to"))


def join(http: httpx.Client, inviter: Account, role: str) -> Account:
    """A new user of the inviter's tenant with `role`, through invite, mail, accept, login."""
    invited = invite(http, inviter, role)
    assert invited.status_code == 201, invited.text
    accepted = accept(http, mailed_token(inviter, invited.json()))
    assert accepted.status_code == 202, accepted.text
    token = log_in(http, invited.json()["email"], INVITEE_PASSWORD)
    me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    return Account(
        email=me["user"]["email"],
        user_id=me["user"]["id"],
        tenant_id=me["tenant"]["id"],
        token=token,
    )


def users_of(superuser: str, tenant_id: str) -> set[str]:
    found = su_rows(superuser, "SELECT email FROM users WHERE tenant_id = %s", tenant_id)
    return {email for (email,) in found}


def invitation(superuser: str, invitation_id: str) -> dict:
    # By hand, not su_rows: the row is wanted by column name.
    with psycopg.connect(superuser) as conn:
        cursor = conn.execute("SELECT * FROM invitations WHERE id = %s", (invitation_id,))
        names = [c.name for c in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["trace_id"] == response.headers["x-request-id"]
    return error


# --- the happy path ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_accepted_invitation_makes_a_user_of_the_inviting_tenant_with_that_role(
    http, owner, superuser, role
):
    email = new_email()
    invited = invite(http, owner, role, email)
    assert invited.status_code == 201, invited.text
    assert invited.json()["email"] == email and invited.json()["role"] == role

    accepted = accept(http, mailed_token(owner, invited.json()))
    assert accepted.status_code == 202, accepted.text
    assert set(accepted.json()) == {"message"}

    # The password chosen on acceptance logs in: /me names the tenant and the role, and
    # the address is confirmed (the token reached it).
    bearer = {"Authorization": f"Bearer {log_in(http, email, INVITEE_PASSWORD)}"}
    me = http.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200, me.text
    assert (me.json()["tenant"]["id"], me.json()["role"]) == (owner.tenant_id, role)
    assert me.json()["user"]["email"] == email and me.json()["user"]["email_verified"] is True
    # The owner sees the new user in the tenant's list.
    listed = http.get("/api/v1/users", headers=owner.headers).json()["items"]
    assert {(u["email"], u["role"]) for u in listed} == {(owner.email, "owner"), (email, role)}


def test_only_the_sha256_of_the_token_is_stored(http, owner, superuser):
    invited = invite(http, owner, "member").json()
    token = mailed_token(owner, invited)
    row = invitation(superuser, invited["id"])
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(value) for value in row.values()}
    assert row["tenant_id"] == uuid.UUID(owner.tenant_id)
    assert row["invited_by"] == uuid.UUID(owner.user_id)


def test_invitation_expires_after_the_configured_ttl(http, owner, superuser):
    """Default INVITATION_TTL_SECONDS: 7 days."""
    before = datetime.now(UTC)
    invited = invite(http, owner, "member").json()
    expires_at = invitation(superuser, invited["id"])["expires_at"]
    assert before + timedelta(days=7) <= expires_at <= datetime.now(UTC) + timedelta(days=7)
    assert datetime.fromisoformat(invited["expires_at"]) == expires_at


def test_invite_and_accept_are_audited(http, owner, superuser):
    joined = join(http, owner, "viewer")
    actions = su_rows(
        superuser,
        "SELECT action, actor_id FROM audit_events WHERE tenant_id = %s ORDER BY id",
        owner.tenant_id,
    )
    assert ("invitation_created", uuid.UUID(owner.user_id)) in actions
    assert ("invitation_accepted", uuid.UUID(joined.user_id)) in actions


# --- one time, until it expires, no oracle ----------------------------------------------


def spent(http: httpx.Client, owner: Account, superuser: str, kind: str) -> str:
    """A token that must not work: used once already, expired, or never issued."""
    if kind == "unknown":
        return "never-issued-" + uuid.uuid4().hex
    invited = invite(http, owner, "member").json()
    token = mailed_token(owner, invited)
    if kind == "used":
        assert accept(http, token).status_code == 202
    elif kind == "expired":
        su_rows(
            superuser,
            "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = %s",
            invited["id"],
        )
    return token


@pytest.mark.parametrize("kind", ["used", "expired", "unknown"])
def test_used_expired_and_unknown_tokens_get_the_same_answer_and_create_nobody(
    http, owner, superuser, kind
):
    token = spent(http, owner, superuser, kind)
    users_before = users_of(superuser, owner.tenant_id)
    response = accept(http, token, password="another password entirely")
    error = assert_envelope(response, 400, "invitation_invalid")
    assert error["message"] == "The invitation is invalid or expired."
    assert set(error) == {"code", "message", "trace_id"}  # no details that could differ
    assert users_of(superuser, owner.tenant_id) == users_before


def test_two_concurrent_accepts_of_one_token_make_one_user(http, owner, superuser):
    invited = invite(http, owner, "member").json()
    token = mailed_token(owner, invited)
    statuses: list[int] = []

    def attempt() -> None:
        with httpclient.client(base_url=str(http.base_url), timeout=30) as own:
            statuses.append(accept(own, token).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202, 400, 400, 400]
    assert invited["email"] in users_of(superuser, owner.tenant_id)


def test_accepting_for_an_email_that_has_an_account_makes_nobody_and_uses_the_invitation(
    http, owner, superuser
):
    """Emails are unique across tenants. The answer is the usual one (no oracle): the
    invitation is used up, nobody is made, and the address is mailed why."""
    elsewhere = signup(http, "Elsewhere")
    invited = invite(http, owner, "member", email=elsewhere.email).json()
    response = accept(http, mailed_token(owner, invited))
    assert response.status_code == 202, response.text
    assert elsewhere.email not in users_of(superuser, owner.tenant_id)
    assert invitation(superuser, invited["id"])["accepted_at"] is not None


# --- who may invite, and whom -----------------------------------------------------------


def invitations_of(superuser: str, tenant_id: str) -> int:
    return su_value(superuser, "SELECT count(*) FROM invitations WHERE tenant_id = %s", tenant_id)


def test_an_admin_cannot_invite_an_owner_and_nothing_is_written(http, owner, superuser):
    admin = join(http, owner, "admin")
    before = invitations_of(superuser, owner.tenant_id)
    response = invite(http, admin, "owner")
    assert_envelope(response, 403, "forbidden")
    assert invitations_of(superuser, owner.tenant_id) == before
    assert invite(http, admin, "admin").status_code == 201  # control: admins invite admins


def test_inviting_an_email_already_in_the_tenant_is_409(http, owner, superuser):
    before = invitations_of(superuser, owner.tenant_id)
    assert_envelope(invite(http, owner, "member", email=owner.email.upper()), 409, "conflict")
    assert invitations_of(superuser, owner.tenant_id) == before


def test_inviting_needs_a_token_and_accepting_needs_none(http, owner):
    response = http.post("/api/v1/invitations", json={"email": new_email(), "role": "member"})
    assert_envelope(response, 401, "unauthorized")
    invited = invite(http, owner, "viewer").json()
    token = mailed_token(owner, invited)
    assert accept(http, token).status_code == 202  # no Authorization header


# --- bad input: a 4xx envelope, never a 500, nothing written -----------------------------

BAD_ACCEPTS = [
    pytest.param({"token": "x" * 40}, "password", id="missing-password"),
    pytest.param({"password": INVITEE_PASSWORD}, "token", id="missing-token"),
    pytest.param({"token": "", "password": INVITEE_PASSWORD}, "token", id="empty-token"),
    pytest.param({"token": "x" * 201, "password": INVITEE_PASSWORD}, "token", id="long-token"),
    pytest.param({"token": "x" * 40, "password": "short"}, "password", id="short-password"),
    pytest.param({"token": 7, "password": INVITEE_PASSWORD}, "token", id="token-not-a-string"),
    pytest.param(
        {"token": "x" * 40, "password": INVITEE_PASSWORD, "role": "owner"},
        "role",
        id="extra-field-role",
    ),
]


@pytest.mark.parametrize("payload, field", BAD_ACCEPTS)
def test_bad_accept_body_is_422_and_uses_nothing(http, owner, superuser, payload, field):
    invited = invite(http, owner, "member").json()
    if payload.get("token") == "x" * 40:
        payload = {**payload, "token": mailed_token(owner, invited)}  # a valid token, a bad rest
    response = http.post("/api/v1/invitations/accept", json=payload)
    error = assert_envelope(response, 422, "validation_error")
    assert field in {d["field"] for d in error["details"]}
    assert invitation(superuser, invited["id"])["accepted_at"] is None
    assert invited["email"] not in users_of(superuser, owner.tenant_id)


@pytest.mark.parametrize("field", ["token", "password"])
def test_lone_surrogate_in_accept_is_422_not_500(http, owner, superuser, field):
    invited = invite(http, owner, "member").json()
    values = {"token": f'"{mailed_token(owner, invited)}"', "password": f'"{INVITEE_PASSWORD}"'}
    values[field] = '"abcdefghijkl\\ud800"'
    raw = f'{{"token": {values["token"]}, "password": {values["password"]}}}'
    response = http.post(
        "/api/v1/invitations/accept",
        content=raw.encode(),
        headers={"content-type": "application/json"},
    )
    assert_envelope(response, 422, "validation_error")
    assert invitation(superuser, invited["id"])["accepted_at"] is None


BAD_INVITES = [
    pytest.param({"email": "not-an-email", "role": "member"}, "email", id="bad-email"),
    pytest.param({"email": new_email(), "role": "superuser"}, "role", id="unknown-role"),
    pytest.param({"email": new_email()}, "role", id="missing-role"),
    pytest.param({"role": "member"}, "email", id="missing-email"),
    pytest.param(
        {"email": new_email(), "role": "member", "tenant_id": str(uuid.uuid4())},
        "tenant_id",
        id="extra-field-tenant",
    ),
]


@pytest.mark.parametrize("payload, field", BAD_INVITES)
def test_bad_invite_body_is_422_and_writes_nothing(http, owner, superuser, payload, field):
    before = invitations_of(superuser, owner.tenant_id)
    response = http.post("/api/v1/invitations", json=payload, headers=owner.headers)
    error = assert_envelope(response, 422, "validation_error")
    assert field in {d["field"] for d in error["details"]}
    assert invitations_of(superuser, owner.tenant_id) == before


# --- at the database, as app_rw ---------------------------------------------------------


def claims_of(account: Account) -> dict[str, str]:
    return {"tenant_id": account.tenant_id, "sub": account.user_id, "role": "authenticated"}


INSERT_INVITATION = (
    "INSERT INTO invitations (tenant_id, email, role, token_hash, invited_by, expires_at)"
    " VALUES (%s, 'x@example.com', 'owner', %s, %s, now() + interval '1 day')"
)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("SELECT count(*) FROM invitations", id="select"),
        pytest.param("UPDATE invitations SET accepted_at = NULL", id="update"),
        pytest.param("DELETE FROM invitations", id="delete"),
    ],
)
def test_app_rw_can_neither_read_nor_change_invitations(http, owner, statement):
    invite(http, owner, "member")
    with app_rw(claims_of(owner)) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_app_rw_inserts_invitations_only_for_its_tenant_and_as_itself(http, owner):
    other = signup(http, "Other")
    token_hash = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    refused = {
        "another-tenant": (other.tenant_id, owner.user_id),
        "as-someone-else": (owner.tenant_id, other.user_id),
    }
    for case, (tenant_id, invited_by) in refused.items():
        with (
            app_rw(claims_of(owner)) as conn,
            pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
        ):
            conn.execute(INSERT_INVITATION, (tenant_id, token_hash, invited_by))
            pytest.fail(case)
    with app_rw(claims_of(owner)) as conn:  # control: its own tenant, as itself
        row = (owner.tenant_id, token_hash, owner.user_id)
        assert conn.execute(INSERT_INVITATION, row).rowcount == 1


def test_invitation_accept_function_uses_the_token_once_without_any_claims(http, owner):
    """The cross-tenant path: no claims at all, exactly one row for the right hash, then
    none; nothing for a wrong hash."""
    invited = invite(http, owner, "viewer").json()
    token_hash = hashlib.sha256(mailed_token(owner, invited).encode()).hexdigest()
    sql = "SELECT tenant_id, email, role FROM app.invitation_accept(%s)"
    with app_rw() as conn:  # no claims
        assert conn.execute(sql, ("0" * 64,)).fetchall() == []
        found = conn.execute(sql, (token_hash,)).fetchall()
        assert found == [(uuid.UUID(owner.tenant_id), invited["email"], "viewer")]
        assert conn.execute(sql, (token_hash,)).fetchall() == []
