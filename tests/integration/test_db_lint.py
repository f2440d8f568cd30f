"""`rampart db lint` on the real database: each lint sees a flaw planted in a throw-away
schema (or role), our migrated schema is checked, and the command runs as a subprocess.

Planting needs the embedded Postgres' superuser (it creates roles and objects of other
owners); the lint itself connects as the migration role, as `rampart db lint` does.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.support.cli import rampart
from tests.support.db import libpq_conninfo

from rampart.kit.db.lint import (
    CROSS_TENANT_ROLES,
    DEFINER_EXECUTE_ROLES,
    LINTS,
    ORDER,
    RLS_TABLES_WITHOUT_TENANT_COLUMN,
    Finding,
    LintConfig,
    run_lints,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def owner_url() -> str:
    return libpq_conninfo(os.environ["MIGRATION_DATABASE_URL"])


class Plant:
    """A throw-away schema `name` (and roles made through `role`), dropped afterwards."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.tag = uuid.uuid4().hex[:8]
        self.name = f"lint_plant_{self.tag}"
        self.roles: list[str] = []
        conn.execute(f"CREATE SCHEMA {self.name}")

    def sql(self, *statements: str) -> None:
        for statement in statements:
            self.conn.execute(statement.replace("S.", f"{self.name}."))

    def role(self, kind: str, attributes: str = "") -> str:
        name = f"lint_{kind}_{self.tag}"
        self.conn.execute(f"CREATE ROLE {name} NOLOGIN {attributes}")
        self.roles.append(name)
        return name

    def lint(self, name: str, **config) -> list[Finding]:
        return run_lints(owner_url(), LintConfig(schemas=(self.name,), **config), [name])

    def drop(self) -> None:
        self.conn.execute(f"DROP SCHEMA {self.name} CASCADE")
        for role in reversed(self.roles):
            self.conn.execute(f"DROP OWNED BY {role}")
            self.conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def plant(superuser: str) -> Iterator[Plant]:
    with psycopg.connect(superuser, autocommit=True) as conn:
        planted = Plant(conn)
        try:
            yield planted
        finally:
            planted.drop()


def seen(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.level, f.object) for f in findings}


# --- one planted flaw per lint --------------------------------------------------------------


def test_rls_enabled_forced_finds_tenant_tables_without_rls_or_force(plant):
    plant.sql(
        "CREATE TABLE S.open (id int, tenant_id uuid)",
        "CREATE TABLE S.unforced (id int, tenant_id uuid)",
        "ALTER TABLE S.unforced ENABLE ROW LEVEL SECURITY",
        "CREATE TABLE S.idle_policies (id int)",
        "CREATE POLICY p ON S.idle_policies FOR SELECT USING (id = 1)",
        "CREATE TABLE S.guarded (id int, tenant_id uuid)",
        "ALTER TABLE S.guarded ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE S.guarded FORCE ROW LEVEL SECURITY",
        "CREATE TABLE S.plain (id int)",
    )
    findings = plant.lint("rls_enabled_forced")
    s = plant.name
    assert seen(findings) == {
        ("error", f"{s}.open"),
        ("error", f"{s}.unforced"),
        ("error", f"{s}.idle_policies"),
    }
    by_object = {f.object: f.message for f in findings}
    assert "not forced" in by_object[f"{s}.unforced"]
    assert "policies, which do nothing" in by_object[f"{s}.idle_policies"]


def test_rls_enabled_forced_covers_listed_tables_without_a_tenant_column(plant):
    plant.sql("CREATE TABLE S.accounts (id int)")
    config = {"rls_tables": (f"{plant.name}.accounts",)}
    assert seen(plant.lint("rls_enabled_forced", **config)) == {("error", f"{plant.name}.accounts")}


def test_no_always_true_policy_by_whom_it_lets_through(plant):
    anon = plant.role("anon")
    other = plant.role("other")
    auditor = plant.role("auditor")
    plant.sql(
        "CREATE TABLE S.t (id int, tenant_id uuid)",
        "ALTER TABLE S.t ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE S.t FORCE ROW LEVEL SECURITY",
        "CREATE POLICY to_public ON S.t FOR SELECT USING (true)",
        "CREATE POLICY tautology ON S.t FOR UPDATE TO app_rw USING (1 = 1 AND true)",
        f"CREATE POLICY blind ON S.t FOR SELECT TO {anon} USING (current_user = 'x')",
        f"CREATE POLICY open_insert ON S.t FOR INSERT TO {other} WITH CHECK (true)",
        "CREATE POLICY definer ON S.t FOR ALL TO CURRENT_USER USING (true)",
        f"CREATE POLICY audit ON S.t FOR SELECT TO {auditor} USING (true)",
        # Not flagged: restrictive (ANDed), scoped to the tenant, false, no expression.
        "CREATE POLICY narrowing ON S.t AS RESTRICTIVE FOR SELECT TO app_rw USING (true)",
        "CREATE POLICY scoped ON S.t FOR SELECT TO app_rw"
        " USING (tenant_id = (select app.tenant_id()))",
        "CREATE POLICY never ON S.t FOR SELECT TO app_rw USING (1 = 2)",
        f"CREATE POLICY bare ON S.t FOR SELECT TO {other}",
    )
    findings = plant.lint(
        "no_always_true_policy", exposed_roles=(anon,), cross_tenant_roles=(auditor,)
    )
    t = f"{plant.name}.t policy"
    assert seen(findings) == {
        ("error", f"{t} to_public"),
        ("error", f"{t} tautology"),
        ("error", f"{t} blind"),
        ("warn", f"{t} open_insert"),
        ("info", f"{t} definer"),
        ("info", f"{t} audit"),
    }
    blind = next(f for f in findings if f.object.endswith(" blind"))
    assert "reads no column" in blind.message


def test_table_without_policy(plant):
    plant.sql(
        "CREATE TABLE S.sealed (id int)",
        "ALTER TABLE S.sealed ENABLE ROW LEVEL SECURITY",
        "CREATE TABLE S.kept (id int)",
        "ALTER TABLE S.kept ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY p ON S.kept FOR SELECT TO app_rw USING (id = 1)",
    )
    assert seen(plant.lint("table_without_policy")) == {("warn", f"{plant.name}.sealed")}


def test_exposed_privileges_direct_through_public_inherited_and_by_default(plant):
    anon = plant.role("anon")
    holder = plant.role("holder")
    plant.sql(
        "CREATE TABLE S.to_public (id int)",
        "GRANT SELECT ON S.to_public TO PUBLIC",
        "CREATE TABLE S.inherited (id int)",
        f"GRANT INSERT ON S.inherited TO {holder}",
        f"GRANT {holder} TO {anon}",
        "CREATE TABLE S.one_column (id int, secret text)",
        f"GRANT SELECT (id) ON S.one_column TO {anon}",
        "CREATE SEQUENCE S.counter",
        f"GRANT USAGE ON SEQUENCE S.counter TO {anon}",
        # A function created without revoking PUBLIC's default EXECUTE.
        "CREATE FUNCTION S.helper() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        f"GRANT CREATE ON SCHEMA {plant.name} TO PUBLIC",
        "CREATE TABLE S.private (id int)",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {plant.name} GRANT SELECT ON TABLES TO {anon}",
        # The owner role's (who connects: the migration role) reach our next objects.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE migration_admin IN SCHEMA {plant.name}"
        f" GRANT EXECUTE ON FUNCTIONS TO {anon}",
        "CREATE TABLE S.later (id int)",
        "CREATE FUNCTION S.closed() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "REVOKE ALL ON FUNCTION S.closed() FROM PUBLIC",
    )
    # A role the server lacks (Supabase's on plain Postgres) is skipped, not an error.
    findings = plant.lint("exposed_privileges", exposed_roles=(anon, "lint_absent_role"))
    s = plant.name
    objects = {(f.level, f.object): f.message for f in findings}
    assert set(objects) == {
        ("error", f"table {s}.to_public"),
        ("error", f"table {s}.inherited"),
        ("error", f"columns {s}.one_column"),
        ("error", f"sequence {s}.counter"),
        ("error", f"function {s}.helper()"),
        ("error", f"schema {s}"),
        # Another role's defaults reach only what it creates: worth knowing, not ours.
        ("info", f"default privileges of postgres in {s}"),
        ("warn", f"default privileges of migration_admin in {s}"),
        ("error", f"table {s}.later"),  # given to anon by those default privileges
    }
    assert objects[("error", f"table {s}.to_public")].startswith("PUBLIC holds SELECT")
    assert objects[("error", f"table {s}.inherited")].startswith(f"{anon} holds INSERT")
    assert "SELECT (id)" in objects[("error", f"columns {s}.one_column")]
    assert "secret" not in objects[("error", f"columns {s}.one_column")]


def test_definer_search_path(plant):
    plant.sql(
        "CREATE FUNCTION S.loose() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        "CREATE FUNCTION S.pinned() RETURNS int LANGUAGE sql SECURITY DEFINER"
        " SET search_path = pg_catalog AS 'SELECT 1'",
        "CREATE FUNCTION S.invoker() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    )
    assert seen(plant.lint("definer_search_path")) == {("error", f"function {plant.name}.loose()")}


def test_definer_owner_and_execute(plant):
    stranger = plant.role("stranger")
    copy_owner = plant.role("owner")
    definer = "LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS 'SELECT 1'"
    plant.sql(
        *(
            f"CREATE FUNCTION S.{name}() RETURNS int {definer}"
            for name in ("good", "wide", "public", "alien", "super")
        ),
        *(
            f"ALTER FUNCTION S.{name}() OWNER TO migration_admin"
            for name in ("good", "wide", "public")
        ),
        f"ALTER FUNCTION S.alien() OWNER TO {copy_owner}",
        *(f"REVOKE ALL ON FUNCTION S.{n}() FROM PUBLIC" for n in ("good", "wide", "alien")),
        "REVOKE ALL ON FUNCTION S.super() FROM PUBLIC",
        "GRANT EXECUTE ON FUNCTION S.good() TO app_rw, rampart_operator",
        f"GRANT EXECUTE ON FUNCTION S.wide() TO app_rw, {stranger}",
    )
    findings = plant.lint("definer_owner_and_execute")
    s = plant.name
    messages = [(f.object, f.message) for f in findings]
    assert {o for o, _ in messages} == {
        f"function {s}.wide()",
        f"function {s}.public()",
        f"function {s}.alien()",
        f"function {s}.super()",
    }
    assert all(f.level == "error" for f in findings)
    text = "\n".join(f"{o}: {m}" for o, m in messages)
    assert f"{s}.wide(): EXECUTE granted to {stranger};" in text
    assert f"{s}.public(): EXECUTE granted to PUBLIC;" in text
    assert f"{s}.alien(): owned by {copy_owner}, not migration_admin" in text
    assert f"{s}.super(): its owner postgres is a superuser" in text


def test_extension_in_exposed_schema(plant):
    available = plant.conn.execute(
        "SELECT name FROM pg_available_extensions WHERE installed_version IS NULL"
        " AND name = ANY(ARRAY['citext', 'pg_trgm', 'btree_gin', 'hstore']) ORDER BY 1"
    ).fetchone()
    if available is None:
        pytest.skip("no extension left to install on this server")
    extension = available[0]
    plant.sql(f"CREATE EXTENSION {extension} SCHEMA {plant.name}")
    try:
        findings = plant.lint("extension_in_exposed_schema")
    finally:
        plant.sql(f"DROP EXTENSION {extension}")
    assert ("warn", f"extension {extension}") in seen(findings)
    # Its functions (EXECUTE for PUBLIC) are the extension's, not reported as ours.
    assert plant.lint("exposed_privileges") == []


def test_policy_initplan(plant):
    plant.sql(
        "CREATE TABLE S.t (id int, tenant_id uuid, owner_id uuid)",
        "ALTER TABLE S.t ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY per_row ON S.t FOR SELECT TO app_rw USING (tenant_id = app.tenant_id())",
        "CREATE POLICY auth_per_row ON S.t FOR INSERT TO app_rw"
        " WITH CHECK (tenant_id = (select app.tenant_id()) AND owner_id = auth.uid())",
        "CREATE POLICY setting ON S.t FOR DELETE TO app_rw"
        " USING (tenant_id = nullif(current_setting('x.tenant', true), '')::uuid)",
        "CREATE POLICY once ON S.t FOR UPDATE TO app_rw"
        " USING (tenant_id = (select app.tenant_id()))"
        " WITH CHECK (owner_id = (select auth.uid()))",
    )
    findings = plant.lint("policy_initplan")
    t = f"{plant.name}.t policy"
    assert seen(findings) == {
        ("warn", f"{t} per_row"),
        ("warn", f"{t} auth_per_row"),
        ("warn", f"{t} setting"),
    }
    auth = next(f for f in findings if f.object.endswith("auth_per_row"))
    assert "auth.uid()" in auth.message and "app.tenant_id()" not in auth.message


def test_unindexed_foreign_key(plant):
    plant.sql(
        "CREATE TABLE S.parent (id int PRIMARY KEY, k int, UNIQUE (id, k))",
        "CREATE TABLE S.bare (parent_id int REFERENCES S.parent)",
        "CREATE TABLE S.partial (parent_id int REFERENCES S.parent, gone bool)",
        "CREATE INDEX ON S.partial (parent_id) WHERE NOT gone",
        "CREATE TABLE S.behind (x int, parent_id int REFERENCES S.parent)",
        "CREATE INDEX ON S.behind (x, parent_id)",
        "CREATE TABLE S.covered (parent_id int REFERENCES S.parent, at int)",
        "CREATE INDEX ON S.covered (parent_id, at)",
        "CREATE TABLE S.pair (k int, parent_id int, FOREIGN KEY (parent_id, k)"
        " REFERENCES S.parent (id, k))",
        "CREATE INDEX ON S.pair (k, parent_id)",
    )
    s = plant.name
    assert {f.object.split(" constraint ")[0] for f in plant.lint("unindexed_foreign_key")} == {
        f"{s}.bare",
        f"{s}.partial",
        f"{s}.behind",
    }


def test_app_role_privileges_of_a_powerful_copy_of_the_runtime_role(plant):
    boss = plant.role("boss", "CREATEROLE")
    copy = plant.role("app_copy", "BYPASSRLS CREATEDB")
    plant.sql(
        f"GRANT CREATE ON SCHEMA {plant.name} TO {copy}",
        "CREATE TABLE S.mine (id int)",
        f"ALTER TABLE S.mine OWNER TO {copy}",
        f"GRANT {boss} TO {copy}",
    )
    messages = {
        (f.level, f.object, f.message) for f in plant.lint("app_role_privileges", app_role=copy)
    }
    assert messages >= {
        ("error", f"role {copy}", "has BYPASSRLS"),
        ("error", f"role {copy}", "has CREATEDB"),
        (
            "error",
            f"schema {plant.name}",
            f"{copy} may CREATE objects in it (then own them, and shadow names)",
        ),
    }
    text = "\n".join(f"{o}: {m}" for _, o, m in messages)
    assert f"table {plant.name}.mine: owned by {copy}" in text
    assert f"is a member of {boss}" in text
    assert all(level == "error" for level, _, _ in messages)


def test_app_role_privileges_of_a_missing_role_is_info_not_a_pass_or_a_crash(plant):
    findings = plant.lint("app_role_privileges", app_role="lint_no_such_role")
    assert [(f.level, f.object) for f in findings] == [("info", "role lint_no_such_role")]


# --- our schema ------------------------------------------------------------------------------

def test_our_schema_passes_every_lint_with_no_error_and_no_warning(stack):
    findings = run_lints(owner_url())
    assert [(f.lint, f.object) for f in findings if f.level in ("error", "warn")] == []
    # The definer paths and the auditor are the only always-true policies.
    always_true = [f for f in findings if f.lint == "no_always_true_policy"]
    assert always_true and all(f.level == "info" for f in always_true)
    assert all(
        " for migration_admin:" in f.message or " for readonly_audit:" in f.message
        for f in always_true
    )


# --- the lists and the docs agree -------------------------------------------------------------


def _listed(label: str) -> tuple[str, ...]:
    line = next(line for line in DOCS.read_text().splitlines() if line.startswith(f"- {label}"))
    return tuple(re.findall(r"`([^`]+)`", line.split(":", 1)[1]))


def test_docs_state_the_lists_the_lints_use():
    assert _listed("Roles that may EXECUTE a SECURITY DEFINER function") == DEFINER_EXECUTE_ROLES
    assert _listed("Cross-tenant roles") == CROSS_TENANT_ROLES
    assert _listed("Tables RLS must protect") == RLS_TABLES_WITHOUT_TENANT_COLUMN


def test_every_lint_has_its_section_in_the_docs_in_order():
    headings = re.findall(r"^### (\w+)$", DOCS.read_text(), re.MULTILINE)
    assert [h for h in headings if h in LINTS] == list(ORDER)
    assert all(lint.doc == f"docs/security.md#{name}" for name, lint in LINTS.items())


# --- the command --------------------------------------------------------------------------------


def test_the_command_passes_on_our_schema_and_prints_json(stack):
    result = rampart("db", "lint", "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"database", "summary", "findings"}
    assert report["database"]["user"] == "migration_admin"
    assert report["summary"]["error"] == 0 and report["summary"]["warn"] == 0
    assert report["summary"]["info"] > 0
    first = report["findings"][0]
    assert set(first) == {"lint", "level", "object", "message", "hint", "doc"}
    assert (
        "password" not in result.stdout
        and os.environ["MIGRATION_DATABASE_URL"] not in result.stdout
    )


@pytest.mark.slow  # CLI processes
def test_the_command_fails_on_a_warning_unless_not_strict_and_prints_a_table(plant):
    plant.sql(
        "CREATE TABLE S.parent (id int PRIMARY KEY)",
        "CREATE TABLE S.bare (parent_id int REFERENCES S.parent)",
    )
    only = ("--schema", plant.name, "--only", "unindexed_foreign_key")
    strict = rampart("db", "lint", *only, check=False)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert f"{plant.name}.bare" in strict.stdout
    lenient = rampart("db", "lint", "--no-strict", *only, check=False)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "unindexed_foreign_key" in lenient.stdout
    assert "0 error(s), 1 warning(s)" in lenient.stdout


@pytest.mark.slow  # CLI processes waiting for a connection that fails
def test_the_command_exits_2_when_it_cannot_read_the_database(stack):
    result = rampart(
        "db", "lint", "--database-url", "postgresql://nobody:x@127.0.0.1:1/none", check=False
    )
    assert result.returncode == 2
    assert "could not run" in result.stderr and "nobody:x" not in result.stderr


def test_the_command_exits_1_on_an_error_even_when_not_strict(plant):
    plant.sql("CREATE TABLE S.open (id int, tenant_id uuid)")
    result = rampart(
        "db",
        "lint",
        "--no-strict",
        "--json",
        "--schema",
        plant.name,
        "--only",
        "rls_enabled_forced",
        check=False,
    )
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [(f["lint"], f["level"], f["object"]) for f in findings] == [
        ("rls_enabled_forced", "error", f"{plant.name}.open")
    ]
