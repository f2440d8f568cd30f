"""Abuse limits over real HTTP, with buckets in the real Redis.

Each test serves a fresh app with small, realistic limits set through the environment (the
rest of the suite runs with generous ones, see tests/support/stack.py) and starts from
empty buckets. Over a limit: 429, envelope code `rate_limited`, `Retry-After` in seconds,
and nothing written.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from tests.support.db import su_rows, su_value
from tests.support.server import scrape_api_metrics, serving
from tests.support.users import PASSWORD, answers, signup

from rampart.devstack.ports import free_port
from rampart.kit.security.ratelimit import KEY_PREFIX

ROOMY = "1000/minute"


def clear_buckets() -> None:
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        for key in client.scan_iter(f"{KEY_PREFIX}*"):
            client.delete(key)


@pytest.fixture(autouse=True)
def empty_buckets(stack) -> Iterator[None]:
    clear_buckets()
    yield
    clear_buckets()


def assert_rate_limited(response: httpx.Response, window_seconds: int) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["trace_id"] == response.headers["x-request-id"]
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window_seconds


def login(http: httpx.Client, email: str, password: str = "wrong password!") -> httpx.Response:
    return http.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_login_is_limited_per_ip_and_email_even_with_the_right_password():
    with serving(
        RATE_LIMIT_LOGIN_PER_IP_EMAIL="3/15 minutes", RATE_LIMIT_LOGIN_PER_IP=ROOMY
    ) as http:
        account = signup(http)
        clear_buckets()  # the signup helper logged in once
        for _ in range(3):
            assert login(http, account.email).status_code == 401
        assert_rate_limited(login(http, account.email, PASSWORD), 15 * 60)
        # Case does not open a new bucket; another email from the same IP does.
        assert_rate_limited(login(http, account.email.upper()), 15 * 60)
        assert login(http, f"other-{uuid.uuid4().hex}@example.com").status_code == 401


def test_login_is_limited_per_ip_across_emails():
    with serving(
        RATE_LIMIT_LOGIN_PER_IP_EMAIL=ROOMY, RATE_LIMIT_LOGIN_PER_IP="4/15 minutes"
    ) as http:
        for _ in range(4):
            assert login(http, f"spray-{uuid.uuid4().hex}@example.com").status_code == 401
        assert_rate_limited(login(http, f"spray-{uuid.uuid4().hex}@example.com"), 15 * 60)


def test_signup_is_limited_per_ip_and_the_refused_one_writes_nothing(superuser):
    with serving(RATE_LIMIT_SIGNUP_PER_IP="2/hour") as http:
        signup(http)
        signup(http)
        email = f"third-{uuid.uuid4().hex}@example.com"
        tenants_before = su_value(superuser, "SELECT count(*) FROM tenants")
        response = http.post(
            "/api/v1/auth/signup",
            json={"email": email, "password": PASSWORD, "tenant_name": "Third"},
        )
        assert_rate_limited(response, 3600)
        assert su_value(superuser, "SELECT count(*) FROM users WHERE email = %s", email) == 0
        assert su_value(superuser, "SELECT count(*) FROM tenants") == tenants_before


def test_every_accepted_signup_counts_and_no_rejected_body_does(superuser):
    """A rejected body (422) costs nothing: a newcomer who fixes a typo is not locked out.
    A taken address (the 202 that creates nothing) counts like a free one: the limit must
    not tell them apart, nor let one IP mail the address's owner without bound."""
    with serving(RATE_LIMIT_SIGNUP_PER_IP="2/hour") as http:
        taken = signup(http)  # the first of two
        for _ in range(3):
            bad = http.post("/api/v1/auth/signup", json={"email": "not an address"})
            assert bad.status_code == 422, bad.text
        tenants_before = su_value(superuser, "SELECT count(*) FROM tenants")
        again = http.post(
            "/api/v1/auth/signup",
            json={"email": taken.email, "password": PASSWORD, "tenant_name": "Again"},
        )
        assert again.status_code == 202, again.text  # the second: nothing made
        assert su_value(superuser, "SELECT count(*) FROM tenants") == tenants_before
        for email in (taken.email, f"x-{uuid.uuid4().hex}@example.com"):
            assert_rate_limited(
                http.post(
                    "/api/v1/auth/signup",
                    json={"email": email, "password": PASSWORD, "tenant_name": "Third"},
                ),
                3600,
            )


def post_assessment(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return http.post("/api/v1/assessments", json={"answers": answers()}, headers=headers)


def test_invitations_are_limited_per_tenant_and_the_refused_one_mails_nobody(superuser):
    """Each invitation mails an address the tenant chooses: a tenant's budget, whoever of
    it sends them; another tenant has its own."""

    def invite(account, email: str) -> httpx.Response:
        return http.post(
            "/api/v1/invitations",
            json={"email": email, "role": "member"},
            headers=account.headers,
        )

    def invitations(tenant_id: str) -> int:
        sql = "SELECT count(*) FROM invitations WHERE tenant_id = %s"
        return su_value(superuser, sql, tenant_id)

    with serving(RATE_LIMIT_INVITATIONS_PER_TENANT="2/day") as http:
        owner, other = signup(http, "Inviting a lot"), signup(http, "Someone else")
        for _ in range(2):
            sent = invite(owner, f"guest-{uuid.uuid4().hex}@example.com")
            assert sent.status_code == 201, sent.text
        third = f"third-{uuid.uuid4().hex}@example.com"
        assert_rate_limited(invite(owner, third), 24 * 3600)
        assert invitations(owner.tenant_id) == 2
        mails_to_third = "SELECT count(*) FROM jobs WHERE payload->>'to' = %s"
        assert su_value(superuser, mails_to_third, third) == 0
        assert invite(other, f"guest-{uuid.uuid4().hex}@example.com").status_code == 201


def test_assessment_creation_is_limited_per_user_by_the_tenants_plan(superuser):
    with serving(RATE_LIMIT_ASSESSMENTS_FREE="2/hour", RATE_LIMIT_ASSESSMENTS_PRO="4/hour") as http:
        free, other = signup(http), signup(http)
        written = "SELECT count(*) FROM {} WHERE tenant_id = %s"
        before = {
            t: su_value(superuser, written.format(t), free.tenant_id) for t in ("jobs", "outbox")
        }
        for _ in range(2):
            assert post_assessment(http, free.headers).status_code == 202
        assert_rate_limited(post_assessment(http, free.headers), 3600)
        assert su_value(superuser, written.format("assessments"), free.tenant_id) == 2
        for table in ("jobs", "outbox"):  # the signup's mail job aside
            assert su_value(superuser, written.format(table), free.tenant_id) == before[table] + 2
        # Another user has a bucket of its own.
        assert post_assessment(http, other.headers).status_code == 202

        su_rows(superuser, "UPDATE tenants SET plan = 'pro' WHERE id = %s", free.tenant_id)
        # The plan is read per request: the upgrade applies at once, with the pro limit.
        for _ in range(4):
            assert post_assessment(http, free.headers).status_code == 202
        assert_rate_limited(post_assessment(http, free.headers), 3600)
        assert su_value(superuser, written.format("assessments"), free.tenant_id) == 6


def test_base_limit_per_ip_spares_the_probes_not_a_public_metrics_path():
    with serving(RATE_LIMIT_DEFAULT_PER_IP="3/minute") as http:
        for _ in range(3):
            assert http.get("/api/v1/assessments/questionnaire").status_code == 200
        assert_rate_limited(http.get("/api/v1/assessments/questionnaire"), 60)
        assert_rate_limited(http.get("/api/v1/me"), 60)
        for path in ("/health", "/ready"):
            assert http.get(path).status_code == 200, path
        # /metrics is no route of the public port, so nothing exempts it from the limit;
        # the metrics listener (its own port, not the app) still answers Prometheus.
        assert_rate_limited(http.get("/metrics"), 60)
        assert "rampart_rate_limited_total" in scrape_api_metrics()


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_bucket():
    with serving(RATE_LIMIT_DEFAULT_PER_IP="3/minute", TRUSTED_PROXIES="") as http:
        for i in range(3):
            headers = {"X-Forwarded-For": f"198.51.100.{i}"}
            assert http.get("/health/nope", headers=headers).status_code == 404
        response = http.get("/health/nope", headers={"X-Forwarded-For": "198.51.100.99"})
        assert_rate_limited(response, 60)


def test_forwarded_for_from_a_trusted_proxy_picks_the_client_walking_from_the_right():
    with serving(
        RATE_LIMIT_DEFAULT_PER_IP="2/minute", TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8"
    ) as http:

        def get(xff: str) -> httpx.Response:
            return http.get("/health/nope", headers={"X-Forwarded-For": xff})

        # Client 203.0.113.7 behind two trusted hops; what it wrote on the left is ignored.
        assert get("203.0.113.7").status_code == 404
        assert get("1.1.1.1, 203.0.113.7, 10.0.0.5").status_code == 404
        assert_rate_limited(get("9.9.9.9, 203.0.113.7"), 60)
        # Another client behind the same proxy has its own bucket.
        assert get("203.0.113.8, 10.1.2.3").status_code == 404


def fail_open_count(http: httpx.Client) -> float:
    for line in scrape_api_metrics().splitlines():
        if line.startswith("rampart_rate_limit_fail_open_total "):
            return float(line.split()[1])
    return 0.0


def test_redis_down_fails_open_and_assessments_are_still_accepted():
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with serving(
        REDIS_URL=dead_redis,
        RATE_LIMIT_DEFAULT_PER_IP="2/minute",
        RATE_LIMIT_SIGNUP_PER_IP="1/hour",
        RATE_LIMIT_ASSESSMENTS_FREE="1/hour",
    ) as http:
        before = fail_open_count(http)
        account = signup(http)
        signup(http)
        for _ in range(3):
            assert post_assessment(http, account.headers).status_code == 202
        assert fail_open_count(http) > before
