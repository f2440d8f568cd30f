"""Tenant isolation over real HTTP: tenant A's token never reaches tenant B's data.

Two tenants, each with completed assessments and their roadmaps (jobs run in-process, as in
test_core_flow). Every endpoint that takes an id or lists is tried in both directions: by id
another tenant's row is a 404 in the error envelope (never a 403, which would confirm that
the id exists); lists hold only the caller's own ids. Forged or tampered tokens are 401.

Writes across tenants have no HTTP endpoint yet; test_rls.py proves at the database that
they fail.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import jwt
import pytest
from sqlalchemy import text
from tests.support import httpclient
from tests.support.db import app_session
from tests.support.jobs import run
from tests.support.users import Account, answers, signup

from rampart.config import get_settings
from rampart.kit.db.transaction import Claims


@dataclass
class Tenant:
    account: Account
    assessment_ids: list[str] = field(default_factory=list)
    roadmap_ids: list[str] = field(default_factory=list)

    @property
    def own_ids(self) -> set[str]:
        """Every id of this tenant that a response could leak."""
        return {
            self.account.user_id,
            self.account.tenant_id,
            *self.assessment_ids,
            *self.roadmap_ids,
        }


def run_pending_jobs(tenant_id: str) -> int:
    """Run the tenant's pending jobs in-process; return how many ran."""
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        pending = session.execute(
            text("SELECT id, type FROM jobs WHERE status = 'pending' ORDER BY created_at")
        ).all()
    for job in pending:
        run(str(job.id), job.type, tenant_id)
    return len(pending)


def tenant_with_roadmaps(http: httpx.Client, name: str, assessments: int = 2) -> Tenant:
    """A fresh tenant whose assessments are all completed, each with its roadmap."""
    tenant = Tenant(signup(http, name))
    for value in range(assessments):
        created = http.post(
            "/api/v1/assessments",
            json={"answers": answers(value + 1)},
            headers=tenant.account.headers,
        )
        assert created.status_code == 202, created.text
        tenant.assessment_ids.append(created.json()["id"])
    while run_pending_jobs(tenant.account.tenant_id):  # scores (enqueuing roadmaps), then roadmaps
        pass
    for assessment_id in tenant.assessment_ids:
        body = http.get(
            f"/api/v1/assessments/{assessment_id}", headers=tenant.account.headers
        ).json()
        assert body["status"] == "completed", body
        tenant.roadmap_ids.append(body["roadmap_id"])
    return tenant


@pytest.fixture(scope="module")
def http(api: str) -> Iterator[httpx.Client]:
    with httpclient.client(base_url=api, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def tenants(http: httpx.Client) -> dict[str, Tenant]:
    return {
        "A": tenant_with_roadmaps(http, "Tenant A"),
        "B": tenant_with_roadmaps(http, "Tenant B"),
    }


DIRECTIONS = [pytest.param("A", "B", id="A-reads-B"), pytest.param("B", "A", id="B-reads-A")]
OWN = [pytest.param("A", id="A-reads-A"), pytest.param("B", id="B-reads-B")]


def assert_not_found_envelope(response: httpx.Response, hidden: Tenant) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["message"]
    assert error["trace_id"] == response.headers["x-request-id"]
    # Nothing of the other tenant comes back, not even in the error text.
    assert not any(leak in response.text for leak in hidden.own_ids)


# --- by id: another tenant's row is a 404 -----------------------------------------------

BY_ID = [
    pytest.param("/api/v1/assessments/{}", "assessment_ids", id="assessment"),
    pytest.param("/api/v1/roadmaps/{}", "roadmap_ids", id="roadmap"),
]


@pytest.mark.parametrize("path, ids", BY_ID)
@pytest.mark.parametrize("reader, owner", DIRECTIONS)
def test_another_tenants_row_by_id_is_404_not_403(http, tenants, path, ids, reader, owner):
    for target in getattr(tenants[owner], ids):
        response = http.get(path.format(target), headers=tenants[reader].account.headers)
        assert_not_found_envelope(response, tenants[owner])


@pytest.mark.parametrize("path, ids", BY_ID)
@pytest.mark.parametrize("reader", OWN)
def test_own_row_by_id_is_200(http, tenants, path, ids, reader):
    """Control: the 404s above are about the tenant, not about ids that do not resolve."""
    for target in getattr(tenants[reader], ids):
        response = http.get(path.format(target), headers=tenants[reader].account.headers)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == target


# --- lists and "me": only the caller's own data ------------------------------------------


@pytest.mark.parametrize("reader, owner", DIRECTIONS)
def test_assessment_list_holds_only_own_ids(http, tenants, reader, owner):
    response = http.get(
        "/api/v1/assessments", params={"limit": 100}, headers=tenants[reader].account.headers
    )
    assert response.status_code == 200, response.text
    listed = {item["id"] for item in response.json()["items"]}
    assert listed == set(tenants[reader].assessment_ids)
    assert not any(leak in response.text for leak in tenants[owner].own_ids)


@pytest.mark.parametrize("reader, owner", DIRECTIONS)
def test_assessment_list_cursor_at_another_tenants_row_reveals_nothing(
    http, tenants, reader, owner
):
    """A cursor is only a position: pointing it at B's newest row still lists A's rows only."""
    newest_of_owner = http.get(
        f"/api/v1/assessments/{tenants[owner].assessment_ids[-1]}",
        headers=tenants[owner].account.headers,
    ).json()
    far_future = "2999-01-01T00:00:00+00:00"
    cursor = base64.urlsafe_b64encode(f"{far_future}|{newest_of_owner['id']}".encode()).decode()
    response = http.get(
        "/api/v1/assessments",
        params={"limit": 100, "cursor": cursor},
        headers=tenants[reader].account.headers,
    )
    assert response.status_code == 200, response.text
    assert {item["id"] for item in response.json()["items"]} == set(tenants[reader].assessment_ids)


@pytest.mark.parametrize("reader, owner", DIRECTIONS)
def test_me_shows_only_the_callers_user_and_tenant(http, tenants, reader, owner):
    response = http.get("/api/v1/me", headers=tenants[reader].account.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["id"] == tenants[reader].account.user_id
    assert body["user"]["email"] == tenants[reader].account.email
    assert body["tenant"]["id"] == tenants[reader].account.tenant_id
    leaks = tenants[owner].own_ids | {tenants[owner].account.email}
    assert not any(leak in response.text for leak in leaks)


# --- forged and tampered tokens: 401 ----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _claims(reader: Account, **overrides: object) -> dict:
    now = int(time.time())
    claims = {
        "sub": reader.user_id,
        "tenant_id": reader.tenant_id,
        "role": "owner",
        "aud": "rampart-api",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    return {**claims, **overrides}


OTHER_SECRET = "not-the-server-secret-" + "x" * 32


def forge(kind: str, a: Account, b: Account) -> str:
    real_secret = get_settings().jwt_secret.get_secret_value()
    if kind == "other-secret":
        return jwt.encode(_claims(a), OTHER_SECRET, "HS256")
    if kind == "b-tenant-a-sub-other-secret":
        return jwt.encode(_claims(a, tenant_id=b.tenant_id), OTHER_SECRET, "HS256")
    if kind in ("tenant-claim-changed", "sub-claim-changed"):
        # A's genuine token with one claim rewritten and the original signature kept.
        header, payload, signature = a.token.split(".")
        claims = json.loads(_unb64(payload))
        if kind == "tenant-claim-changed":
            claims["tenant_id"] = b.tenant_id
        else:
            claims["sub"] = b.user_id
        return ".".join([header, _b64(json.dumps(claims).encode()), signature])
    if kind == "alg-none":
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(_claims(a, tenant_id=b.tenant_id)).encode())
        return f"{header}.{payload}."
    if kind == "expired":
        return jwt.encode(_claims(a, exp=int(time.time()) - 60), real_secret, "HS256")
    if kind == "wrong-audience":
        return jwt.encode(_claims(a, aud="someone-else"), real_secret, "HS256")
    raise AssertionError(kind)


FORGERIES = [
    "other-secret",
    "b-tenant-a-sub-other-secret",
    "tenant-claim-changed",
    "sub-claim-changed",
    "alg-none",
    "expired",
    "wrong-audience",
]
TARGETS = [
    pytest.param(lambda t: "/api/v1/me", id="me"),
    pytest.param(lambda t: "/api/v1/assessments", id="list"),
    pytest.param(lambda t: f"/api/v1/assessments/{t['B'].assessment_ids[0]}", id="b-assessment"),
    pytest.param(lambda t: f"/api/v1/roadmaps/{t['B'].roadmap_ids[0]}", id="b-roadmap"),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_or_tampered_token_is_401(http, tenants, kind, target):
    token = forge(kind, tenants["A"].account, tenants["B"].account)
    response = http.get(target(tenants), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["trace_id"] == response.headers["x-request-id"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert not any(leak in response.text for leak in tenants["B"].own_ids)


def test_genuine_token_still_works_after_the_forgeries(http, tenants):
    """Control: the 401s above come from the tampering, not from a broken token path."""
    response = http.get("/api/v1/me", headers=tenants["A"].account.headers)
    assert response.status_code == 200
    assert response.json()["user"]["id"] == tenants["A"].account.user_id
