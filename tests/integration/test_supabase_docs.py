"""docs/supabase.md, followed literally on the Supabase-shaped Postgres: its `sh` blocks
marked `<!-- doc-test: NAME -->` run in bash as written; the `env` blocks name the
variables the test sets (to this server's addresses instead of Supabase's), and must name
exactly those. Runs under RAMPART_TEST_DB_SHAPE=supabase (`make test` does).

- `migrate` (as `postgres`, Supabase's migration role) on a fresh Supabase-shaped
  database of the session's server;
- `migrate-own-role` (step 3b: `postgres` creates migration_admin, which migrates) on a
  Supabase-shaped server of its own, where no Rampart role exists yet;
- `lint` on the first, once `rampart db lint` exists.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from tests.support import supabase
from tests.support.releases import newest_migration
from tests.support.stack import TestStack

from rampart.devstack.ports import free_port
from rampart.devstack.postgres import EmbeddedPostgres, install_dir

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "supabase.md"
PROJECT_REF = "abcdefghijklmnopqrst"  # Supavisor's user names: <role>.<project-ref>

pytestmark = pytest.mark.skipif(
    os.environ.get("RAMPART_TEST_DB_SHAPE") != "supabase",
    reason="needs the Supabase-shaped server (RAMPART_TEST_DB_SHAPE=supabase; make test runs it)",
)


def doc_blocks() -> dict[str, str]:
    found = re.findall(r"<!-- doc-test: ([\w-]+) -->\n```sh\n(.*?)```", DOC.read_text(), re.S)
    return dict(found)


def exported(block: str) -> set[str]:
    return set(re.findall(r"^export (\w+)=", block, re.M))


def run(block: str, env: dict[str, str]) -> str:
    path = f"{install_dir() / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    done = subprocess.run(  # noqa: S603 - the documented commands, run as written
        ["bash", "-euo", "pipefail", "-c", block],  # noqa: S607
        env={**env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout + done.stderr  # rampart's console writes to stderr


def url(server_url: str, user: str, password: str, database: str) -> str:
    return supabase.role_url(server_url, user, password, database)


def assert_deployed(database_url: str, app_password: str, migration_url: str) -> None:
    """app_rw logs in with the password of DATABASE_URL and writes its tenant under RLS; the
    Data API's roles hold nothing on the migration role's objects."""
    plain = make_url(database_url).set(username="app_rw", password=app_password)
    with psycopg.connect(plain.render_as_string(hide_password=False)) as conn:
        tenant = str(uuid.uuid4())
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)", (f'{{"tenant_id": "{tenant}"}}',)
        )
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'docs')", (tenant,))
        assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 1
        conn.rollback()
    from tests.integration.test_supabase_shape import forbidden_grants

    with psycopg.connect(migration_url) as conn:
        assert forbidden_grants(conn) == []


@pytest.fixture(scope="module")
def migrated_as_postgres(stack: TestStack) -> dict[str, str]:
    """Steps 2 and 3 on a fresh Supabase-shaped database of the session's server."""
    database = f"docs_{uuid.uuid4().hex[:8]}"
    supabase.shape_database(stack.postgres.superuser_url, database)
    session = {
        name: make_url(os.environ[name])
        for name in ("MIGRATION_DATABASE_URL", "DATABASE_URL", "OPERATOR_DATABASE_URL")
    }
    server = stack.postgres.superuser_url
    direct = url(server, "postgres", session["MIGRATION_DATABASE_URL"].password, database)
    env = {
        "SUPABASE_DB_URL": direct,
        "MIGRATION_DATABASE_URL": direct,
        # The same passwords as the session's roles: they are cluster-wide.
        "DATABASE_URL": url(
            server, f"app_rw.{PROJECT_REF}", session["DATABASE_URL"].password, database
        ),
        "OPERATOR_DATABASE_URL": url(
            server, "rampart_operator", session["OPERATOR_DATABASE_URL"].password, database
        ),
        "DB_STATEMENT_CACHE_SIZE": "0",
    }
    blocks = doc_blocks()
    assert exported(blocks["env"]) == set(env)
    out = run(blocks["migrate"], stack.process_env(**env))
    assert f"migrated to revision {newest_migration()[0]}" in out
    assert_deployed(env["DATABASE_URL"], session["DATABASE_URL"].password, direct)
    return env


def test_the_documented_migration_as_postgres_deploys_rampart(migrated_as_postgres):
    assert migrated_as_postgres["MIGRATION_DATABASE_URL"].startswith("postgresql://postgres:")


def test_the_lint_after_migrating_as_postgres_names_only_its_definer_functions(
    stack, migrated_as_postgres
):
    """Step 3b's warning: postgres (BYPASSRLS) owning the definer functions is the one
    finding, an error per function; nothing else differs from step 3."""
    done = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).parent / "rampart"), "db", "lint", "--json"],
        env=stack.process_env(**migrated_as_postgres),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    findings = json.loads(done.stdout)["findings"]
    serious = {(f["lint"], f["level"]) for f in findings if f["level"] != "info"}
    assert serious == {("definer_owner_and_execute", "error")}
    assert all("postgres" in f["message"] for f in findings if f["level"] == "error")


def test_the_documented_migration_as_migration_admin_deploys_rampart(stack):
    """Step 3b on a server of its own: there migration_admin creates app_rw, as it would
    in a fresh project."""
    server = EmbeddedPostgres(
        stack.home / f"docs-pg-{uuid.uuid4().hex[:6]}",
        free_port(),
        fast=True,
        superuser=supabase.SUPERUSER,
    )
    server.start()
    try:
        passwords = {name: secrets.token_urlsafe(18) for name in ("postgres", "own", "app", "op")}
        supabase.shape_cluster(server.superuser_url, passwords["postgres"])
        supabase.shape_database(server.superuser_url, "postgres")
        base = server.superuser_url
        env = {
            "SUPABASE_DB_URL": url(base, "postgres", passwords["postgres"], "postgres"),
            "MIGRATION_ADMIN_PASSWORD": passwords["own"],
            "MIGRATION_DATABASE_URL": url(base, "migration_admin", passwords["own"], "postgres"),
            "DATABASE_URL": url(base, f"app_rw.{PROJECT_REF}", passwords["app"], "postgres"),
            "OPERATOR_DATABASE_URL": url(base, "rampart_operator", passwords["op"], "postgres"),
            "DB_STATEMENT_CACHE_SIZE": "0",
        }
        blocks = doc_blocks()
        assert exported(blocks["env"]) | exported(blocks["env-own-role"]) == set(env)
        out = run(blocks["migrate-own-role"], stack.process_env(**env))
        assert f"migrated to revision {newest_migration()[0]}" in out
        assert_deployed(env["DATABASE_URL"], passwords["app"], env["MIGRATION_DATABASE_URL"])
        with psycopg.connect(env["MIGRATION_DATABASE_URL"]) as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'tenants'")
            assert owner.fetchone()[0] == "migration_admin"
        # Step 4: the lint passes before go-live, no finding but info.
        run(blocks["lint"], stack.process_env(**env))
    finally:
        server.stop()
