"""The product's core flow over real HTTP against real Postgres; jobs run in-process."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from tests.support.db import app_session
from tests.support.jobs import jobs as _jobs
from tests.support.jobs import run, run_pending
from tests.support.users import PASSWORD, answers, signup

from rampart.kit.db.transaction import Claims


def test_signup_returns_user_free_tenant_and_token(client):
    account = signup(client, "Acme")
    me = client.get("/api/v1/me", headers=account.headers)
    assert me.status_code == 200
    body = me.json()
    assert body["user"]["email"] == account.email
    assert body["tenant"]["plan"] == "free"
    assert body["role"] == "owner"


def test_login_with_right_password_gives_a_working_token(client):
    account = signup(client)
    response = client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer" and token["expires_in"] > 0
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["user"]["id"] == account.user_id


def test_wrong_password_and_unknown_email_get_the_same_401(client):
    account = signup(client)
    wrong = client.post("/api/v1/auth/login", json={"email": account.email, "password": "x" * 12})
    unknown = client.post(
        "/api/v1/auth/login", json={"email": "nobody-here@example.com", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert wrong.json()["error"]["code"] == unknown.json()["error"]["code"] == "unauthorized"


def test_a_duplicate_email_in_any_case_makes_no_second_account(client):
    """Answered like a new address (no oracle: tests/integration/test_email_identity.py);
    the other password opens nothing."""
    account = signup(client)
    other = "another password, also long"
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": account.email.upper(), "password": other, "tenant_name": "Other"},
    )
    assert response.status_code == 202, response.text
    login = client.post("/api/v1/auth/login", json={"email": account.email, "password": other})
    assert login.status_code == 401


def test_short_password_is_rejected_with_field_details(client):
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": "short@example.com", "password": "too-short", "tenant_name": "T"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "password"


def test_questionnaire_has_dimensions_and_stable_question_ids(client):
    body = client.get("/api/v1/assessments/questionnaire").json()
    assert len(body["dimensions"]) >= 4
    assert len(body["questions"]) >= 12
    assert all({"id", "text", "dimension"} <= q.keys() for q in body["questions"])


def test_assessment_goes_from_queued_to_completed_with_a_roadmap(client):
    account = signup(client)
    created = client.post(
        "/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers
    )
    assert created.status_code == 202
    assert created.json()["status"] == "queued"
    assessment_id = created.json()["id"]
    assert created.headers["location"].endswith(assessment_id)

    run_pending(account.tenant_id)  # scores, and enqueues the roadmap job
    scored = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers).json()
    assert scored["status"] == "scored"
    assert scored["overall_score"] == 40 and scored["provider"] == "offline"

    run_pending(account.tenant_id)
    done = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers).json()
    assert done["status"] == "completed" and done["degraded"] is False
    roadmap = client.get(f"/api/v1/roadmaps/{done['roadmap_id']}", headers=account.headers)
    assert roadmap.status_code == 200
    items = roadmap.json()["items"]
    assert len(items) >= 3
    assert all(item["horizon_days"] in (30, 60, 90) for item in items)
    assert roadmap.json()["assessment_id"] == assessment_id


def test_running_every_job_twice_makes_one_score_and_one_roadmap(client):
    account = signup(client)
    created = client.post(
        "/api/v1/assessments", json={"answers": answers(1)}, headers=account.headers
    )
    assessment_id = created.json()["id"]
    for _ in range(2):
        for job in _jobs(account.tenant_id):
            for _again in range(2):  # a duplicate delivery of each job
                run(str(job.id), job.type, account.tenant_id)
    jobs = _jobs(account.tenant_id)
    assert [j.type for j in jobs] == ["score_assessment", "generate_roadmap"]
    assert all(j.status == "succeeded" for j in jobs)
    with app_session(Claims(tenant_id=account.tenant_id)) as session:
        count = session.execute(
            text("SELECT count(*) FROM roadmaps WHERE assessment_id = :a"),
            {"a": uuid.UUID(assessment_id)},
        ).scalar_one()
    assert count == 1


def test_list_is_newest_first_and_paginates_without_overlap(client):
    account = signup(client)
    ids = [
        client.post(
            "/api/v1/assessments", json={"answers": answers(v)}, headers=account.headers
        ).json()["id"]
        for v in (0, 1, 2, 3, 4)
    ]
    first = client.get("/api/v1/assessments?limit=2", headers=account.headers).json()
    assert [a["id"] for a in first["items"]] == ids[::-1][:2]
    seen = [a["id"] for a in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(
            "/api/v1/assessments", params={"limit": 2, "cursor": cursor}, headers=account.headers
        ).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
    assert seen == ids[::-1]
