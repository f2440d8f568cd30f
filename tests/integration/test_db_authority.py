"""What the runtime role may do at the database, beyond RLS (issue 9, hardening gaps):
plan and role change only through the definer functions that check authority and write the
audit trail; the operator functions belong to the operator's role; and only the
transaction-local claims count."""

from __future__ import annotations

import json
import os
import uuid

import psycopg
import pytest
from psycopg import errors
from tests.support.db import add_user, app_rw, libpq_conninfo, su_rows
from tests.support.users import signup


@pytest.fixture(scope="module")
def tenants(http):
    return signup(http, "Authority A"), signup(http, "Authority B")


def _claims(account, sub: str | None = None) -> dict[str, str]:
    return {"tenant_id": account.tenant_id, "sub": sub or account.user_id, "role": "authenticated"}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE tenants SET plan = 'pro'",
        "UPDATE tenants SET name = 'renamed'",
        "UPDATE users SET role = 'owner'",
        "UPDATE users SET token_version = 0",
    ],
)
def test_app_rw_cannot_update_plan_role_or_membership_directly(tenants, statement):
    owner, _ = tenants
    with app_rw(_claims(owner)) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_role_function_checks_the_callers_authority_and_writes_the_audit_trail(
    tenants, superuser
):
    owner, _ = tenants
    member = add_user(owner.tenant_id, "member")
    viewer = add_user(owner.tenant_id, "viewer")
    # A member acting through app_rw (say, a bug in a member's path) cannot promote anyone.
    with (
        app_rw(_claims(owner, member.user_id)) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT app.user_set_role(%s, 'owner', NULL)", (member.user_id,))
    trace_id = uuid.uuid4().hex
    with psycopg.connect(libpq_conninfo(os.environ["DATABASE_URL"])) as conn:
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(_claims(owner)),)
        )
        old = conn.execute(
            "SELECT app.user_set_role(%s, 'admin', %s)", (viewer.user_id, trace_id)
        ).fetchone()[0]
    assert old == "viewer"
    [(role, version)] = su_rows(
        superuser, "SELECT role, token_version FROM users WHERE id = %s", viewer.user_id
    )
    audited = su_rows(
        superuser, "SELECT actor_id::text, action FROM audit_events WHERE trace_id = %s", trace_id
    )
    assert (role, version) == ("admin", 1)
    assert audited == [(owner.user_id, "role_changed")]


def test_only_background_claims_change_a_plan(tenants):
    owner, _ = tenants
    with app_rw(_claims(owner)) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT app.tenant_set_plan('pro', 'evt_forged', NULL)")


@pytest.mark.parametrize(
    "call",
    [
        "SELECT * FROM app.dlq_list(true)",
        "SELECT * FROM app.dlq_show(1)",
        "SELECT app.dlq_replay(1)",
        "SELECT app.dlq_discard(1)",
        "SELECT * FROM app.incident_list(true, 10)",
        "SELECT * FROM app.trace_lookup(repeat('ab', 16))",
    ],
)
def test_operator_functions_are_the_operators_not_the_apis(call):
    with app_rw() as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(call)
    with psycopg.connect(libpq_conninfo(os.environ["OPERATOR_DATABASE_URL"])) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "rampart_operator"
        conn.execute(call)  # allowed (whatever it finds)
        conn.rollback()


def test_only_the_transaction_local_claims_count(tenants, superuser):
    a, b = tenants
    with psycopg.connect(libpq_conninfo(os.environ["DATABASE_URL"])) as conn:
        # Session-level settings, as a pooled connection could carry them from anywhere:
        # Supabase's auth.jwt() reads these first. Ours must not.
        conn.execute("SELECT set_config('request.jwt.claim', %s, false)", (json.dumps(_claims(b)),))
        conn.execute("SELECT set_config('request.jwt.claim.sub', %s, false)", (b.user_id,))
        conn.commit()
        assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0
        assert conn.execute("SELECT app.uid()").fetchone()[0] is None
        conn.rollback()
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(_claims(a)),))
        seen = [str(row[0]) for row in conn.execute("SELECT id FROM tenants").fetchall()]
        uid = str(conn.execute("SELECT app.uid()").fetchone()[0])
        conn.rollback()
    assert seen == [a.tenant_id] and uid == a.user_id
