"""Email identity over real HTTP (issue 9, findings 3 and 4).

Finding 3: one address, many spellings. `Alice@Example.COM`, `ａｌｉｃｅ@ｅｘａｍｐｌｅ．ｃｏｍ`
and `alice@example。com` are one mailbox; they must be one account, one per-(IP, email)
login bucket, one invitation check. Before the fix the limiter keyed on the lower-cased
raw string, so each spelling got its own five tries, and signup took an equivalent
spelling as a new address.

Finding 4: no account oracle, no squatting. Signup, invite and accept answer the same
whether or not the address has an account (the address's owner gets a mail instead); the
invitation token goes to the invitee's mailbox only (an inviter holding it could accept
for someone else's address); an account whose address was never confirmed holds it only
until someone else signs up with it; an unconfirmed account may read, not write.

The mails are real: sent over SMTP by the real mail job to the capture server of the test
stack (tests/support/mail.py). Ground truth is read as the Postgres superuser.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import redis
from tests.support.db import su_rows, su_value
from tests.support.mail import count_mails, deliver, link_token, mails_to, wait_for_mail
from tests.support.server import serving
from tests.support.users import PASSWORD, answers, signup

from rampart.kit.security.ratelimit import KEY_PREFIX

OTHER_PASSWORD = "a different password, long enough"  # pragma: allowlist secret
VERIFY_SUBJECT = "Confirm your email address"
SOMEONE_TRIED = "Someone tried to sign up with your address"
INVITED = "You are invited to"
ALREADY_AN_ACCOUNT = "already has a Rampart account"


def fullwidth(text: str) -> str:
    """ASCII letters, digits and `-._` as their full-width forms (NFKC maps them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() or c in "-._" else c for c in text)


def spellings(email: str) -> list[str]:
    """20 different strings, every one a valid address, all one mailbox."""
    local, domain = email.split("@")
    name, tld = domain.rsplit(".", 1)
    forms = [
        f"{local}@{domain}",
        f"{local.upper()}@{domain}",
        f"{local.title()}@{domain.upper()}",
        f"{local}@{domain.upper()}",
        f"{fullwidth(local)}@{domain}",
        f"{fullwidth(local.upper())}@{domain}",
        f"{local}@{fullwidth(domain)}",
        f"{local}@{name}。{tld}",
        f"{local}@{name}．{tld}",
        f"{local}@{name.upper()}。{tld.upper()}",
        f"{fullwidth(local)}@{fullwidth(domain)}",
        f"{fullwidth(local)}@{name}。{tld}",
        f"{local.upper()}@{fullwidth(domain.upper())}",
        f"{local[:4]}{fullwidth(local[4:])}@{domain}",
        f"{fullwidth(local[:4])}{local[4:]}@{domain}",
        f"{local[:4].upper()}{local[4:]}@{name}．{tld.upper()}",
        f"{local}@{fullwidth(name)}.{tld}",
        f"{local}@{name}.{fullwidth(tld)}",
        f"{fullwidth(local.upper())}@{fullwidth(name.upper())}。{tld}",
        f"{local.swapcase()}@{domain.swapcase()}",
    ]
    assert len(set(forms)) == 20
    return forms


@pytest.fixture
def empty_buckets(stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])

    def clear() -> None:
        for key in client.scan_iter(f"{KEY_PREFIX}*"):
            client.delete(key)

    clear()
    yield client
    clear()
    client.close()


def login(http: httpx.Client, email: str, password: str = "wrong password, surely") -> int:
    response = http.post("/api/v1/auth/login", json={"email": email, "password": password})
    return response.status_code


def sign_up(http: httpx.Client, email: str, password: str = OTHER_PASSWORD) -> httpx.Response:
    return http.post(
        "/api/v1/auth/signup",
        json={"email": email, "password": password, "tenant_name": "Somebody"},
    )


def without_trace(response: httpx.Response) -> tuple[int, object]:
    """Status and body, minus the per-request trace id of an error envelope."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = {**body, "error": {k: v for k, v in body["error"].items() if k != "trace_id"}}
    return response.status_code, body


def live_users_with(superuser: str, *emails: str) -> int:
    return su_value(
        superuser,
        "SELECT count(*) FROM users WHERE removed_at IS NULL AND email = ANY(%s)",
        list(emails),
    )


# --- finding 3: one address, many spellings ------------------------------------------------


def test_twenty_equivalent_spellings_of_one_email_exhaust_one_login_bucket(empty_buckets):
    with serving(
        RATE_LIMIT_LOGIN_PER_IP_EMAIL="5/15 minutes", RATE_LIMIT_LOGIN_PER_IP="1000/minute"
    ) as http:
        account = signup(http)
        for key in empty_buckets.scan_iter(f"{KEY_PREFIX}*"):  # the signup's own login
            empty_buckets.delete(key)
        statuses = [login(http, spelling) for spelling in spellings(account.email)]
        assert statuses == [401] * 5 + [429] * 15, statuses
        # The bucket is the account's, whatever the spelling: the right password waits too.
        assert login(http, account.email, PASSWORD) == 429


def test_every_equivalent_spelling_logs_in_to_the_one_account(http):
    account = signup(http)
    for spelling in spellings(account.email):
        response = http.post("/api/v1/auth/login", json={"email": spelling, "password": PASSWORD})
        assert response.status_code == 200, (spelling, response.text)
        me = http.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
        )
        assert me.json()["user"]["id"] == account.user_id, spelling


def test_signup_with_an_equivalent_spelling_is_refused_like_the_same_spelling(http, superuser):
    account = signup(http)
    same = sign_up(http, account.email)
    equivalent = sign_up(http, fullwidth(account.email.upper()))
    assert without_trace(equivalent) == without_trace(same)
    # Nothing was created: one live account, and the second password opens nothing.
    variant = fullwidth(account.email.upper())
    assert live_users_with(superuser, account.email, variant) == 1
    assert login(http, variant, OTHER_PASSWORD) == 401
    assert login(http, variant, PASSWORD) == 200


def test_inviting_an_equivalent_spelling_of_a_member_is_refused_like_the_same_spelling(http):
    owner = signup(http, "Inviting")

    def invite(email: str) -> httpx.Response:
        return http.post(
            "/api/v1/invitations", json={"email": email, "role": "member"}, headers=owner.headers
        )

    same, equivalent = invite(owner.email), invite(fullwidth(owner.email))
    assert same.status_code == 409, same.text
    assert without_trace(equivalent) == without_trace(same)


# --- finding 4: no oracle, no squatting ------------------------------------------------------


def test_signup_answers_the_same_whether_or_not_the_address_has_an_account(http, superuser):
    """The owner of a taken address gets a mail; a new address gets its confirmation link."""
    taken = signup(http)
    new_email = f"new-{uuid.uuid4().hex[:12]}@example.com"
    for_taken = sign_up(http, taken.email)
    for_new = sign_up(http, new_email)
    assert for_taken.status_code == 202, for_taken.text
    assert without_trace(for_taken) == without_trace(for_new)
    assert set(for_new.json()) == {"message"}

    deliver(taken.tenant_id)
    notice = wait_for_mail(taken.email, SOMEONE_TRIED)
    assert "nothing was changed" in notice.text and "token=" not in notice.text
    assert live_users_with(superuser, taken.email) == 1


def test_the_invite_response_holds_no_token_the_invitee_gets_it_by_mail(http, superuser):
    """An inviter holding the token could accept it for someone else's address and, with
    it, take the address before its owner signs up."""
    owner = signup(http, "Inviting")
    email = f"invitee-{uuid.uuid4().hex[:12]}@example.com"
    invited = http.post(
        "/api/v1/invitations", json={"email": email, "role": "member"}, headers=owner.headers
    )
    assert invited.status_code == 201, invited.text
    assert "token" not in invited.json()
    assert set(invited.json()) == {"id", "email", "role", "expires_at"}

    deliver(owner.tenant_id)
    mail = wait_for_mail(email, INVITED)
    assert "Inviting" in mail.text and "member" in mail.text
    accepted = http.post(
        "/api/v1/invitations/accept", json={"token": link_token(mail), "password": OTHER_PASSWORD}
    )
    assert accepted.status_code == 202, accepted.text
    # Accepting with the mailed token proves the address: a confirmed member, who logs in.
    assert login(http, email, OTHER_PASSWORD) == 200
    verified = su_rows(
        superuser,
        "SELECT email_verified_at IS NOT NULL, tenant_id FROM users WHERE email = %s",
        email,
    )
    assert verified == [(True, uuid.UUID(owner.tenant_id))]


def test_accepting_answers_the_same_whether_or_not_the_address_has_an_account(http, superuser):
    owner = signup(http, "Inviting")
    elsewhere = signup(http, "Elsewhere")
    new_email = f"invitee-{uuid.uuid4().hex[:12]}@example.com"
    for email in (elsewhere.email, new_email):
        response = http.post(
            "/api/v1/invitations", json={"email": email, "role": "member"}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        assert "token" not in response.json()
    deliver(owner.tenant_id)
    answers = {}
    for email in (elsewhere.email, new_email):
        token = link_token(wait_for_mail(email, INVITED))
        answers[email] = http.post(
            "/api/v1/invitations/accept", json={"token": token, "password": OTHER_PASSWORD}
        )
    assert answers[elsewhere.email].status_code == 202, answers[elsewhere.email].text
    assert without_trace(answers[elsewhere.email]) == without_trace(answers[new_email])

    # The existing account is untouched and its owner is told; the new one was made.
    assert live_users_with(superuser, elsewhere.email) == 1
    assert login(http, elsewhere.email, PASSWORD) == 200
    assert login(http, elsewhere.email, OTHER_PASSWORD) == 401
    deliver(owner.tenant_id)
    assert ALREADY_AN_ACCOUNT in wait_for_mail(elsewhere.email, "invitation").text
    assert login(http, new_email, OTHER_PASSWORD) == 200


def test_an_unconfirmed_account_is_taken_over_by_whoever_confirms_the_address(http, superuser):
    """Emails were never verified: a squatter could sign up with someone's address first.
    Now an unconfirmed account holds its address only until the next signup with it; the
    account that confirms it keeps it."""
    email = f"victim-{uuid.uuid4().hex[:12]}@example.com"
    squat = sign_up(http, email, OTHER_PASSWORD)
    assert squat.status_code == 202, squat.text
    squatter = http.post("/api/v1/auth/login", json={"email": email, "password": OTHER_PASSWORD})
    assert squatter.status_code == 200, squatter.text
    squatter_headers = {"Authorization": f"Bearer {squatter.json()['access_token']}"}

    owners = sign_up(http, email, PASSWORD)
    assert without_trace(owners) == without_trace(squat)
    # The squatter's account is gone: its token and its password open nothing.
    assert http.get("/api/v1/me", headers=squatter_headers).status_code == 401
    assert login(http, email, OTHER_PASSWORD) == 401
    # The owner follows the newest link, and the address is theirs.
    tenant_id = su_value(
        superuser, "SELECT tenant_id FROM users WHERE email = %s AND removed_at IS NULL", email
    )
    deliver(str(tenant_id))
    link = wait_for_mail(email, VERIFY_SUBJECT, after=count_mails(email, VERIFY_SUBJECT) - 1)
    confirmed = http.post("/api/v1/auth/verify-email", json={"token": link_token(link)})
    assert confirmed.status_code == 200, confirmed.text
    assert login(http, email, PASSWORD) == 200
    # A confirmed account is never taken over: the next signup changes nothing.
    assert without_trace(sign_up(http, email, OTHER_PASSWORD)) == without_trace(squat)
    assert login(http, email, PASSWORD) == 200 and login(http, email, OTHER_PASSWORD) == 401
    assert live_users_with(superuser, email) == 1


def test_an_unconfirmed_user_may_read_but_not_write_until_they_confirm(http):
    email = f"new-{uuid.uuid4().hex[:12]}@example.com"
    assert sign_up(http, email, PASSWORD).status_code == 202
    token = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    me = http.get("/api/v1/me", headers=headers)
    assert me.status_code == 200 and me.json()["user"]["email_verified"] is False
    assert http.get("/api/v1/assessments", headers=headers).status_code == 200

    writes = [
        http.post("/api/v1/assessments", json={"answers": answers()}, headers=headers),
        http.post(
            "/api/v1/invitations",
            json={"email": f"x-{uuid.uuid4().hex}@example.com", "role": "member"},
            headers=headers,
        ),
    ]
    for response in writes:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "email_not_verified"

    deliver(me.json()["tenant"]["id"])
    link = link_token(wait_for_mail(email, VERIFY_SUBJECT))
    assert http.post("/api/v1/auth/verify-email", json={"token": link}).status_code == 200
    assert http.get("/api/v1/me", headers=headers).json()["user"]["email_verified"] is True
    invited = http.post(
        "/api/v1/invitations",
        json={"email": f"x-{uuid.uuid4().hex}@example.com", "role": "member"},
        headers=headers,
    )
    assert invited.status_code == 201, invited.text


def test_a_confirmation_link_works_once_until_it_expires_and_only_its_hash_is_stored(
    http, superuser
):
    email = f"new-{uuid.uuid4().hex[:12]}@example.com"
    assert sign_up(http, email, PASSWORD).status_code == 202
    [(tenant_id, user_id)] = su_rows(
        superuser, "SELECT tenant_id, id FROM users WHERE email = %s AND removed_at IS NULL", email
    )
    deliver(str(tenant_id))
    token = link_token(wait_for_mail(email, VERIFY_SUBJECT))
    [row] = su_rows(
        superuser,
        "SELECT token_hash, expires_at - created_at FROM email_verifications WHERE user_id = %s",
        user_id,
    )
    [every_column] = su_rows(
        superuser, "SELECT * FROM email_verifications WHERE user_id = %s", user_id
    )
    stored = " ".join(str(v) for v in every_column)
    assert row[0] == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    assert abs(row[1] - timedelta(hours=24)) < timedelta(seconds=5)  # the TTL's default

    def verify(value: str) -> httpx.Response:
        return http.post("/api/v1/auth/verify-email", json={"token": value})

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert verify(forged).json()["error"]["code"] == "verification_invalid"
    assert verify(token).status_code == 200
    used = verify(token)
    assert used.status_code == 400 and used.json()["error"]["code"] == "verification_invalid"

    # An expired link gets the very same answer, and confirms nothing.
    other = f"new-{uuid.uuid4().hex[:12]}@example.com"
    assert sign_up(http, other, PASSWORD).status_code == 202
    other_tenant = su_value(
        superuser, "SELECT tenant_id FROM users WHERE email = %s AND removed_at IS NULL", other
    )
    deliver(str(other_tenant))
    expired = link_token(wait_for_mail(other, VERIFY_SUBJECT))
    su_rows(
        superuser,
        "UPDATE email_verifications SET expires_at = now() - interval '1 second'"
        " WHERE tenant_id = %s",
        other_tenant,
    )
    assert without_trace(verify(expired)) == without_trace(used)
    verified_at = "SELECT email_verified_at FROM users WHERE email = %s"
    assert su_rows(superuser, verified_at, other) == [(None,)]


def test_signup_succeeds_while_the_mail_server_is_down_and_the_mail_goes_out_later(http):
    """The mail is a job committed with the account: SMTP down fails no request; the job's
    retry sends it once the server is back."""
    from tests.support.jobs import jobs, run_work
    from tests.support.stack import reset_caches

    from rampart.accounts import service
    from rampart.devstack.ports import free_port
    from rampart.kit.jobs.runner import TransientJobError

    email = f"new-{uuid.uuid4().hex[:12]}@example.com"
    assert sign_up(http, email, PASSWORD).status_code == 202
    token = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    tenant_id = http.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    ).json()["tenant"]["id"]
    (job,) = jobs(tenant_id, types=(service.MAIL_JOB,))

    working = os.environ["SMTP_URL"]
    os.environ["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nobody listens there
    reset_caches()
    try:
        with pytest.raises(TransientJobError):
            run_work(str(job.id), tenant_id, service.mail_step, task=service.MAIL_JOB)
    finally:
        os.environ["SMTP_URL"] = working
        reset_caches()
    assert mails_to(email) == []
    # The retry (Celery delivers the job again after a backoff), with the server back.
    assert run_work(str(job.id), tenant_id, service.mail_step, task=service.MAIL_JOB) == (
        "succeeded"
    )
    assert wait_for_mail(email, VERIFY_SUBJECT)
