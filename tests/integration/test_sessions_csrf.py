"""Browser sessions and CSRF over real HTTP, with session state in the real Redis.

httpx will not send a `Secure` cookie over http://, so each request sets the Cookie header
itself, as a browser on https:// would. Writes are counted through the API with the
account's bearer token (its own tenant, under RLS) before and after a refused request.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie

import httpx
import pytest
import redis
from pydantic import ValidationError
from tests.support import httpclient
from tests.support.server import serve_in_thread
from tests.support.stack import reset_caches
from tests.support.users import PASSWORD, Account, answers, signup

from rampart.config import Settings

SESSION = "__Host-session"
CSRF = "__Host-csrf"


@dataclass
class Browser:
    """What a logged-in browser holds: two cookies, and the token its script sends."""

    account: Account
    session_id: str
    csrf_token: str

    def cookie(self, *, csrf_cookie: str | None = None) -> dict[str, str]:
        csrf = self.csrf_token if csrf_cookie is None else csrf_cookie
        return {"Cookie": f"{SESSION}={self.session_id}; {CSRF}={csrf}"}

    def writing(self, token: str | None = None) -> dict[str, str]:
        return {**self.cookie(), "X-CSRF-Token": token or self.csrf_token}


def set_cookies(response: httpx.Response) -> SimpleCookie:
    jar = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


def open_session(http: httpx.Client, account: Account) -> Browser:
    response = http.post(
        "/api/v1/auth/session", json={"email": account.email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    jar = set_cookies(response)
    return Browser(account, jar[SESSION].value, jar[CSRF].value)


@pytest.fixture
def http(api: str) -> Iterator[httpx.Client]:
    with httpclient.client(base_url=api, timeout=30) as client:
        yield client


@pytest.fixture
def browser(http: httpx.Client) -> Browser:
    return open_session(http, signup(http))


@pytest.fixture
def store(stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


def redis_key(session_id: str) -> str:
    return "rampart:session:" + hashlib.sha256(session_id.encode()).hexdigest()


def assessment_count(http: httpx.Client, account: Account) -> int:
    response = http.get("/api/v1/assessments?limit=100", headers=account.headers)
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def create_assessment(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return http.post("/api/v1/assessments", json={"answers": answers(3)}, headers=headers)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["trace_id"] == response.headers["x-request-id"]


# --- login ------------------------------------------------------------------------------


def test_a_session_login_sets_host_cookies_with_safe_attributes(http):
    account = signup(http)
    response = http.post(
        "/api/v1/auth/session", json={"email": account.email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    jar = set_cookies(response)
    session, csrf = jar[SESSION], jar[CSRF]
    for cookie in (session, csrf):
        assert cookie["secure"] is True
        assert cookie["path"] == "/"
        assert cookie["domain"] == ""  # __Host-: no Domain, this host only
        assert cookie["samesite"].lower() == "lax"
        assert cookie["max-age"] == "" and cookie["expires"] == ""  # idle timeout: server's
    assert session["httponly"] is True  # script never sees the session id
    assert csrf["httponly"] == ""  # script reads this one to echo it
    assert len(session.value) >= 40
    body = response.json()
    assert body["csrf_token"] == csrf.value
    assert body["idle_timeout_seconds"] == 3600
    assert (body["user_id"], body["tenant_id"]) == (account.user_id, account.tenant_id)
    assert "access_token" not in response.text and session.value not in response.text


def test_samesite_follows_the_setting(stack):
    os.environ["SESSION_COOKIE_SAMESITE"] = "none"
    reset_caches()
    try:
        with serve_in_thread() as url, httpclient.client(base_url=url, timeout=30) as http:
            account = signup(http)
            response = http.post(
                "/api/v1/auth/session", json={"email": account.email, "password": PASSWORD}
            )
            jar = set_cookies(response)
    finally:
        del os.environ["SESSION_COOKIE_SAMESITE"]
        reset_caches()
    assert jar[SESSION]["samesite"].lower() == "none"
    assert jar[CSRF]["samesite"].lower() == "none"
    assert jar[SESSION]["secure"] is True


def test_a_wrong_password_gets_401_and_no_cookie(http):
    account = signup(http)
    response = http.post(
        "/api/v1/auth/session", json={"email": account.email, "password": "not the password"}
    )
    assert_error(response, 401, "unauthorized")
    assert response.headers.get_list("set-cookie") == []


def test_login_with_session_true_on_the_token_endpoint_is_refused(http):
    """One way to get a cookie session (POST /auth/session); /auth/login stays bearer-only."""
    account = signup(http)
    response = http.post(
        "/api/v1/auth/login",
        json={"email": account.email, "password": PASSWORD, "session": True},
    )
    assert_error(response, 422, "validation_error")


def test_a_login_never_adopts_a_session_id_the_client_offers(http):
    """No session fixation: an id planted before login is not the one that gets logged in."""
    account = signup(http)
    planted = uuid.uuid4().hex
    response = http.post(
        "/api/v1/auth/session",
        json={"email": account.email, "password": PASSWORD},
        headers={"Cookie": f"{SESSION}={planted}"},
    )
    assert response.status_code == 201, response.text
    assert set_cookies(response)[SESSION].value != planted
    planted_me = http.get("/api/v1/me", headers={"Cookie": f"{SESSION}={planted}"})
    assert_error(planted_me, 401, "unauthorized")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_cross_site_simple_request_cannot_open_a_session(http, content_type):
    """Login CSRF: /auth/session is CSRF-exempt (no session yet), so a hostile page must not
    be able to log the victim's browser into the attacker's account. A form or a no-cors
    fetch can only send these content types without a CORS preflight; the route reads JSON
    only when the request says `application/json` (FastAPI's strict content type), which a
    cross-site page cannot send unless CORS_ORIGINS lets it."""
    account = signup(http)
    body = f'{{"email": "{account.email}", "password": "{PASSWORD}"}}'.encode()
    headers = {"content-type": content_type} if content_type else {}
    response = http.post("/api/v1/auth/session", content=body, headers=headers)
    assert_error(response, 422, "validation_error")
    assert response.headers.get_list("set-cookie") == []


# --- reads and writes with the cookie --------------------------------------------------


def test_the_cookie_authenticates_reads_without_a_csrf_token(http, browser):
    me = http.get("/api/v1/me", headers=browser.cookie())
    assert me.status_code == 200, me.text
    assert me.json()["user"]["id"] == browser.account.user_id
    again = http.get("/api/v1/auth/session", headers=browser.cookie())
    assert again.status_code == 200
    assert again.json()["csrf_token"] == browser.csrf_token


def test_a_cookie_write_with_its_csrf_token_goes_through(http, browser):
    response = create_assessment(http, browser.writing())
    assert response.status_code == 202, response.text
    assert assessment_count(http, browser.account) == 1


def _other_token(http: httpx.Client) -> str:
    return open_session(http, signup(http)).csrf_token


CSRF_FAILURES = {
    "no header": lambda b, http: b.cookie(),
    "random token": lambda b, http: b.writing(f"{uuid.uuid4().hex}.{uuid.uuid4().hex}"),
    "no dot": lambda b, http: b.writing(b.csrf_token.replace(".", "")),
    "token cut short": lambda b, http: b.writing(b.csrf_token[:-2]),
    # Signed for another session, and planted in our CSRF cookie too: the HMAC binds the
    # token to the session id, so a double submit of someone else's token fails.
    "another session's token": lambda b, http: (
        lambda other: {**b.cookie(csrf_cookie=other), "X-CSRF-Token": other}
    )(_other_token(http)),
    "header and cookie differ": lambda b, http: {
        **b.cookie(csrf_cookie=_other_token(http)),
        "X-CSRF-Token": b.csrf_token,
    },
    "no csrf cookie": lambda b, http: {
        "Cookie": f"{SESSION}={b.session_id}",
        "X-CSRF-Token": b.csrf_token,
    },
    "non-ascii header": lambda b, http: {**b.cookie(), "X-CSRF-Token": "tök\xe9n.\xff"},
}


@pytest.mark.parametrize("case", list(CSRF_FAILURES))
def test_a_cookie_write_without_its_csrf_token_is_403_and_writes_nothing(http, browser, case):
    headers = CSRF_FAILURES[case](browser, http)
    if case == "non-ascii header":  # httpx encodes str headers as ASCII; send latin-1 bytes
        headers = {k: v.encode("latin-1") for k, v in headers.items()}
    response = create_assessment(http, headers)
    assert_error(response, 403, "csrf_failed")
    assert assessment_count(http, browser.account) == 0


def test_every_write_method_is_checked_not_only_post(http, browser):
    """DELETE and PATCH go through the same check (the route walk covers every route)."""
    created = create_assessment(http, browser.writing())
    assessment_id = created.json()["id"]
    refused = http.delete(f"/api/v1/assessments/{assessment_id}", headers=browser.cookie())
    assert_error(refused, 403, "csrf_failed")
    role = http.patch(
        f"/api/v1/users/{browser.account.user_id}/role",
        json={"role": "owner"},
        headers=browser.cookie(),
    )
    assert_error(role, 403, "csrf_failed")
    assert http.get(f"/api/v1/assessments/{assessment_id}", headers=browser.cookie()).is_success


def test_bearer_writes_need_no_csrf_token_even_with_a_cookie_beside(http, browser):
    account = browser.account
    assert create_assessment(http, account.headers).status_code == 202
    # The bearer token decides when both are sent; a browser never adds one by itself.
    assert create_assessment(http, {**account.headers, **browser.cookie()}).status_code == 202
    assert assessment_count(http, account) == 2


# --- logout, timeout, storage -----------------------------------------------------------


def test_logout_revokes_the_session_server_side(http, browser, store):
    assert store.exists(redis_key(browser.session_id))
    response = http.post("/api/v1/auth/logout", headers=browser.writing())
    assert response.status_code == 204, response.text
    cleared = set_cookies(response)
    for name in (SESSION, CSRF):
        assert cleared[name].value == "" and cleared[name]["max-age"] == "0"
        assert cleared[name]["secure"] is True and cleared[name]["path"] == "/"
    assert not store.exists(redis_key(browser.session_id))
    # A copy of the cookie kept anywhere authenticates nothing any more.
    assert_error(http.get("/api/v1/me", headers=browser.cookie()), 401, "unauthorized")
    assert_error(create_assessment(http, browser.writing()), 401, "unauthorized")
    # The bearer token of the same user is another credential and is unaffected.
    assert http.get("/api/v1/me", headers=browser.account.headers).status_code == 200


def test_logout_without_the_csrf_token_is_refused_and_the_session_lives(http, browser):
    assert_error(http.post("/api/v1/auth/logout", headers=browser.cookie()), 403, "csrf_failed")
    assert http.get("/api/v1/me", headers=browser.cookie()).status_code == 200


def test_logout_with_a_bearer_token_says_there_is_no_session_to_revoke(http, browser):
    response = http.post("/api/v1/auth/logout", headers=browser.account.headers)
    assert_error(response, 400, "not_a_session")


def test_the_idle_timeout_starts_again_on_every_use(http, browser, store):
    key = redis_key(browser.session_id)
    assert 3590 <= store.ttl(key) <= 3600
    store.expire(key, 30)  # as if it had been idle for 59.5 minutes
    assert http.get("/api/v1/me", headers=browser.cookie()).status_code == 200
    assert store.ttl(key) >= 3590
    store.pexpire(key, 1)  # idle past the timeout
    time.sleep(0.05)
    assert_error(http.get("/api/v1/me", headers=browser.cookie()), 401, "unauthorized")


def test_redis_holds_only_a_digest_of_the_session_id(browser, store):
    keys = [k.decode() for k in store.scan_iter("rampart:session:*", count=1000)]
    assert redis_key(browser.session_id) in keys
    assert not any(browser.session_id in k for k in keys)
    assert browser.session_id.encode() not in store.get(redis_key(browser.session_id))


BAD_COOKIES = [
    pytest.param(b"__Host-session=" + uuid.uuid4().hex.encode(), id="unknown-id"),
    pytest.param(b"__Host-session=", id="empty"),
    pytest.param(b'__Host-session="quoted\\"value"', id="quoted"),
    pytest.param(b"__Host-session=" + b"a" * 4000, id="4k"),
    pytest.param(b"__Host-session=\xc3\xa9\xffx", id="non-ascii"),
    pytest.param(b"__Host-session=a; __Host-session=b", id="twice"),
]


@pytest.mark.parametrize("cookie", BAD_COOKIES)
def test_a_bad_session_cookie_is_401_never_500(http, cookie):
    response = http.get("/api/v1/me", headers={"Cookie": cookie})
    assert_error(response, 401, "unauthorized")


# --- Redis down ---------------------------------------------------------------------------


def test_with_redis_down_sessions_fail_closed_with_503_and_bearer_keeps_working(
    http, browser, stack
):
    if stack.redis is None:
        pytest.skip("needs the embedded Redis to stop it")
    account = browser.account
    stack.redis.stop()
    try:
        read = http.get("/api/v1/me", headers=browser.cookie())
        assert_error(read, 503, "sessions_unavailable")
        assert int(read.headers["retry-after"]) > 0
        assert_error(create_assessment(http, browser.writing()), 503, "sessions_unavailable")
        login = http.post(
            "/api/v1/auth/session", json={"email": account.email, "password": PASSWORD}
        )
        assert_error(login, 503, "sessions_unavailable")
        assert login.headers.get_list("set-cookie") == []
        assert http.get("/api/v1/me", headers=account.headers).status_code == 200
        assert create_assessment(http, account.headers).status_code == 202
    finally:
        stack.redis.start()


# --- settings -----------------------------------------------------------------------------

PROD = {
    "env": "production",
    "jwt_secret": "j" * 40,
    "database_url": "postgresql://x",
    "redis_url": "redis://x",
}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "SESSION_SECRET: not set"),
        ("short-secret", "SESSION_SECRET: shorter than 32"),
        ("j" * 40, "SESSION_SECRET: the same as JWT_SECRET"),
    ],
)
def test_outside_dev_a_weak_session_secret_is_refused_by_name(monkeypatch, value, problem):
    monkeypatch.delenv("SESSION_SECRET", raising=False)
    extra = {} if value is None else {"session_secret": value}
    with pytest.raises(ValidationError, match=problem):
        Settings(**PROD, **extra)


def test_outside_dev_a_strong_session_secret_is_accepted():
    try:
        Settings(**PROD, session_secret="s" * 40)
    except ValidationError as exc:  # other settings may have their own demands
        assert "SESSION_SECRET" not in str(exc)
