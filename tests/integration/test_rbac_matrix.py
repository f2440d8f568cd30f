"""RBAC over real HTTP: every cell of role × action × whose, then the rules around it.

Each matrix cell gets a fresh world, so no cell sees another's effects:

- tenant A: `founder` (owner), `actor` (the role under test; a second owner when testing
  owners), `colleague` (a member), an assessment of the actor and one of the colleague;
- tenant B: `stranger` (a member), `stranger_owner` (owner), an assessment of the stranger.

"own" is the actor's own assessment or user, "others" another user's in tenant A,
"other-tenant" tenant B's. Each cell asserts the status (with the envelope code for
errors) and the effect, read back from the database.

The world is built in-process through the app's own RLS-scoped transactions (fast: no
argon2 per user); test_invitations.py proves the real way users join a tenant. Tokens are
issued with each user's role, like login does.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import jwt
import pytest
from sqlalchemy import text
from tests.support import httpclient
from tests.support.db import add_user, app_session, su_lock, su_rows, su_value, waiting_on_a_lock
from tests.support.jobs import jobs, run, run_pending
from tests.support.users import Account, answers
from tests.support.wait import wait_until

from rampart.kit.db.transaction import Claims
from rampart.kit.security.tokens import issue_access_token

ROLES = ("owner", "admin", "member", "viewer")


# --- building a world (the app's own RLS-scoped writes) ----------------------------------


def make_tenant(name: str) -> str:
    """A pro tenant: the free plan's three members would refuse the matrix's invites with
    402 before any permission is tried (test_plan_limits.py covers that)."""
    tenant_id = str(uuid.uuid4())
    with app_session(Claims(tenant_id=tenant_id, sub=str(uuid.uuid4()))) as session:
        session.execute(
            text("INSERT INTO tenants (id, name, plan) VALUES (:id, :name, 'pro')"),
            {"id": tenant_id, "name": name},
        )
    return tenant_id


def add_assessment(creator: Account) -> str:
    assessment_id = str(uuid.uuid4())
    with app_session(Claims(tenant_id=creator.tenant_id, sub=creator.user_id)) as session:
        session.execute(
            text(
                "INSERT INTO assessments (id, tenant_id, created_by, answers)"
                " VALUES (:id, :tenant, :by, '{}')"
            ),
            {"id": assessment_id, "tenant": creator.tenant_id, "by": creator.user_id},
        )
    return assessment_id


@dataclass
class World:
    actor: Account
    founder: Account
    colleague: Account
    stranger: Account
    stranger_owner: Account
    assessments: dict[str, str]

    def user(self, whose: str) -> Account:
        return {"own": self.actor, "others": self.colleague, "other-tenant": self.stranger}[whose]


def make_world(role: str) -> World:
    a, b = make_tenant("RBAC A"), make_tenant("RBAC B")
    founder = add_user(a, "owner")
    actor, colleague = add_user(a, role), add_user(a, "member")
    stranger_owner, stranger = add_user(b, "owner"), add_user(b, "member")
    return World(
        actor=actor,
        founder=founder,
        colleague=colleague,
        stranger=stranger,
        stranger_owner=stranger_owner,
        assessments={
            "own": add_assessment(actor),
            "others": add_assessment(colleague),
            "other-tenant": add_assessment(stranger),
        },
    )


# --- reading effects back (as the tenant, under RLS) -------------------------------------


def scalar(tenant_id: str, sql: str, **params) -> object:
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        return session.execute(text(sql), params).scalar_one()


def role_of(user: Account) -> str:
    return scalar(user.tenant_id, "SELECT role FROM users WHERE id = :id", id=user.user_id)


def is_deleted(tenant_id: str, assessment_id: str) -> bool:
    sql = "SELECT deleted_at IS NOT NULL FROM assessments WHERE id = :id"
    return scalar(tenant_id, sql, id=assessment_id)


def assessments_by(user: Account) -> int:
    sql = "SELECT count(*) FROM assessments WHERE created_by = :by"
    return scalar(user.tenant_id, sql, by=user.user_id)


def invitations_of(superuser: str, tenant_id: str) -> int:
    """app_rw cannot read invitations at all: counted as superuser."""
    return su_value(superuser, "SELECT count(*) FROM invitations WHERE tenant_id = %s", tenant_id)


# --- the actions: each returns (response, effect) -----------------------------------------

Outcome = tuple[httpx.Response, str]


def read_assessment(http, w: World, whose: str, _su: str) -> Outcome:
    target = w.assessments[whose]
    response = http.get(f"/api/v1/assessments/{target}", headers=w.actor.headers)
    seen = response.status_code == 200 and response.json()["id"] == target
    return response, "seen" if seen else "unseen"


def list_assessments(http, w: World, whose: str, _su: str) -> Outcome:
    response = http.get("/api/v1/assessments", params={"limit": 100}, headers=w.actor.headers)
    listed = {item["id"] for item in response.json().get("items", [])}
    return response, "listed" if w.assessments[whose] in listed else "unlisted"


def create_assessment(http, w: World, _whose: str, _su: str) -> Outcome:
    before = assessments_by(w.actor)
    response = http.post(
        "/api/v1/assessments", json={"answers": answers()}, headers=w.actor.headers
    )
    return response, "created" if assessments_by(w.actor) == before + 1 else "none"


def delete_assessment(http, w: World, whose: str, _su: str) -> Outcome:
    target = w.assessments[whose]
    response = http.delete(f"/api/v1/assessments/{target}", headers=w.actor.headers)
    tenant = w.stranger.tenant_id if whose == "other-tenant" else w.actor.tenant_id
    return response, "deleted" if is_deleted(tenant, target) else "kept"


def list_users(http, w: World, whose: str, _su: str) -> Outcome:
    response = http.get("/api/v1/users", headers=w.actor.headers)
    listed = {user["id"] for user in response.json().get("items", [])}
    return response, "listed" if w.user(whose).user_id in listed else "unlisted"


def invite(role: str) -> Callable[..., Outcome]:
    def act(http, w: World, _whose: str, superuser: str) -> Outcome:
        before = invitations_of(superuser, w.actor.tenant_id)
        response = http.post(
            "/api/v1/invitations",
            json={"email": f"new-{uuid.uuid4().hex[:12]}@example.com", "role": role},
            headers=w.actor.headers,
        )
        after = invitations_of(superuser, w.actor.tenant_id)
        return response, "invited" if after == before + 1 else "none"

    return act


def set_role(role: str, *, target_owner: bool = False) -> Callable[..., Outcome]:
    """PATCH the target's role; the effect is the target's role afterwards. With
    target_owner, "others" is A's founder and "other-tenant" B's owner."""

    def act(http, w: World, whose: str, _su: str) -> Outcome:
        target = w.user(whose)
        if target_owner:
            target = {"others": w.founder, "other-tenant": w.stranger_owner}[whose]
        response = http.patch(
            f"/api/v1/users/{target.user_id}/role", json={"role": role}, headers=w.actor.headers
        )
        return response, role_of(target)

    return act


ACTIONS: dict[str, Callable[..., Outcome]] = {
    "read-assessment": read_assessment,
    "list-assessments": list_assessments,
    "create-assessment": create_assessment,
    "delete-assessment": delete_assessment,
    "list-users": list_users,
    "invite-owner": invite("owner"),
    "invite-admin": invite("admin"),
    "invite-member": invite("member"),
    "invite-viewer": invite("viewer"),
    "make-viewer": set_role("viewer"),
    "make-owner": set_role("owner"),
    "demote-owner": set_role("member", target_owner=True),
}

# --- the matrix ---------------------------------------------------------------------------
# (action, whose): expected (status, effect) for       owner, admin, member, viewer
ALL = lambda cell: [cell] * 4  # noqa: E731
MATRIX: dict[tuple[str, str], list[tuple[int, str]]] = {
    ("read-assessment", "own"): ALL((200, "seen")),
    ("read-assessment", "others"): ALL((200, "seen")),
    ("read-assessment", "other-tenant"): ALL((404, "unseen")),
    ("list-assessments", "own"): ALL((200, "listed")),
    ("list-assessments", "others"): ALL((200, "listed")),
    ("list-assessments", "other-tenant"): ALL((200, "unlisted")),
    ("create-assessment", "own"): [(202, "created")] * 3 + [(403, "none")],
    ("delete-assessment", "own"): [(204, "deleted")] * 3 + [(403, "kept")],
    ("delete-assessment", "others"): [(204, "deleted")] * 2 + [(403, "kept")] * 2,
    ("delete-assessment", "other-tenant"): ALL((404, "kept")),
    ("list-users", "own"): ALL((200, "listed")),
    ("list-users", "others"): ALL((200, "listed")),
    ("list-users", "other-tenant"): ALL((200, "unlisted")),
    ("invite-owner", "own"): [(201, "invited")] + [(403, "none")] * 3,
    ("invite-admin", "own"): [(201, "invited")] * 2 + [(403, "none")] * 2,
    ("invite-member", "own"): [(201, "invited")] * 2 + [(403, "none")] * 2,
    ("invite-viewer", "own"): [(201, "invited")] * 2 + [(403, "none")] * 2,
    ("make-viewer", "own"): [(200, "viewer"), (200, "viewer"), (403, "member"), (403, "viewer")],
    ("make-viewer", "others"): [(200, "viewer")] * 2 + [(403, "member")] * 2,
    ("make-viewer", "other-tenant"): ALL((404, "member")),
    ("make-owner", "own"): [(200, "owner"), (403, "admin"), (403, "member"), (403, "viewer")],
    ("make-owner", "others"): [(200, "owner")] + [(403, "member")] * 3,
    ("make-owner", "other-tenant"): ALL((404, "member")),
    ("demote-owner", "others"): [(200, "member")] + [(403, "owner")] * 3,
    ("demote-owner", "other-tenant"): ALL((404, "owner")),
}
CELLS = [
    pytest.param(action, whose, role, expected, id=f"{action}-{whose}-as-{role}")
    for (action, whose), row in MATRIX.items()
    for role, expected in zip(ROLES, row, strict=True)
]
ERROR_CODES = {403: "forbidden", 404: "not_found"}


@pytest.mark.parametrize("action, whose, role, expected", CELLS)
def test_rbac_cell(http, superuser, action, whose, role, expected):
    world = make_world(role)
    response, effect = ACTIONS[action](http, world, whose, superuser)
    assert (response.status_code, effect) == expected, response.text
    if response.status_code in ERROR_CODES:
        error = response.json()["error"]
        assert error["code"] == ERROR_CODES[response.status_code]
        assert error["trace_id"] == response.headers["x-request-id"]
        # Nothing of tenant B comes back, not even in an error.
        assert world.stranger.user_id not in response.text
        assert world.assessments["other-tenant"] not in response.text


def test_the_matrix_covers_every_action_and_role():
    assert {action for action, _ in MATRIX} == set(ACTIONS)
    assert all(len(row) == len(ROLES) for row in MATRIX.values())


# --- the role comes from the database, not from the token --------------------------------


def test_a_demoted_admins_old_token_can_no_longer_do_anything(http):
    world = make_world("admin")
    old_token = world.actor.headers
    assert jwt.decode(world.actor.token, options={"verify_signature": False})["role"] == "admin"
    demoted = http.patch(
        f"/api/v1/users/{world.actor.user_id}/role",
        json={"role": "member"},
        headers=world.founder.headers,
    )
    assert demoted.status_code == 200, demoted.text

    invited = http.post(
        "/api/v1/invitations",
        json={"email": f"x-{uuid.uuid4().hex[:8]}@example.com", "role": "viewer"},
        headers=old_token,
    )
    deleted = http.delete(f"/api/v1/assessments/{world.assessments['others']}", headers=old_token)
    promoted = http.patch(
        f"/api/v1/users/{world.colleague.user_id}/role", json={"role": "admin"}, headers=old_token
    )
    # A role change revokes the older tokens (the user's token version moved on).
    assert [invited.status_code, deleted.status_code, promoted.status_code] == [401, 401, 401]
    assert {r.json()["error"]["code"] for r in (invited, deleted, promoted)} == {"token_revoked"}
    assert not is_deleted(world.actor.tenant_id, world.assessments["others"])
    assert role_of(world.colleague) == "member"


def test_a_promoted_member_needs_a_new_token_which_has_the_new_role(http):
    world = make_world("member")
    promoted = http.patch(
        f"/api/v1/users/{world.actor.user_id}/role",
        json={"role": "admin"},
        headers=world.founder.headers,
    )
    assert promoted.status_code == 200, promoted.text
    path = f"/api/v1/assessments/{world.assessments['others']}"
    assert http.delete(path, headers=world.actor.headers).status_code == 401
    # What a fresh login issues: the new role, with the user's new token version.
    token, _ = issue_access_token(
        user_id=world.actor.user_id, tenant_id=world.actor.tenant_id, role="admin", version=1
    )
    response = http.delete(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204, response.text


# --- owners: never none left ---------------------------------------------------------------


def test_the_last_owner_cannot_demote_themself(http):
    world = make_world("member")  # the founder is the only owner
    response = http.patch(
        f"/api/v1/users/{world.founder.user_id}/role",
        json={"role": "admin"},
        headers=world.founder.headers,
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "last_owner"
    assert role_of(world.founder) == "owner"


def test_with_two_owners_one_may_step_down_but_then_not_the_other(http):
    world = make_world("owner")
    first = http.patch(
        f"/api/v1/users/{world.actor.user_id}/role",
        json={"role": "admin"},
        headers=world.actor.headers,
    )
    assert first.status_code == 200, first.text
    second = http.patch(
        f"/api/v1/users/{world.founder.user_id}/role",
        json={"role": "admin"},
        headers=world.founder.headers,
    )
    assert second.status_code == 409, second.text
    assert (role_of(world.actor), role_of(world.founder)) == ("admin", "owner")


def test_two_owners_demoting_each_other_at_once_leave_one_owner(http, superuser):
    """Both requests are held at the same point (the superuser locks both user rows), then
    released together. The tenant-wide lock of a role change serializes them: the second
    sees the first's result. Without it each would still count two owners."""
    world = make_world("owner")
    a, b = world.founder, world.actor
    statuses: list[int] = []

    def demote(actor: Account, target: Account) -> None:
        with httpclient.client(base_url=str(http.base_url), timeout=30) as own:
            response = own.patch(
                f"/api/v1/users/{target.user_id}/role",
                json={"role": "member"},
                headers=actor.headers,
            )
            statuses.append(response.status_code)

    threads = [
        threading.Thread(target=demote, args=(a, b)),
        threading.Thread(target=demote, args=(b, a)),
    ]
    with su_lock(
        superuser,
        "SELECT id FROM users WHERE id = ANY(%s) FOR UPDATE",
        [uuid.UUID(a.user_id), uuid.UUID(b.user_id)],
    ):
        for thread in threads:
            thread.start()
        wait_until(
            lambda: waiting_on_a_lock(superuser) >= 2,
            10,
            0.02,
            message="both requests to wait on the lock",
        )
    for thread in threads:
        thread.join()
    owners = [u for u in (a, b) if role_of(u) == "owner"]
    assert len(owners) == 1, statuses
    assert sorted(statuses) in ([200, 403], [200, 409])


def test_role_changes_are_audited(http, superuser):
    world = make_world("admin")
    http.patch(
        f"/api/v1/users/{world.colleague.user_id}/role",
        json={"role": "viewer"},
        headers=world.actor.headers,
    )
    rows = su_rows(
        superuser,
        "SELECT actor_id, subject FROM audit_events"
        " WHERE tenant_id = %s AND action = 'role_changed'",
        world.actor.tenant_id,
    )
    assert rows == [
        (uuid.UUID(world.actor.user_id), f"user:{world.colleague.user_id} member->viewer")
    ]


BAD_ROLE_CHANGES = [
    pytest.param("{colleague}", {"role": "superuser"}, 422, id="unknown-role"),
    pytest.param("{colleague}", {}, 422, id="missing-role"),
    pytest.param("{colleague}", {"role": "admin", "tenant_id": "x"}, 422, id="extra-field"),
    pytest.param("not-a-uuid", {"role": "admin"}, 422, id="non-uuid-id"),
    pytest.param(str(uuid.UUID(int=0)), {"role": "admin"}, 404, id="unknown-user"),
]


@pytest.mark.parametrize("target, body, status", BAD_ROLE_CHANGES)
def test_bad_role_change_is_4xx_and_changes_nothing(http, target, body, status):
    world = make_world("owner")
    path = f"/api/v1/users/{target.format(colleague=world.colleague.user_id)}/role"
    response = http.patch(path, json=body, headers=world.actor.headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["trace_id"] == response.headers["x-request-id"]
    assert role_of(world.colleague) == "member"


# --- soft delete ------------------------------------------------------------------------------


def test_a_deleted_assessment_vanishes_from_get_and_list_and_cannot_be_deleted_twice(http):
    world = make_world("member")
    target = world.assessments["own"]
    path = f"/api/v1/assessments/{target}"
    assert http.delete(path, headers=world.actor.headers).status_code == 204
    for reader in (world.actor, world.founder):  # gone for everyone in the tenant
        assert http.get(path, headers=reader.headers).status_code == 404
        listed = http.get("/api/v1/assessments", params={"limit": 100}, headers=reader.headers)
        assert target not in {item["id"] for item in listed.json()["items"]}
        assert world.assessments["others"] in {item["id"] for item in listed.json()["items"]}
    second = http.delete(path, headers=world.founder.headers)
    assert second.status_code == 404 and second.json()["error"]["code"] == "not_found"
    assert is_deleted(world.actor.tenant_id, target)  # the row stays, marked


def test_the_roadmap_of_a_deleted_assessment_is_gone_too(http):
    world = make_world("member")
    created = http.post(
        "/api/v1/assessments", json={"answers": answers()}, headers=world.actor.headers
    )
    target = created.json()["id"]
    run_pending(world.actor.tenant_id)  # scores, then writes the roadmap
    run_pending(world.actor.tenant_id)
    done = http.get(f"/api/v1/assessments/{target}", headers=world.actor.headers).json()
    roadmap_path = f"/api/v1/roadmaps/{done['roadmap_id']}"
    assert http.get(roadmap_path, headers=world.actor.headers).status_code == 200

    assert (
        http.delete(f"/api/v1/assessments/{target}", headers=world.actor.headers).status_code == 204
    )
    gone = http.get(roadmap_path, headers=world.founder.headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_a_delete_is_audited(http, superuser):
    world = make_world("admin")
    target = world.assessments["others"]
    assert (
        http.delete(f"/api/v1/assessments/{target}", headers=world.actor.headers).status_code == 204
    )
    rows = su_rows(
        superuser,
        "SELECT actor_id FROM audit_events WHERE tenant_id = %s"
        " AND action = 'assessment_deleted' AND subject = %s",
        world.actor.tenant_id,
        f"assessment:{target}",
    )
    assert rows == [(uuid.UUID(world.actor.user_id),)]


def test_jobs_of_an_assessment_deleted_before_scoring_finish_without_doing_anything(http):
    world = make_world("member")
    created = http.post(
        "/api/v1/assessments", json={"answers": answers()}, headers=world.actor.headers
    )
    assert created.status_code == 202, created.text
    target = created.json()["id"]
    assert (
        http.delete(f"/api/v1/assessments/{target}", headers=world.actor.headers).status_code == 204
    )

    run_pending(world.actor.tenant_id)
    ran = jobs(world.actor.tenant_id)
    assert [(job.type, job.status) for job in ran] == [("score_assessment", "succeeded")]
    status, score = (
        scalar(world.actor.tenant_id, f"SELECT {c} FROM assessments WHERE id = :id", id=target)
        for c in ("status", "overall_score")
    )
    assert (status, score) == ("queued", None)  # never scored, no roadmap job enqueued


def test_a_roadmap_job_of_an_assessment_deleted_mid_pipeline_writes_no_roadmap(http):
    world = make_world("member")
    created = http.post(
        "/api/v1/assessments", json={"answers": answers()}, headers=world.actor.headers
    )
    target = created.json()["id"]
    tenant = world.actor.tenant_id
    run_pending(tenant)  # scores, and enqueues the roadmap job
    assert (
        http.delete(f"/api/v1/assessments/{target}", headers=world.actor.headers).status_code == 204
    )

    roadmap_job = next(job for job in jobs(tenant) if job.type == "generate_roadmap")
    assert run(str(roadmap_job.id), roadmap_job.type, tenant) == "succeeded"
    sql = "SELECT count(*) FROM roadmaps WHERE assessment_id = :id"
    assert scalar(tenant, sql, id=target) == 0
    assert scalar(tenant, "SELECT status FROM assessments WHERE id = :id", id=target) == "scored"
