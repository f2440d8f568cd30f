"""The plan's standing limits over real HTTP on the real Postgres: members per tenant and
bytes of evidence (billing/plans.py; the monthly assessments quota is test_billing_quota.py).

A refusal is 402 `plan_limit_reached` in the error envelope with what the plan allows, and
writes nothing: no invitation, no user, no evidence row or file. Ground truth is read as
superuser.
"""

from __future__ import annotations

import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image
from tests.integration.test_invitations import INVITEE_PASSWORD, accept, invite, mailed_token
from tests.support.db import add_user, su_lock, su_rows, su_value, waiting_on_a_lock
from tests.support.users import Account, answers, signup
from tests.support.wait import wait_until

from rampart.billing import plans
from rampart.config import get_settings
from rampart.evidence.service import evidence_root

pytestmark = pytest.mark.integration

FREE_MEMBERS = plans.get("free").members
FREE_EVIDENCE = plans.get("free").evidence_bytes


def members(superuser: str, tenant_id: str) -> int:
    sql = "SELECT count(*) FROM users WHERE tenant_id = %s AND removed_at IS NULL"
    return su_value(superuser, sql, tenant_id)


def invitations(superuser: str, tenant_id: str) -> int:
    return su_value(superuser, "SELECT count(*) FROM invitations WHERE tenant_id = %s", tenant_id)


def fill_up(superuser: str, owner: Account, up_to: int) -> None:
    """Members added until the tenant has `up_to` of them."""
    for _ in range(up_to - members(superuser, owner.tenant_id)):
        add_user(owner.tenant_id, "member")


def assert_limit(response: httpx.Response, name: str, limit: int) -> dict:
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["code"] == "plan_limit_reached"
    assert error["details"]["limit_name"] == name
    assert error["details"]["limit"] == limit
    assert error["details"]["plan"] == "free"
    assert error["trace_id"] == response.headers["x-request-id"]
    return error


def test_a_full_free_tenant_cannot_invite_and_nothing_is_written(http, superuser):
    owner = signup(http, "Full team")
    fill_up(superuser, owner, FREE_MEMBERS)
    assert members(superuser, owner.tenant_id) == FREE_MEMBERS

    refused = invite(http, owner, "member")

    error = assert_limit(refused, "members", FREE_MEMBERS)
    assert error["details"]["usage"] == FREE_MEMBERS
    assert invitations(superuser, owner.tenant_id) == 0


def test_an_invitation_accepted_after_the_team_filled_up_is_refused_and_stays_unused(
    http, superuser
):
    owner = signup(http, "Filling up")
    early = invite(http, owner, "member")  # room for it when sent
    assert early.status_code == 201, early.text
    token = mailed_token(owner, early.json())
    fill_up(superuser, owner, FREE_MEMBERS)

    refused = accept(http, token)

    assert_limit(refused, "members", FREE_MEMBERS)
    assert members(superuser, owner.tenant_id) == FREE_MEMBERS
    [(accepted_at,)] = su_rows(
        superuser, "SELECT accepted_at FROM invitations WHERE id = %s", early.json()["id"]
    )
    assert accepted_at is None
    # Upgraded, the same invitation works: it was not used up by the refusal.
    su_rows(superuser, "UPDATE tenants SET plan = 'pro' WHERE id = %s", owner.tenant_id)
    assert accept(http, token).status_code == 202
    assert members(superuser, owner.tenant_id) == FREE_MEMBERS + 1


RACERS = 6


def test_accepts_racing_for_the_last_seat_let_exactly_one_in(http, superuser):
    """The racers are held at the tenant's row (locked here as superuser) until all of them
    wait there, then let go at once: each must count the members after the one before it
    committed."""
    owner = signup(http, "Last seat")
    sent = [invite(http, owner, "member") for _ in range(RACERS)]
    assert {r.status_code for r in sent} == {201}
    tokens = [mailed_token(owner, r.json()) for r in sent]
    fill_up(superuser, owner, FREE_MEMBERS - 1)  # one seat left

    gate = "SELECT 1 FROM tenants WHERE id = %s FOR UPDATE"
    with ThreadPoolExecutor(RACERS) as pool:
        with su_lock(superuser, gate, owner.tenant_id):
            racing = [pool.submit(accept, http, token, INVITEE_PASSWORD) for token in tokens]
            wait_until(
                lambda: waiting_on_a_lock(superuser) >= RACERS,
                30,
                0.02,
                message="every accept to wait on the tenant",
            )
        statuses = sorted(future.result().status_code for future in racing)

    assert statuses == [202] + [402] * (RACERS - 1)
    assert members(superuser, owner.tenant_id) == FREE_MEMBERS


# --- evidence storage -------------------------------------------------------------------


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def upload(http: httpx.Client, owner: Account, assessment_id: str, data: bytes):
    return http.post(
        f"/api/v1/assessments/{assessment_id}/evidence",
        files={"file": ("chart.png", data, "image/png")},
        headers=owner.headers,
    )


def stored_files(tenant_id: str) -> set[Path]:
    folder = evidence_root(get_settings()) / tenant_id
    return set(folder.rglob("*")) if folder.exists() else set()


def test_an_upload_past_the_plans_storage_is_refused_and_stores_nothing(http, superuser):
    owner = signup(http, "Storage")
    created = http.post("/api/v1/assessments", json={"answers": answers()}, headers=owner.headers)
    assert created.status_code == 202, created.text
    assessment_id = created.json()["id"]
    data = png()
    assert upload(http, owner, assessment_id, data).status_code == 201
    files_before = stored_files(owner.tenant_id)
    # What the tenant already stores: planted as one row just short of the plan's bytes.
    used = su_value(
        superuser, "SELECT sum(size_bytes) FROM evidence WHERE tenant_id = %s", owner.tenant_id
    )
    planted = FREE_EVIDENCE - used - len(data) + 1
    su_rows(
        superuser,
        "INSERT INTO evidence (id, tenant_id, assessment_id, uploaded_by, filename,"
        " content_type, size_bytes, sha256, storage_key)"
        " VALUES (%s, %s, %s, %s, 'old.pdf', 'application/pdf', %s, %s, %s)",
        uuid.uuid4(),
        owner.tenant_id,
        assessment_id,
        owner.user_id,
        planted,
        "0" * 64,
        f"{owner.tenant_id}/{'f' * 32}",
    )

    refused = upload(http, owner, assessment_id, data)

    error = assert_limit(refused, "evidence_bytes", FREE_EVIDENCE)
    assert error["details"]["usage"] == FREE_EVIDENCE - len(data) + 1
    assert (
        su_value(superuser, "SELECT count(*) FROM evidence WHERE tenant_id = %s", owner.tenant_id)
        == 2
    )
    assert stored_files(owner.tenant_id) == files_before
    # One byte less in store and the same file fits exactly.
    su_rows(
        superuser,
        "UPDATE evidence SET size_bytes = size_bytes - 1 WHERE storage_key = %s",
        f"{owner.tenant_id}/{'f' * 32}",
    )
    assert upload(http, owner, assessment_id, data).status_code == 201
