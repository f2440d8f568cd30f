"""Plans, usage metering and quota enforcement over real HTTP on the real Postgres.

The free plan is given a small monthly quota (PLAN_FREE_ASSESSMENTS_PER_MONTH) for these
tests; rate limits are off so only the quota refuses. Usage is read from the API
(`GET /api/v1/billing`) and checked against the rows (usage_counters, audit_events) as
superuser.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from tests.support.db import su_rows, su_value
from tests.support.jobs import jobs, run_work
from tests.support.server import serving
from tests.support.users import Account, answers, signup

from rampart.assessments import service

QUOTA = 5


@pytest.fixture(scope="module")
def quota_api(stack):
    with serving(
        PLAN_FREE_ASSESSMENTS_PER_MONTH=str(QUOTA),
        RATE_LIMIT_ENABLED="false",
        DB_POOL_SIZE="10",
        DB_POOL_TIMEOUT_SECONDS="20",
    ) as client:
        yield client


def create(client: httpx.Client, account: Account) -> httpx.Response:
    return client.post("/api/v1/assessments", json={"answers": answers(3)}, headers=account.headers)


def used(superuser: str, account: Account) -> int:
    rows = su_rows(
        superuser,
        "SELECT used FROM usage_counters WHERE tenant_id = %s AND metric = 'assessments'",
        account.tenant_id,
    )
    return rows[0][0] if rows else 0


def live_assessments(superuser: str, account: Account) -> int:
    return su_value(
        superuser,
        "SELECT count(*) FROM assessments WHERE tenant_id = %s AND deleted_at IS NULL",
        account.tenant_id,
    )


def next_month() -> str:
    now = datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{year:04d}-{month:02d}-01T00:00:00Z"


def test_quota_warns_at_80_percent_then_refuses_with_402_and_details(quota_api, superuser):
    account = signup(quota_api)
    for n in range(1, QUOTA + 1):
        response = create(quota_api, account)
        assert response.status_code == 202, response.text
        warned = response.headers.get("quota-warning")
        if n >= 4:  # ceil(0.8 * 5)
            assert warned and f"used={n}; limit={QUOTA}" in warned, warned
            assert response.json()["quota_warning"] == warned
        else:
            assert warned is None

    refused = create(quota_api, account)
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {
        "metric": "assessments",
        "plan": "free",
        "limit": QUOTA,
        "usage": QUOTA,
        "period_start": datetime.now(UTC).date().replace(day=1).isoformat(),
        "reset_at": next_month(),
    }
    assert error["trace_id"]
    # Nothing half-written: no sixth assessment, the counter did not move.
    assert live_assessments(superuser, account) == QUOTA
    assert used(superuser, account) == QUOTA

    # Reads are never blocked.
    listing = quota_api.get("/api/v1/assessments", headers=account.headers)
    assert listing.status_code == 200 and len(listing.json()["items"]) == QUOTA

    overview = quota_api.get("/api/v1/billing", headers=account.headers)
    assert overview.status_code == 200, overview.text
    body = overview.json()
    assert body["plan"] == "free"
    [usage] = body["usage"]
    assert usage["metric"] == "assessments"
    assert (usage["used"], usage["limit"], usage["remaining"]) == (QUOTA, QUOTA, 0)
    assert usage["warning"] and usage["exceeded"]
    assert body["subscription"]["status"] is None

    # The block survived the request's rollback in the audit trail, with its trace id.
    rows = su_rows(
        superuser,
        "SELECT action, before_state, reason, trace_id FROM audit_events"
        " WHERE tenant_id = %s AND action IN ('quota_warning', 'quota_blocked') ORDER BY id",
        account.tenant_id,
    )
    assert [row[0] for row in rows] == ["quota_warning", "quota_blocked"]
    assert rows[1][1] == {"usage": QUOTA, "limit": QUOTA, "plan": "free"}
    assert rows[1][3] == error["trace_id"]


def test_fifty_parallel_creates_at_quota_minus_one_let_exactly_one_through(quota_api, superuser):
    account = signup(quota_api)
    for _ in range(QUOTA - 1):
        assert create(quota_api, account).status_code == 202

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda _: create(quota_api, account).status_code, range(50)))

    assert statuses.count(202) == 1, statuses
    assert statuses.count(402) == 49, statuses
    assert used(superuser, account) == QUOTA
    assert live_assessments(superuser, account) == QUOTA


def test_a_quarantined_assessment_gives_its_unit_back_once(quota_api, superuser):
    account = signup(quota_api)
    created = create(quota_api, account)
    assert created.status_code == 202
    assert used(superuser, account) == 1
    [job] = jobs(account.tenant_id)

    async def broken(_run):
        raise RuntimeError("model returned garbage")

    # A second delivery of the failed job refunds nothing more.
    for expected in ("quarantined", "skipped"):
        outcome = run_work(
            str(job.id),
            account.tenant_id,
            broken,
            task=service.SCORE_JOB,
            on_failure=service.mark_failed,
        )
        assert outcome == expected
        assert used(superuser, account) == 0
    assessment = quota_api.get(
        f"/api/v1/assessments/{created.json()['id']}", headers=account.headers
    ).json()
    assert assessment["status"] == "failed"


def test_audit_trail_is_owners_only_paginated_and_append_only(quota_api, superuser):
    account = signup(quota_api)
    for _ in range(QUOTA + 2):
        create(quota_api, account)
    page = quota_api.get("/api/v1/audit?limit=2", headers=account.headers)
    assert page.status_code == 200, page.text
    first = page.json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = quota_api.get(
        f"/api/v1/audit?limit=50&cursor={first['next_cursor']}", headers=account.headers
    ).json()
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    blocked = quota_api.get("/api/v1/audit?action=quota_blocked", headers=account.headers)
    assert [i["action"] for i in blocked.json()["items"]] == ["quota_blocked"] * 2

    # Another tenant sees none of it.
    other = signup(quota_api)
    theirs = quota_api.get("/api/v1/audit", headers=other.headers).json()["items"]
    assert not {i["id"] for i in theirs} & set(ids)

    # The database refuses to rewrite history, superuser included.
    for statement in (
        "UPDATE audit_events SET reason = 'x' WHERE tenant_id = %s",
        "DELETE FROM audit_events WHERE tenant_id = %s",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            su_rows(superuser, statement, account.tenant_id)


def test_billing_is_for_owners_and_admins_and_the_audit_trail_for_owners(quota_api):
    from tests.integration.test_invitations import join

    owner = signup(quota_api)
    admin, member = join(quota_api, owner, "admin"), join(quota_api, owner, "member")

    assert quota_api.get("/api/v1/billing", headers=owner.headers).status_code == 200
    assert quota_api.get("/api/v1/billing", headers=admin.headers).status_code == 200
    for path, method in (("/api/v1/billing", "GET"), ("/api/v1/billing/portal", "POST")):
        refused = quota_api.request(method, path, headers=member.headers)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
    assert quota_api.get("/api/v1/audit", headers=admin.headers).status_code == 403

    # Role changes and removals are in the owner's trail with before → after and who.
    changed = quota_api.patch(
        f"/api/v1/users/{member.user_id}/role", json={"role": "viewer"}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    assert (
        quota_api.delete(f"/api/v1/users/{member.user_id}", headers=owner.headers).status_code
        == 204
    )
    trail = quota_api.get("/api/v1/audit", headers=owner.headers).json()["items"]
    removed, role = trail[0], trail[1]
    assert (role["action"], role["before"], role["after"]) == (
        "role_changed",
        {"role": "member"},
        {"role": "viewer"},
    )
    assert role["actor_id"] == owner.user_id and role["trace_id"]
    assert removed["action"] == "user_removed"
    assert removed["before"] == {"role": "viewer", "removed": False}
    assert removed["after"] == {"role": "viewer", "removed": True}
