"""Idempotency-Key on creating POSTs (issue 18, item 3): a client that retries a request
whose answer it never got makes nothing twice."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from tests.support import httpclient
from tests.support.db import su_value
from tests.support.users import answers, signup


def _assessments(superuser: str, tenant_id: str) -> int:
    return su_value(superuser, "SELECT count(*) FROM assessments WHERE tenant_id = %s", tenant_id)


def test_a_retry_with_the_same_key_replays_the_first_answer_and_creates_nothing(http, superuser):
    account = signup(http, "Retrying")
    headers = {**account.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"answers": answers(2), "context": "first try"}

    first = http.post("/api/v1/assessments", json=body, headers=headers)
    again = http.post("/api/v1/assessments", json=body, headers=headers)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers
    assert _assessments(superuser, account.tenant_id) == 1
    # Another key is another request.
    other = {**account.headers, "Idempotency-Key": str(uuid.uuid4())}
    assert http.post("/api/v1/assessments", json=body, headers=other).status_code == 202
    assert _assessments(superuser, account.tenant_id) == 2


def test_the_same_key_with_another_body_is_422_and_creates_nothing(http, superuser):
    account = signup(http, "Reusing")
    headers = {**account.headers, "Idempotency-Key": "order-42"}
    assert (
        http.post("/api/v1/assessments", json={"answers": answers(2)}, headers=headers)
    ).status_code == 202

    reused = http.post("/api/v1/assessments", json={"answers": answers(4)}, headers=headers)

    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert _assessments(superuser, account.tenant_id) == 1


def test_keys_are_per_tenant(http, superuser):
    first, second = signup(http, "Key A"), signup(http, "Key B")
    key = {"Idempotency-Key": "shared-key-1"}
    for account in (first, second):
        created = http.post(
            "/api/v1/assessments", json={"answers": answers()}, headers={**account.headers, **key}
        )
        assert created.status_code == 202 and "idempotent-replayed" not in created.headers
    assert _assessments(superuser, second.tenant_id) == 1


def test_concurrent_duplicates_with_one_key_make_one_assessment(api, superuser):
    with httpclient.client(base_url=api, timeout=30) as http:
        account = signup(http, "Concurrent")
    headers = {**account.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"answers": answers(3)}

    def post(_: int) -> httpx.Response:
        with httpclient.client(base_url=api, timeout=30) as client:
            return client.post("/api/v1/assessments", json=body, headers=headers)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(10)))

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 9
    assert _assessments(superuser, account.tenant_id) == 1


def test_a_malformed_key_is_422(http):
    account = signup(http, "Bad key")
    for key in ("", "x" * 256, "has space"):
        response = http.post(
            "/api/v1/assessments",
            json={"answers": answers()},
            headers={**account.headers, "Idempotency-Key": key},
        )
        assert response.status_code == 422, (key, response.text)
        assert response.json()["error"]["code"] == "validation_error"
