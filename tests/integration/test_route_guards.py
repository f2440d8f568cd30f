"""Every route of the app, walked over real HTTP: each one requires authentication unless
it is on PUBLIC, and each POST/PUT/PATCH/DELETE refuses a cookie session without its CSRF
token unless it is on CSRF_EXEMPT. A new route that is neither fails the build (seed 001
§4.6, done as a test instead of a Semgrep rule).

The routes come from `create_app()` itself, flattened with FastAPI's own
`fastapi.routing.iter_route_contexts` (FastAPI 0.165 wraps included routers, so
`app.routes` no longer lists their paths; the OpenAPI schema would miss routes with
`include_in_schema=False`). The checks are behavioural, not a reading of
the code: each route is called without credentials, with an unknown session cookie, with a
live session cookie and no CSRF token, and with a bearer token and no CSRF token.

To add a route: if it needs a login, nothing to do (authentication through
`CurrentPrincipal` checks the CSRF token). If it is public, add it to PUBLIC with the
reason; if it is also a write, add it to CSRF_EXEMPT with what authenticates it instead.
An authenticated write refuses a caller whose email address is not confirmed
(`VerifiedActor`, 403 `email_not_verified`) unless it is on UNVERIFIED_MAY_WRITE.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from tests.support import httpclient
from tests.support.users import PASSWORD, Account, signup, unverified

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION = "__Host-session"
CSRF = "__Host-csrf"

# Anyone may call these without a bearer token or a session cookie. One line each, with why.
PUBLIC: dict[tuple[str, str], str] = {
    # Probes and scraping: load balancers and Prometheus hold no user credentials.
    ("GET", "/health"): "liveness probe, touches nothing",
    ("GET", "/ready"): "readiness probe (Postgres, Redis)",
    # API documentation: the schema is not a secret; it lists routes, not data.
    ("GET", "/openapi.json"): "OpenAPI schema",
    ("GET", "/docs"): "Swagger UI",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI helper page",
    ("GET", "/redoc"): "ReDoc",
    ("GET", "/docs/assets/{name}"): "Swagger UI's and ReDoc's script, style and icon",
    # Before a login there is nothing to authenticate with.
    ("GET", "/api/v1/assessments/questionnaire"): "the same questions for everyone",
    ("POST", "/api/v1/auth/signup"): "creates the account",
    ("POST", "/api/v1/auth/login"): "credentials in the body → bearer token",
    ("POST", "/api/v1/auth/session"): "credentials in the body → cookie session",
    ("POST", "/api/v1/invitations/accept"): "the one-time invitation token is the credential",
    ("POST", "/api/v1/auth/verify-email"): "the one-time token mailed at signup is the credential",
    # Machine-to-machine: authenticated by a signature, not by a user.
    ("POST", "/api/v1/webhooks/stripe"): "Stripe-Signature (HMAC) is the authentication",
    ("POST", "/api/v1/internal/alerts"): "Alertmanager: bearer ALERT_WEBHOOK_TOKEN, not a user",
}

# Writes that no cookie session authenticates, so there is no session whose CSRF token
# could be asked for. Each must also be PUBLIC: a write that needs a login and skips the
# CSRF check would be a hole, and the test says so.
CSRF_EXEMPT: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/signup"): "no session exists yet",
    ("POST", "/api/v1/auth/login"): "no session exists yet; answers a bearer token",
    ("POST", "/api/v1/auth/session"): "no session exists yet; it creates one (new id)",
    ("POST", "/api/v1/invitations/accept"): "the body's one-time token, not a cookie",
    ("POST", "/api/v1/auth/verify-email"): "the body's one-time token, not a cookie",
    ("POST", "/api/v1/webhooks/stripe"): "called by Stripe, never by a browser",
    ("POST", "/api/v1/internal/alerts"): "called by Alertmanager; a cookie never authenticates it",
}

# Authenticated writes open to a caller whose email address is not confirmed yet.
UNVERIFIED_MAY_WRITE: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/logout"): "ending one's own session changes nothing else",
}

Route = tuple[str, str]  # (method, path template)


def app_routes() -> list[Route]:
    """Every (method, path) the app serves, HEAD aside (Starlette adds it to each GET)."""
    from rampart.app import create_app

    routes: list[Route] = []
    for route in iter_route_contexts(create_app().routes):
        assert route.methods, f"{route.path!r}: a route without methods (a mount?); walk it too"
        routes += [(m, route.path) for m in sorted(route.methods) if m != "HEAD"]
    return routes


def concrete(path: str) -> str:
    """The template with every path parameter filled by a fresh id (nobody's row)."""
    return re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path)


def error_code(response: httpx.Response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def describe(response: httpx.Response) -> str:
    return f"{response.status_code} {error_code(response) or response.text[:80]!r}"


@pytest.fixture(scope="module")
def routes(stack) -> list[Route]:
    return app_routes()


@pytest.fixture(scope="module")
def http(api: str) -> Iterator[httpx.Client]:
    with httpclient.client(base_url=api, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def account(http: httpx.Client) -> Account:
    return signup(http, "Route walker")


@pytest.fixture(scope="module")
def session_cookie(http: httpx.Client, account: Account) -> str:
    """A live session's cookies (set by hand: httpx sends no Secure cookie over http)."""
    response = http.post(
        "/api/v1/auth/session", json={"email": account.email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    token = response.json()["csrf_token"]
    return f"{SESSION}={response.cookies[SESSION]}; {CSRF}={token}"


def call(http: httpx.Client, route: Route, headers: dict[str, str] | None = None):
    method, path = route
    return http.request(method, concrete(path), headers=headers or {})


def assert_no_problems(problems: list[str], advice: str) -> None:
    assert not problems, "\n".join([*problems, advice])


def test_the_lists_name_only_routes_that_exist(routes):
    served = set(routes)
    stale = [f"{m} {p}" for m, p in [*PUBLIC, *CSRF_EXEMPT] if (m, p) not in served]
    assert_no_problems(stale, "remove these from PUBLIC / CSRF_EXEMPT (no such route)")


def test_every_csrf_exempt_route_is_a_public_write(routes):
    problems = [
        f"{m} {p}: CSRF-exempt but " + ("not a write" if m not in WRITE_METHODS else "not public")
        for m, p in CSRF_EXEMPT
        if m not in WRITE_METHODS or (m, p) not in PUBLIC
    ]
    assert_no_problems(problems, "a route that needs a login must check the CSRF token")


def test_every_route_not_public_refuses_requests_without_credentials(http, routes):
    unknown_session = {"Cookie": f"{SESSION}={uuid.uuid4().hex}"}
    problems = []
    for route in routes:
        if route in PUBLIC:
            continue
        for label, headers in (("no credentials", {}), ("an unknown session", unknown_session)):
            response = call(http, route, headers)
            if response.status_code != 401 or error_code(response) != "unauthorized":
                problems.append(f"{route[0]} {route[1]} with {label}: {describe(response)}")
    assert_no_problems(
        problems, "require a login (CurrentPrincipal), or add the route to PUBLIC with why"
    )


def test_every_public_route_answers_without_asking_for_a_login(http, routes):
    """PUBLIC holds no route that in fact requires a login (it would hide a missing one)."""
    problems = []
    for route in routes:
        if route in PUBLIC:
            response = call(http, route)
            if error_code(response) == "unauthorized" or response.status_code >= 500:
                problems.append(f"{route[0]} {route[1]}: {describe(response)}")
    assert_no_problems(problems, "remove it from PUBLIC, or fix the route")


def test_every_write_refuses_a_cookie_session_without_its_csrf_token(http, routes, session_cookie):
    problems = []
    for route in routes:
        if route[0] not in WRITE_METHODS or route in CSRF_EXEMPT:
            continue
        response = call(http, route, {"Cookie": session_cookie})
        if response.status_code != 403 or error_code(response) != "csrf_failed":
            problems.append(f"{route[0]} {route[1]}: {describe(response)}")
    assert_no_problems(
        problems,
        "authenticate the route with CurrentPrincipal (it checks X-CSRF-Token for cookie "
        "sessions), or add it to CSRF_EXEMPT (and PUBLIC) with why",
    )
    # The session is still alive: the walk was refused, not logged out or broken.
    assert http.get("/api/v1/me", headers={"Cookie": session_cookie}).status_code == 200


def test_no_write_asks_a_bearer_token_for_a_csrf_token(http, routes, account):
    problems = []
    for route in routes:
        if route[0] in WRITE_METHODS and route not in CSRF_EXEMPT:
            response = call(http, route, account.headers)
            if response.status_code == 401 or error_code(response) == "csrf_failed":
                problems.append(f"{route[0]} {route[1]}: {describe(response)}")
    assert_no_problems(problems, "bearer requests need no CSRF token")


def test_every_authenticated_write_refuses_a_caller_whose_email_is_not_confirmed(http, routes):
    """An account whose address nobody proved may read, not write (a squatter's account
    must not become a working one): each authenticated write answers 403
    `email_not_verified`, whatever its body, unless it is on UNVERIFIED_MAY_WRITE."""
    from tests.integration.test_uploads import BOUNDARY, one_file, pdf

    caller = unverified(http, "Unconfirmed walker")
    # The upload route reads its body before it asks who calls (no connection is held while
    # a file streams in): it needs a valid one to get that far.
    upload = {
        "content": one_file(pdf()),
        "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    }
    bodies = {("POST", "/api/v1/assessments/{assessment_id}/evidence"): upload}
    problems = []
    for route in routes:
        if route[0] not in WRITE_METHODS or route in PUBLIC or route in UNVERIFIED_MAY_WRITE:
            continue
        body = bodies.get(route, {})
        response = http.request(
            route[0],
            concrete(route[1]),
            content=body.get("content"),
            headers=caller.headers | body.get("headers", {}),
        )
        if response.status_code != 403 or error_code(response) != "email_not_verified":
            problems.append(f"{route[0]} {route[1]}: {describe(response)}")
    assert_no_problems(
        problems, "take VerifiedActor in the route, or add it to UNVERIFIED_MAY_WRITE with why"
    )
    assert http.get("/api/v1/me", headers=caller.headers).status_code == 200  # reads work
