"""A Supabase-shaped Postgres for the test suite, in our own SQL.

Modelled on Supabase's documented setup (github.com/supabase/postgres,
migrations/db/init-scripts and migrations/db/migrations, and supabase/auth's
auth.jwt()/auth.uid()): the superuser is `supabase_admin`; `postgres` is demoted
(NOSUPERUSER, CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS) and owns the database and
its public schema; `anon`, `authenticated` (NOLOGIN NOINHERIT) and `service_role`
(NOLOGIN NOINHERIT BYPASSRLS) are what PostgREST switches to; default privileges give
those three ALL on every table, sequence and function `postgres` or `supabase_admin`
creates in public; schema `auth` belongs to `supabase_auth_admin`, with auth.uid(),
auth.role(), auth.email() and (unless `with_jwt=False`, like projects from before
supabase/auth added it) auth.jwt(); `postgres` may use auth but not grant it on.

Deliberately left out, so that we never come to depend on them: the grants Supabase added
to `postgres` later (pg_monitor in 2023, pg_read_all_data, membership in
supabase_auth_admin). Without them `postgres` is the weakest migration role a Supabase
project has had, and one that cannot see other roles' sessions in pg_stat_activity.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier, Literal

SUPERUSER = "supabase_admin"
API_ROLES = ("anon", "authenticated", "service_role")

# Once per cluster, as supabase_admin (init-scripts/00000000000000, 00000000000001,
# migrations/10000000000000_demote-postgres, 20230529180330_alter_api_roles_for_inherit).
CLUSTER = """
CREATE ROLE postgres LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS
  PASSWORD {password};
ALTER ROLE postgres SET search_path TO "$user", public, extensions;
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
ALTER ROLE anon INHERIT;
ALTER ROLE authenticated INHERIT;
ALTER ROLE service_role INHERIT;
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
CREATE ROLE supabase_auth_admin LOGIN NOINHERIT CREATEROLE NOREPLICATION;
"""

# In each database Rampart may be given, as supabase_admin. Supabase runs its init
# scripts as `postgres` before demoting it, so its default privileges are FOR ROLE postgres.
DATABASE = """
CREATE SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO postgres, anon, authenticated, service_role;
GRANT ALL ON SCHEMA extensions TO postgres;
CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions;

GRANT USAGE ON SCHEMA public TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
  GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
  GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
  GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;

CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
SET ROLE supabase_auth_admin;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;
RESET ROLE;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, postgres;
GRANT ALL ON ALL ROUTINES IN SCHEMA auth TO postgres;
"""

AUTH_JWT = """
SET ROLE supabase_auth_admin;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;
RESET ROLE;
GRANT ALL ON FUNCTION auth.jwt() TO postgres;
"""


def shape_cluster(superuser_url: str, postgres_password: str) -> None:
    """Create Supabase's roles in a fresh cluster whose bootstrap superuser is supabase_admin."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute(SQL(CLUSTER).format(password=Literal(postgres_password)))


def shape_database(superuser_url: str, database: str, *, with_jwt: bool = True) -> None:
    """Make `database` (created if missing) look like a Supabase project's `postgres`
    database: owned by `postgres`, with Supabase's schemas, grants and default privileges."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            conn.execute(SQL("CREATE DATABASE {} OWNER postgres").format(Identifier(database)))
        else:
            conn.execute(SQL("ALTER DATABASE {} OWNER TO postgres").format(Identifier(database)))
    with psycopg.connect(make_conninfo(superuser_url, dbname=database), autocommit=True) as conn:
        conn.execute(DATABASE)
        if with_jwt:
            conn.execute(AUTH_JWT)


def role_url(superuser_url: str, role: str, password: str, database: str) -> str:
    """A URL for `role` on the same server and `database`."""
    host = superuser_url.rsplit("@", 1)[1].split("/", 1)[0]
    return f"postgresql://{role}:{password}@{host}/{database}"
