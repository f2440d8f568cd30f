"""Row-level security at the database, as the runtime role app_rw.

Everything here connects with DATABASE_URL (app_rw) through plain psycopg and sets claims the
way the app does: `set_config('request.jwt.claims', ..., true)` inside the transaction. The
superuser connection is used only to set things up and to count rows regardless of RLS (a
superuser bypasses RLS, so it sees what app_rw must not) -- never to assert what app_rw sees.

Two tenants A and B are made through the real API (signup, assessments scored and roadmapped
in-process), so every tenant table holds rows of both.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.engine import make_url
from tests.integration.test_tenant_isolation import Tenant, tenant_with_roadmaps
from tests.support import httpclient
from tests.support.db import app_rw, libpq_conninfo, su_value

TENANT_TABLES = ["tenants", "users", "assessments", "roadmaps", "jobs", "outbox", "audit_events"]
# app_rw may only INSERT into these (the relay reads the outbox through a definer function;
# audit rows are read by readonly_audit): a SELECT or UPDATE is "permission denied".
INSERT_ONLY = {"outbox", "audit_events"}
READABLE = [t for t in TENANT_TABLES if t not in INSERT_ONLY]
# Readable, but their tenant column is not app_rw's to update (column grants, migration
# 0010: plan, role and membership change only through the definer functions).
NOT_UPDATABLE = INSERT_ONLY | {"tenants", "users"}


def tenant_column(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


@dataclass
class Ids:
    tenant: uuid.UUID
    user: uuid.UUID
    assessment: uuid.UUID
    job: uuid.UUID
    email: str

    @property
    def claims(self) -> dict[str, str]:
        return {"tenant_id": str(self.tenant), "sub": str(self.user), "role": "authenticated"}


def _ids(tenant: Tenant, superuser: str) -> Ids:
    job = su_value(
        superuser, "SELECT id FROM jobs WHERE tenant_id = %s LIMIT 1", tenant.account.tenant_id
    )
    return Ids(
        tenant=uuid.UUID(tenant.account.tenant_id),
        user=uuid.UUID(tenant.account.user_id),
        assessment=uuid.UUID(tenant.assessment_ids[0]),
        job=job,
        email=tenant.account.email,
    )


@pytest.fixture(scope="module")
def ab(api: str, superuser: str) -> dict[str, Ids]:
    with httpclient.client(base_url=api, timeout=30) as http:
        made = {name: tenant_with_roadmaps(http, f"RLS {name}", assessments=1) for name in "AB"}
    return {name: _ids(tenant, superuser) for name, tenant in made.items()}


def count_as_superuser(superuser: str, table: str, tenant: uuid.UUID) -> int:
    return su_value(
        superuser, f"SELECT count(*) FROM {table} WHERE {tenant_column(table)} = %s", tenant
    )


# --- reads ------------------------------------------------------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_without_claims_app_rw_sees_no_rows(ab, superuser, table):
    assert count_as_superuser(superuser, table, ab["B"].tenant) > 0  # rows do exist
    with app_rw() as conn:
        if table in INSERT_ONLY:
            with pytest.raises(
                errors.InsufficientPrivilege, match=f"permission denied for table {table}"
            ):
                conn.execute(f"SELECT count(*) FROM {table}")
        else:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_other_tenants_claims_see_none_of_its_rows(ab, superuser, table):
    column = tenant_column(table)
    assert count_as_superuser(superuser, table, ab["B"].tenant) > 0
    with app_rw(ab["A"].claims) as conn:
        if table in INSERT_ONLY:
            with pytest.raises(
                errors.InsufficientPrivilege, match=f"permission denied for table {table}"
            ):
                conn.execute(f"SELECT count(*) FROM {table}")
            return
        tenants_seen = {row[0] for row in conn.execute(f"SELECT {column} FROM {table}")}
    assert tenants_seen == {ab["A"].tenant}  # own rows visible, B's not


# --- writes -----------------------------------------------------------------------------


def insert_row(table: str, owner: Ids, acting_user: uuid.UUID) -> tuple[str, tuple]:
    """An INSERT of a valid `table` row for `owner`'s tenant (foreign keys point at the
    owner's real rows; `created_by` is the acting user, as the assessments policy wants)."""
    tenant = owner.tenant
    rows = {
        "tenants": ("INSERT INTO tenants (id, name) VALUES (%s, 'intruder')", (tenant,)),
        "users": (
            "INSERT INTO users (tenant_id, email, password_hash, role)"
            " VALUES (%s, %s, 'x', 'member')",
            (tenant, f"intruder-{uuid.uuid4().hex[:8]}@example.com"),
        ),
        "assessments": (
            "INSERT INTO assessments (tenant_id, created_by, answers) VALUES (%s, %s, '{}')",
            (tenant, acting_user),
        ),
        "roadmaps": (
            # A fresh assessment of the owner would be needed for a real roadmap; RLS must
            # reject before the unique assessment_id is even looked at.
            "INSERT INTO roadmaps (tenant_id, assessment_id, items, provider, model, duration_ms)"
            " VALUES (%s, %s, '[]', 'x', 'x', 1)",
            (tenant, owner.assessment),
        ),
        "jobs": (
            "INSERT INTO jobs (tenant_id, type, idempotency_key) VALUES (%s, 'x', %s)",
            (tenant, uuid.uuid4().hex),
        ),
        "outbox": (
            "INSERT INTO outbox (tenant_id, job_id, task) VALUES (%s, %s, 'x')",
            (tenant, owner.job),
        ),
        "audit_events": (
            "INSERT INTO audit_events (tenant_id, action) VALUES (%s, 'intrusion')",
            (tenant,),
        ),
    }
    return rows[table]


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_insert_with_another_tenants_id_is_rejected_by_rls(ab, superuser, table):
    before = count_as_superuser(superuser, table, ab["B"].tenant)
    with (
        app_rw(ab["A"].claims) as conn,
        pytest.raises(
            errors.InsufficientPrivilege,
            match=f'new row violates row-level security policy for table "{table}"',
        ),
    ):
        conn.execute(*insert_row(table, ab["B"], acting_user=ab["A"].user))
    assert count_as_superuser(superuser, table, ab["B"].tenant) == before


@pytest.mark.parametrize("table", [t for t in TENANT_TABLES if t not in ("tenants", "roadmaps")])
def test_insert_for_own_tenant_is_accepted(ab, table):
    """Control for the test above: the same row with A's own tenant passes RLS.

    (tenants: A exists already; roadmaps: A's assessment has its one roadmap already.)
    """
    with app_rw(ab["A"].claims) as conn:
        assert conn.execute(*insert_row(table, ab["A"], acting_user=ab["A"].user)).rowcount == 1


def test_new_tenant_row_needs_its_own_claims(ab):
    """Signup's path: a tenant row is accepted only under claims naming that very tenant."""
    fresh = uuid.uuid4()
    sql = "INSERT INTO tenants (id, name) VALUES (%s, 'new')"
    with app_rw({"tenant_id": str(fresh), "sub": str(uuid.uuid4())}) as conn:
        assert conn.execute(sql, (fresh,)).rowcount == 1
    with (
        app_rw(ab["A"].claims) as conn,
        pytest.raises(errors.InsufficientPrivilege, match="row-level security policy"),
    ):
        conn.execute(sql, (fresh,))


def test_assessment_must_be_created_by_the_claimed_user(ab):
    with (
        app_rw(ab["A"].claims) as conn,
        pytest.raises(errors.InsufficientPrivilege, match="row-level security policy"),
    ):
        conn.execute(
            "INSERT INTO assessments (tenant_id, created_by, answers) VALUES (%s, %s, '{}')",
            (ab["A"].tenant, ab["B"].user),
        )


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_update_of_another_tenants_rows_affects_nothing(ab, table):
    column = tenant_column(table)
    sql = f"UPDATE {table} SET {column} = {column} WHERE {column} = %s"
    with app_rw(ab["A"].claims) as conn:
        if table in NOT_UPDATABLE:
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(sql, (ab["B"].tenant,))
            return
        assert conn.execute(sql, (ab["B"].tenant,)).rowcount == 0
        # Control: the same statement does reach A's own rows.
        assert conn.execute(sql, (ab["A"].tenant,)).rowcount > 0


@pytest.mark.parametrize("table", READABLE)
def test_moving_own_rows_into_another_tenant_is_rejected(ab, table):
    column = tenant_column(table)
    refusal = "permission denied" if table in NOT_UPDATABLE else "row-level security policy"
    with (
        app_rw(ab["A"].claims) as conn,
        pytest.raises(errors.InsufficientPrivilege, match=refusal),
    ):
        conn.execute(
            f"UPDATE {table} SET {column} = %s WHERE {column} = %s",
            (ab["B"].tenant, ab["A"].tenant),
        )


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_delete_is_not_granted_at_all(ab, superuser, table):
    before = count_as_superuser(superuser, table, ab["B"].tenant)
    with (
        app_rw(ab["A"].claims) as conn,
        pytest.raises(errors.InsufficientPrivilege, match=f"permission denied for table {table}"),
    ):
        conn.execute(f"DELETE FROM {table}")
    assert count_as_superuser(superuser, table, ab["B"].tenant) == before


# --- no way around it: DDL, role switching, role attributes ------------------------------

REFUSED = [
    pytest.param("ALTER TABLE assessments ADD COLUMN intruder int", id="alter-table"),
    pytest.param("ALTER TABLE assessments DISABLE ROW LEVEL SECURITY", id="disable-rls"),
    pytest.param("ALTER TABLE assessments NO FORCE ROW LEVEL SECURITY", id="no-force-rls"),
    pytest.param("ALTER TABLE assessments OWNER TO app_rw", id="take-ownership"),
    pytest.param("DROP TABLE assessments", id="drop-table"),
    pytest.param("DROP POLICY assessments_select ON assessments", id="drop-policy"),
    pytest.param(
        "CREATE POLICY open ON assessments FOR SELECT TO app_rw USING (true)", id="create-policy"
    ),
    pytest.param("TRUNCATE assessments", id="truncate"),
    pytest.param("CREATE TABLE public.intruder (id int)", id="create-table-public"),
    pytest.param("CREATE TABLE app.intruder (id int)", id="create-table-app"),
    pytest.param("CREATE SCHEMA intruder", id="create-schema"),
    pytest.param(
        "CREATE OR REPLACE FUNCTION app.tenant_id() RETURNS uuid"
        " LANGUAGE sql AS 'SELECT NULL::uuid'",
        id="replace-claim-function",
    ),
    pytest.param("ALTER ROLE app_rw BYPASSRLS", id="grant-self-bypassrls"),
    # {migration_role}: whoever ran the migrations (migration_admin, or postgres on Supabase).
    pytest.param("SET ROLE {migration_role}", id="set-role-migration-role"),
    pytest.param("SET ROLE readonly_audit", id="set-role-readonly-audit"),
    pytest.param("SET SESSION AUTHORIZATION {migration_role}", id="session-authorization"),
]


@pytest.mark.parametrize("statement", REFUSED)
def test_app_rw_cannot_change_schema_policies_or_roles(statement):
    migration_role = make_url(os.environ["MIGRATION_DATABASE_URL"]).username
    with app_rw() as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement.format(migration_role=migration_role))


def test_app_rw_is_no_superuser_has_no_bypassrls_and_no_role_to_switch_to():
    with app_rw() as conn:
        attributes = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit"
            " FROM pg_roles WHERE rolname = 'app_rw'"
        ).fetchone()
        memberships = conn.execute(
            "SELECT count(*) FROM pg_auth_members WHERE member = 'app_rw'::regrole"
        ).fetchone()[0]
    assert attributes == (False, False, False, False, False)
    assert memberships == 0


OWNED = {
    "pg_class": "SELECT relname FROM pg_class WHERE relowner = 'app_rw'::regrole",
    "pg_proc": "SELECT proname FROM pg_proc WHERE proowner = 'app_rw'::regrole",
    "pg_namespace": "SELECT nspname FROM pg_namespace WHERE nspowner = 'app_rw'::regrole",
    "pg_type": "SELECT typname FROM pg_type WHERE typowner = 'app_rw'::regrole",
    "pg_database": "SELECT datname FROM pg_database WHERE datdba = 'app_rw'::regrole",
}


@pytest.mark.parametrize("catalog", OWNED)
def test_app_rw_owns_nothing(catalog):
    with app_rw() as conn:
        assert conn.execute(OWNED[catalog]).fetchall() == []


def test_every_public_table_has_rls_enabled_and_forced():
    """Guards future migrations: a new table without ENABLE + FORCE RLS fails here."""
    with app_rw() as conn:
        tables = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
            " AND relname <> 'alembic_version' ORDER BY relname"
        ).fetchall()
    assert set(TENANT_TABLES) <= {name for name, _, _ in tables}  # the query sees the schema
    unprotected = [name for name, enabled, forced in tables if not (enabled and forced)]
    assert unprotected == []


# --- claims are transaction-local -------------------------------------------------------


def test_claims_vanish_at_commit_on_the_same_connection(ab):
    with psycopg.connect(libpq_conninfo(os.environ["DATABASE_URL"])) as conn:
        with conn.transaction():
            conn.execute(
                "SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(ab["A"].claims),)
            )
            assert conn.execute("SELECT count(*) FROM assessments").fetchone()[0] > 0
        with conn.transaction():
            assert conn.execute("SELECT count(*) FROM assessments").fetchone()[0] == 0
            assert conn.execute("SELECT app.tenant_id()").fetchone()[0] is None


# --- the named cross-tenant paths -------------------------------------------------------


def test_user_for_login_finds_exactly_that_user_by_its_canonical_email(ab):
    # The API canonicalizes an address before it asks (kit/security/emails.py; the
    # equivalent spellings are tests/integration/test_email_identity.py's): the function
    # matches exactly, so another spelling finds nothing here.
    with app_rw() as conn:  # no claims: login runs before any tenant is known
        rows = conn.execute(
            "SELECT id, tenant_id FROM app.user_for_login(%s)", (ab["A"].email,)
        ).fetchall()
        assert rows == [(ab["A"].user, ab["A"].tenant)]
        upper = conn.execute(
            "SELECT id FROM app.user_for_login(%s)", (ab["A"].email.upper(),)
        ).fetchall()
        assert upper == []


@pytest.mark.parametrize("email", ["nobody-at-all@example.com", "%", "%@example.com", ""])
def test_user_for_login_finds_nothing_for_unknown_or_pattern_emails(ab, email):
    with app_rw() as conn:
        assert conn.execute("SELECT id FROM app.user_for_login(%s)", (email,)).fetchall() == []


def test_outbox_claim_returns_rows_of_several_tenants(ab):
    """The relay's documented path. Rolled back: nothing is marked sent or stays locked.

    (Assumes fewer than 1000 unsent rows in the test database, which the suite keeps to.)
    """
    with app_rw() as conn:
        rows = conn.execute("SELECT tenant_id, job_id FROM app.outbox_claim(1000)").fetchall()
    tenants = {tenant for tenant, _ in rows}
    assert {ab["A"].tenant, ab["B"].tenant} <= tenants


# --- readonly_audit ---------------------------------------------------------------------


@contextmanager
def as_readonly_audit(superuser: str) -> Iterator[psycopg.Connection]:
    """Setup, not an RLS assertion on the superuser: readonly_audit is NOLOGIN (it is granted
    to people's login roles), so a superuser session switches to it with SET ROLE; from then
    on only readonly_audit's privileges and policies apply."""
    with psycopg.connect(superuser) as conn:
        conn.execute("SET ROLE readonly_audit")
        assert conn.execute("SELECT current_user").fetchone()[0] == "readonly_audit"
        try:
            yield conn
        finally:
            conn.rollback()


def test_readonly_audit_reads_every_tenants_audit_events(ab, superuser):
    with as_readonly_audit(superuser) as conn:
        tenants = {row[0] for row in conn.execute("SELECT tenant_id FROM audit_events")}
    assert {ab["A"].tenant, ab["B"].tenant} <= tenants


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("SELECT count(*) FROM assessments", id="read-assessments"),
        pytest.param("SELECT count(*) FROM users", id="read-users"),
        pytest.param("SELECT count(*) FROM tenants", id="read-tenants"),
        pytest.param(
            "INSERT INTO audit_events (tenant_id, action) VALUES (gen_random_uuid(), 'x')",
            id="write-audit",
        ),
        pytest.param("DELETE FROM audit_events", id="delete-audit"),
    ],
)
def test_readonly_audit_cannot_read_domain_tables_or_write(superuser, statement):
    with (
        as_readonly_audit(superuser) as conn,
        pytest.raises(errors.InsufficientPrivilege, match="permission denied"),
    ):
        conn.execute(statement)
