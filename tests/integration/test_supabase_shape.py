"""What running on Supabase demands of the schema, proven on both database shapes (plain
embedded Postgres, and the Supabase-shaped one: RAMPART_TEST_DB_SHAPE=supabase, see
tests/support/supabase.py). `make test` runs this file under both.

- Supabase's API roles (anon, authenticated, service_role) and PUBLIC get nothing on our
  objects, and nothing on the objects later migrations create (default privileges).
- Nothing of ours reads Supabase's `auth` schema: app_rw has no USAGE on it there, and a
  project's auth may lack auth.jwt(). Supabase's auth.uid() still names the same user.
- rampart_db_connections counts every session of the database, also where the monitoring
  role may not read other roles' session state (it says so).
"""

from __future__ import annotations

import json
import os
import re
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url
from tests.support import supabase
from tests.support.db import app_rw, idle_in_transaction, libpq_conninfo
from tests.support.releases import newest_migration
from tests.support.supabase import API_ROLES

from rampart.kit.db.migrate import migrate

FORBIDDEN = ("PUBLIC", *API_ROLES)

# Every ACL entry on an object the migration role owns in public or app (NULL ACL = the
# built-in default, which for functions includes EXECUTE for PUBLIC).
GRANTS_ON_OURS = """
WITH ours (object, acl) AS (
  SELECT 'relation ' || c.oid::regclass, coalesce(c.relacl, acldefault(
           CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
    FROM pg_class c
   WHERE c.relnamespace IN ('public'::regnamespace, 'app'::regnamespace)
     AND c.relowner = current_user::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure, coalesce(p.proacl, acldefault('f', p.proowner))
    FROM pg_proc p
   WHERE p.pronamespace IN ('public'::regnamespace, 'app'::regnamespace)
     AND p.proowner = current_user::regrole
  UNION ALL
  SELECT 'schema ' || n.nspname, coalesce(n.nspacl, acldefault('n', n.nspowner))
    FROM pg_namespace n WHERE n.nspname = 'app'
)
SELECT o.object, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
       a.privilege_type
  FROM ours o, aclexplode(o.acl) a
"""


def migration_conninfo() -> str:
    return libpq_conninfo(os.environ["MIGRATION_DATABASE_URL"])


def forbidden_grants(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(GRANTS_ON_OURS).fetchall()
    assert rows, "the query sees our objects"
    return sorted(row for row in rows if row[1] in FORBIDDEN)


def test_api_roles_and_public_have_no_privilege_on_our_objects(stack):
    with psycopg.connect(migration_conninfo()) as conn:
        assert forbidden_grants(conn) == []


def test_objects_later_migrations_create_get_no_default_privileges(stack):
    """Supabase's default privileges would hand anon ALL on the next migration's table."""
    with psycopg.connect(migration_conninfo()) as conn:
        conn.execute("CREATE TABLE public.probe_later_migration (id int)")
        conn.execute("CREATE SEQUENCE app.probe_later_sequence")
        conn.execute("CREATE FUNCTION app.probe_later() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("CREATE FUNCTION public.probe_later() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        try:
            leaked = [row for row in forbidden_grants(conn) if "probe_later" in row[0]]
        finally:
            conn.rollback()
    assert leaked == []


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_cannot_read_or_truncate_tenant_tables(stack, superuser, role):
    """Where Supabase's roles exist (PostgREST switches to them), they are refused outright."""
    with psycopg.connect(superuser) as conn:
        if conn.execute("SELECT to_regrole(%s)", (role,)).fetchone()[0] is None:
            pytest.skip(f"no role {role} on this shape")
        conn.execute(f"SET ROLE {role}")
        for statement in ("SELECT count(*) FROM public.users", "TRUNCATE public.assessments"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)


def test_no_policy_or_function_of_ours_reads_the_auth_schema(stack):
    with psycopg.connect(migration_conninfo()) as conn:
        policies = conn.execute(
            "SELECT polname FROM pg_policy"
            " WHERE coalesce(pg_get_expr(polqual, polrelid), '') ~ '\\mauth\\.'"
            "    OR coalesce(pg_get_expr(polwithcheck, polrelid), '') ~ '\\mauth\\.'"
        ).fetchall()
        functions = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace IN ('public'::regnamespace, 'app'::regnamespace)"
            "   AND p.prosrc ~ '\\mauth\\.'"
        ).fetchall()
    assert policies == [] and functions == []


def test_policies_read_the_claims_once_per_statement(stack):
    """`(SELECT app.tenant_id())` is an initplan; a bare call runs once per row."""
    with psycopg.connect(migration_conninfo()) as conn:
        expressions = conn.execute(
            "SELECT polname, coalesce(pg_get_expr(polqual, polrelid), '') || ' '"
            " || coalesce(pg_get_expr(polwithcheck, polrelid), '') FROM pg_policy"
        ).fetchall()
    assert any("app.tenant_id()" in text for _, text in expressions)
    bare = [
        name
        for name, text in expressions
        if re.search(r"(?<!SELECT )app\.(tenant_id|uid)\(\)", text)
    ]
    assert bare == []


def test_every_foreign_key_has_an_index_leading_with_its_columns(stack):
    with psycopg.connect(migration_conninfo()) as conn:
        unindexed = conn.execute(
            "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c"
            " WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace"
            "   AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid"
            "     AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey"
            "     AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)"
        ).fetchall()
    assert unindexed == []


def test_app_rw_has_no_usage_on_the_auth_schema(stack):
    with app_rw() as conn:
        usage = conn.execute("SELECT has_schema_privilege('auth', 'USAGE')").fetchone()[0]
    assert usage is False


def test_supabase_auth_uid_names_the_user_of_our_claims(stack):
    """Claims set the app's way: auth.uid() (Supabase's, or our shim) agrees with app.uid()."""
    user, tenant = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(migration_conninfo()) as conn:
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": user, "tenant_id": tenant, "role": "authenticated"}),),
        )
        ids = conn.execute("SELECT auth.uid()::text, app.uid()::text").fetchone()
        conn.rollback()
    assert ids == (user, user)


def test_db_connection_counts_see_every_session_and_say_whether_states_are_readable(stack):
    """A session of app_rw idle in a transaction is counted: by state where the migration
    role may read other roles' sessions (pg_read_all_stats), else as `unknown`."""
    with idle_in_transaction(str(uuid.uuid4())), app_rw() as conn:
        counts = dict(conn.execute("SELECT * FROM app.db_connection_counts()").fetchall())
        readable = conn.execute("SELECT app.db_connection_states_readable()").fetchone()[0]
        owner_reads_all = conn.execute(
            "SELECT pg_has_role(p.proowner, 'pg_read_all_stats', 'USAGE') OR r.rolsuper"
            " FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner"
            " WHERE p.oid = 'app.db_connection_counts()'::regprocedure"
        ).fetchone()[0]
    assert readable is owner_reads_all
    assert sum(counts.values()) >= 2  # the holder and this connection
    if readable:
        assert counts.get("idle in transaction", 0) >= 1
    else:
        assert counts.get("unknown", 0) >= 2


def test_migration_role_is_the_one_the_shape_prescribes(stack):
    role = make_url(os.environ["MIGRATION_DATABASE_URL"]).username
    assert role == ("postgres" if stack.shape == "supabase" else "migration_admin")


supabase_only = pytest.mark.skipif(
    os.environ.get("RAMPART_TEST_DB_SHAPE") != "supabase",
    reason="needs the Supabase-shaped server (RAMPART_TEST_DB_SHAPE=supabase; make test runs it)",
)


@supabase_only
def test_migrations_run_where_the_auth_schema_has_no_jwt_function(stack):
    """Projects from before supabase/auth added auth.jwt() have auth.uid() and no jwt()."""
    database = f"nojwt_{uuid.uuid4().hex[:8]}"
    supabase.shape_database(stack.postgres.superuser_url, database, with_jwt=False)
    migration = make_url(os.environ["MIGRATION_DATABASE_URL"]).set(database=database)
    url = migration.render_as_string(hide_password=False)
    migrate(url, None)
    with psycopg.connect(libpq_conninfo(url)) as conn:
        applied = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    assert newest_migration()[0] in applied
