"""Security headers on every response and CORS for exact origins, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from pydantic import ValidationError
from tests.integration.test_rate_limits import empty_buckets, serving  # noqa: F401
from tests.support import httpclient
from tests.support.server import serve_app
from tests.support.users import PASSWORD, answers, signup

from rampart.config import Settings

API_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
HSTS = "max-age=63072000; includeSubDomains"
ORIGIN = "https://app.example.com"
CORS_REQUEST_HEADERS = "authorization, content-type, x-csrf-token, x-request-id, traceparent"


def assert_api_headers(response: httpx.Response) -> None:
    for name, value in API_HEADERS.items():
        assert response.headers.get(name) == value, (response.status_code, name)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def varies_by_origin(response: httpx.Response) -> bool:
    values = ",".join(response.headers.get_list("vary")).lower()
    return "origin" in {v.strip() for v in values.split(",")}


def test_every_kind_of_response_carries_the_security_headers(client):
    account = signup(client)
    big = b"x" * 2_000_000
    responses = {
        "ok": client.get("/health"),
        "created": client.post(
            "/api/v1/auth/signup",
            json={
                "email": f"h-{time.time_ns()}@example.com",
                "password": PASSWORD,
                "tenant_name": "H",
            },
        ),
        "accepted": client.post(
            "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
        ),
        "unauthorized": client.get("/api/v1/me"),
        "not_found": client.get("/no/such/route"),
        "method_not_allowed": client.delete("/health"),
        "validation": client.post("/api/v1/auth/login", json={"email": "nope"}),
        "too_large": client.post(
            "/api/v1/auth/login", content=big, headers={"content-type": "application/json"}
        ),
        "metrics_is_not_public": client.get("/metrics"),
    }
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {
        "ok": 200,
        "created": 202,
        "accepted": 202,
        "unauthorized": 401,
        "not_found": 404,
        "method_not_allowed": 405,
        "validation": 422,
        "too_large": 413,
        "metrics_is_not_public": 404,
    }
    for response in responses.values():
        assert_api_headers(response)
        assert "strict-transport-security" not in response.headers  # ENV=test


def test_a_rate_limited_answer_carries_the_security_headers():
    with serving(RATE_LIMIT_DEFAULT_PER_IP="1/minute") as http:
        http.get("/no/such/route")
        response = http.get("/no/such/route")
        assert response.status_code == 429
        assert_api_headers(response)


@contextmanager
def serve_with_a_failing_route() -> Iterator[str]:
    """The real app plus one route that raises, served by uvicorn on a real socket."""
    from rampart.app import create_app

    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with serve_app(app) as url:
        yield url


def test_the_last_resort_500_carries_the_security_headers(stack):
    with serve_with_a_failing_route() as url:
        response = httpclient.get(f"{url}/boom", timeout=30)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert_api_headers(response)


def test_hsts_is_sent_outside_dev_and_test():
    # The secrets a staging start requires (config.py `_fail_closed` names any new one).
    with serving(
        ENV="staging",
        JWT_SECRET="j" * 48,
        SESSION_SECRET="s" * 48,
        STRIPE_WEBHOOK_SECRET="whsec_" + "w" * 40,
        MAIL_FROM="Rampart <no-reply@example.com>",
    ) as http:
        for response in (http.get("/health"), http.get("/no/such/route")):
            assert response.headers["strict-transport-security"] == HSTS
            assert_api_headers(response)


def csp_directives(header: str) -> dict[str, list[str]]:
    parts = (d.strip().split() for d in header.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


def same_origin_assets(html: bytes) -> list[str]:
    """Every URL the page loads (scripts, stylesheets, icons); all must be our own paths."""
    urls = re.findall(rb'<script[^>]* src="([^"]+)"', html)
    urls += re.findall(rb'<link[^>]* href="([^"]+)"', html)
    return [u.decode() for u in urls]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_their_own_assets_under_a_self_only_csp(client, path):
    """Offline, /docs must not be blank: no CDN, every asset served by the app itself."""
    response = client.get(path)
    assert response.status_code == 200
    header = response.headers["content-security-policy"]
    assert "http" not in header and "cdn" not in header, header
    csp = csp_directives(header)
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"][0] == "'self'" and "'unsafe-inline'" not in csp["script-src"]
    assert csp["style-src"] == ["'self'", "'unsafe-inline'"]
    html = response.content
    for script in re.findall(rb"<script>(.*?)</script>", html, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
        assert f"'sha256-{digest}'" in csp["script-src"]
    assets = same_origin_assets(html)
    assert any(url.endswith(".js") for url in assets), html
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    for name, value in API_HEADERS.items():
        if name != "content-security-policy":
            assert response.headers[name] == value
    # Only those files: any other name is a 404 in the envelope.
    missing = client.get("/docs/assets/swagger-ui-bundle.js.map")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # The API itself keeps the strict policy.
    assert_api_headers(client.get("/openapi.json"))


def preflight(http: httpx.Client, origin: str, headers: str = CORS_REQUEST_HEADERS):
    return http.options(
        "/api/v1/assessments",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_cors_answers_allowed_origins_and_gives_others_nothing():
    with serving(CORS_ORIGINS=f"{ORIGIN}, http://localhost:5173") as http:
        ok = preflight(http, ORIGIN)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert ok.headers["access-control-allow-credentials"] == "true"
        allowed_headers = ok.headers["access-control-allow-headers"].lower()
        for header in CORS_REQUEST_HEADERS.split(", "):
            assert header in allowed_headers
        assert varies_by_origin(ok)
        assert_api_headers(ok)

        simple = http.get("/api/v1/assessments/questionnaire", headers={"Origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        exposed = simple.headers["access-control-expose-headers"].lower()
        assert {"x-request-id", "traceparent", "retry-after"} <= {
            h.strip() for h in exposed.split(",")
        }
        assert varies_by_origin(simple)

        evil = "https://evil.example.com"
        other = http.get("/api/v1/assessments/questionnaire", headers={"Origin": evil})
        assert other.status_code == 200 and cors_headers(other) == {}
        assert varies_by_origin(other)
        refused = preflight(http, evil)
        assert cors_headers(refused) == {}
        assert 400 <= refused.status_code < 500
        assert refused.json()["error"]["code"] == "method_not_allowed"

        bad_header = preflight(http, ORIGIN, headers="x-evil")
        assert bad_header.status_code == 400
        assert bad_header.json()["error"]["code"] == "cors_rejected"
        assert cors_headers(bad_header) == {}


def test_cors_lets_an_allowed_origin_read_a_429_and_its_retry_after():
    with serving(CORS_ORIGINS=ORIGIN, RATE_LIMIT_DEFAULT_PER_IP="1/minute") as http:
        http.get("/no/such/route")
        response = http.get("/no/such/route", headers={"Origin": ORIGIN})
        assert response.status_code == 429
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in response.headers["access-control-expose-headers"].lower()


def test_a_wildcard_origin_with_credentials_is_refused_at_startup():
    with pytest.raises(ValidationError, match="CORS_ORIGINS: `\\*` is refused"):
        Settings(cors_origins="*", cors_allow_credentials=True)
    assert Settings(cors_origins="*", cors_allow_credentials=False).cors_origin_list == ["*"]
    with pytest.raises(ValidationError, match="CORS_ORIGINS: 'https://app.example.com/'"):
        Settings(cors_origins="https://app.example.com/")
