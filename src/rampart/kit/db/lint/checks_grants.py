"""Privilege lints: nothing for the exposed roles, SECURITY DEFINER functions pinned down,
and a runtime role that can do nothing but its DML."""

from __future__ import annotations

import psycopg

from rampart.kit.db.lint.model import LintConfig
from rampart.kit.db.lint.registry import Lint, existing_roles, lint, rows

# has_*_privilege() counts PUBLIC and inherited grants, which is what a role can use.
EXPOSED = """
WITH grantee AS (SELECT unnest(%(roles)s::text[]) AS role),
objects AS (
  SELECT c.oid, c.relkind, format('%%I.%%I', n.nspname, c.relname) AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                     AND d.objid = c.oid AND d.deptype = 'e')
), found AS (
  SELECT g.role, CASE o.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind, o.name,
         ARRAY(SELECT p FROM unnest(CASE o.relkind WHEN 'S' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
                 ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                            'TRIGGER'] END) AS p
                WHERE CASE o.relkind WHEN 'S' THEN has_sequence_privilege(g.role, o.oid, p)
                      ELSE has_table_privilege(g.role, o.oid, p) END) AS privileges
    FROM grantee g CROSS JOIN objects o
  UNION ALL
  SELECT g.role, 'columns', o.name,
         ARRAY(SELECT format('%%s (%%I)', p, a.attname)
                 FROM pg_attribute a, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS p
                WHERE a.attrelid = o.oid AND a.attnum > 0 AND NOT a.attisdropped
                  AND has_column_privilege(g.role, o.oid, a.attnum, p)
                  AND NOT has_table_privilege(g.role, o.oid, p))
    FROM grantee g CROSS JOIN objects o WHERE o.relkind <> 'S'
  UNION ALL
  SELECT g.role, 'function', p.oid::regprocedure::text,
         CASE WHEN has_function_privilege(g.role, p.oid, 'EXECUTE') THEN ARRAY['EXECUTE']
              ELSE ARRAY[]::text[] END
    FROM grantee g CROSS JOIN pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = ANY(%(schemas)s)
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                     AND d.objid = p.oid AND d.deptype = 'e')
  UNION ALL
  SELECT g.role, 'schema', quote_ident(n.nspname),
         CASE WHEN has_schema_privilege(g.role, n.oid, 'CREATE') THEN ARRAY['CREATE']
              ELSE ARRAY[]::text[] END
    FROM grantee g CROSS JOIN pg_namespace n WHERE n.nspname = ANY(%(schemas)s)
)
SELECT * FROM found WHERE cardinality(privileges) > 0 ORDER BY kind, name, role
"""

# Default privileges give every future object of a kind to a role: an exposed role there
# gets the next table the moment a migration creates it.
DEFAULTS = """
SELECT pg_get_userbyid(d.defaclrole) AS creator,
       coalesce(quote_ident(n.nspname), 'every schema') AS schema,
       CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences'
            WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types' ELSE 'schemas' END AS kind,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS role,
       array_agg(a.privilege_type ORDER BY a.privilege_type) AS privileges
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace,
       aclexplode(d.defaclacl) AS a
 WHERE (d.defaclnamespace = 0 OR n.nspname = ANY(%(schemas)s))
   AND (a.grantee = 0 OR pg_get_userbyid(a.grantee) = ANY(%(roles)s))
   AND d.defaclobjtype <> 'T'
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""


@lint("exposed_privileges", "no privilege for PUBLIC or the exposed roles on our objects")
def exposed_privileges(conn: psycopg.Connection, config: LintConfig, me: Lint):
    names = existing_roles(conn, config.exposed_roles)
    schemas = list(config.schemas)
    for row in rows(conn, EXPOSED, roles=["public", *names], schemas=schemas):
        role = "PUBLIC" if row["role"] == "public" else row["role"]
        privileges = ", ".join(row["privileges"])
        target = "SCHEMA " if row["kind"] == "schema" else ""
        on = {"sequence": "SEQUENCE ", "function": "FUNCTION "}.get(row["kind"], "")
        yield me.finding(
            "error",
            f"{row['kind']} {row['name']}",
            f"{role} holds {privileges} (directly, through PUBLIC or an inherited role)",
            f"REVOKE ALL ON {target or on}{row['name']} FROM {role}; and check the roles "
            f"{role} is a member of",
        )
    owner = _owner(conn, config)
    for row in rows(conn, DEFAULTS, roles=names, schemas=schemas):
        # Only the owner's defaults reach our objects; another role's (Supabase's own
        # supabase_admin in public) is worth knowing but not ours to change.
        yield me.finding(
            "warn" if row["creator"] == owner else "info",
            f"default privileges of {row['creator']} in {row['schema']}",
            f"every new {row['kind'][:-1]} {row['creator']} creates gives "
            f"{', '.join(row['privileges'])} to {row['role']}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {row['creator']}"
            + ("" if row["schema"] == "every schema" else f" IN SCHEMA {row['schema']}")
            + f" REVOKE ALL ON {row['kind'].upper()} FROM {row['role']};",
        )


DEFINERS = """
SELECT p.oid::regprocedure::text AS fn, pg_get_userbyid(p.proowner) AS owner,
       r.rolsuper AS owner_is_superuser, r.rolbypassrls AS owner_bypasses_rls,
       coalesce(p.proconfig, ARRAY[]::text[]) AS config,
       ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
               FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
              WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
              ORDER BY 1) AS executors
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_roles r ON r.oid = p.proowner
 WHERE p.prosecdef AND n.nspname = ANY(%(schemas)s)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                   AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1
"""


def _owner(conn: psycopg.Connection, config: LintConfig) -> str:
    return config.owner_role or conn.execute("SELECT current_user").fetchone()[0]


def _definers(conn: psycopg.Connection, config: LintConfig):
    return rows(conn, DEFINERS, schemas=list(config.schemas))


@lint("definer_search_path", "every SECURITY DEFINER function has a fixed search_path")
def definer_search_path(conn: psycopg.Connection, config: LintConfig, me: Lint):
    for fn in _definers(conn, config):
        if not any(setting.startswith("search_path=") for setting in fn["config"]):
            yield me.finding(
                "error",
                f"function {fn['fn']}",
                "SECURITY DEFINER without its own search_path: it resolves names with the "
                "caller's, who can put a schema of their own first and run code as the owner",
                f"ALTER FUNCTION {fn['fn']} SET search_path = pg_catalog, public; and "
                "schema-qualify the tables it uses",
            )


@lint(
    "definer_owner_and_execute",
    "SECURITY DEFINER functions owned by the migration role, executable only by listed roles",
)
def definer_owner_and_execute(conn: psycopg.Connection, config: LintConfig, me: Lint):
    owner = _owner(conn, config)
    allowed = set(config.definer_execute_roles)
    for fn in _definers(conn, config):
        name = f"function {fn['fn']}"
        if fn["owner"] != owner:
            yield me.finding(
                "error",
                name,
                f"owned by {fn['owner']}, not {owner}: it runs with {fn['owner']}'s rights "
                "and policies",
                f"ALTER FUNCTION {fn['fn']} OWNER TO {owner};",
            )
        if fn["owner_is_superuser"] or fn["owner_bypasses_rls"]:
            yield me.finding(
                "error",
                name,
                f"its owner {fn['owner']} is a superuser or BYPASSRLS: the function ignores "
                "every policy, and any flaw in it runs with those rights",
                f"ALTER FUNCTION {fn['fn']} OWNER TO <the migration role>;",
            )
        extra = [role for role in fn["executors"] if role not in allowed]
        if extra:
            yield me.finding(
                "error",
                name,
                f"EXECUTE granted to {', '.join(extra)}; only {', '.join(sorted(allowed))} "
                "may run a SECURITY DEFINER function",
                f"REVOKE EXECUTE ON FUNCTION {fn['fn']} FROM {', '.join(extra)};",
            )


ROLE = """
SELECT r.oid, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
       has_database_privilege(r.oid, current_database(), 'CREATE') AS creates_schemas
  FROM pg_roles r WHERE r.rolname = %(role)s
"""
SCHEMAS_WITH_CREATE = """
SELECT quote_ident(nspname) AS schema FROM pg_namespace
 WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
   AND has_schema_privilege(%(oid)s, oid, 'CREATE')
 ORDER BY 1
"""
OWNED = """
SELECT pg_describe_object(classid, objid, objsubid) AS object FROM pg_shdepend
 WHERE refclassid = 'pg_authid'::regclass AND refobjid = %(oid)s AND deptype = 'o'
   AND dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
 ORDER BY 1
"""
# Roles it can SET ROLE to that could do what it must not.
POWERFUL_MEMBERSHIPS = """
SELECT m.rolname FROM pg_roles m
 WHERE m.oid <> %(oid)s AND pg_has_role(%(oid)s, m.oid, 'MEMBER')
   AND (m.rolsuper OR m.rolbypassrls OR m.rolcreaterole OR m.rolcreatedb
        OR EXISTS (SELECT 1 FROM pg_shdepend s WHERE s.refobjid = m.oid AND s.deptype = 'o'
                   AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())))
 ORDER BY 1
"""
ATTRIBUTES = {
    "rolsuper": "SUPERUSER",
    "rolbypassrls": "BYPASSRLS",
    "rolcreaterole": "CREATEROLE",
    "rolcreatedb": "CREATEDB",
    "rolreplication": "REPLICATION",
}


@lint("app_role_privileges", "the runtime role cannot bypass RLS, create or own anything")
def app_role_privileges(conn: psycopg.Connection, config: LintConfig, me: Lint):
    role = config.app_role
    found = rows(conn, ROLE, role=role)
    if not found:
        yield me.finding(
            "info", f"role {role}", "no such role on this server: nothing checked", "set --app-role"
        )
        return
    attributes = found[0]
    for column, attribute in ATTRIBUTES.items():
        if attributes[column]:
            yield me.finding(
                "error",
                f"role {role}",
                f"has {attribute}",
                f"ALTER ROLE {role} NO{attribute};",
            )
    if attributes["creates_schemas"]:
        yield me.finding(
            "error",
            f"role {role}",
            "may CREATE schemas in this database",
            f"REVOKE CREATE ON DATABASE <database> FROM {role}; (and from PUBLIC)",
        )
    for row in rows(conn, SCHEMAS_WITH_CREATE, oid=attributes["oid"]):
        yield me.finding(
            "error",
            f"schema {row['schema']}",
            f"{role} may CREATE objects in it (then own them, and shadow names)",
            f"REVOKE CREATE ON SCHEMA {row['schema']} FROM {role}; (and from PUBLIC)",
        )
    for row in rows(conn, OWNED, oid=attributes["oid"]):
        yield me.finding(
            "error",
            row["object"],
            f"owned by {role}: an owner ignores policies unless FORCEd, and may ALTER, "
            "GRANT or DROP it",
            f"ALTER ... OWNER TO <the migration role>; (REASSIGN OWNED BY {role} TO ...)",
        )
    for row in rows(conn, POWERFUL_MEMBERSHIPS, oid=attributes["oid"]):
        yield me.finding(
            "error",
            f"role {role}",
            f"is a member of {row['rolname']}, which is privileged or owns objects here: "
            f"{role} can SET ROLE to it",
            f"REVOKE {row['rolname']} FROM {role};",
        )
