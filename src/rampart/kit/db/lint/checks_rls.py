"""Row-level security lints: RLS on and forced, no policy that lets everything through,
no RLS table without a policy, claim functions evaluated once per statement."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from rampart.kit.db.lint.model import LintConfig
from rampart.kit.db.lint.registry import Lint, lint, rows

TABLES = """
SELECT format('%%I.%%I', n.nspname, c.relname) AS rel, c.relrowsecurity AS enabled,
       c.relforcerowsecurity AS forced,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
               AND NOT a.attisdropped AND a.attname = %(column)s) AS has_tenant_column,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%(schemas)s)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1
"""

# Expressions deparsed with search_path = pg_catalog (set by the runner), so every name
# outside pg_catalog is schema-qualified. Trees are read to tell constants from the rest.
POLICIES = """
SELECT format('%%I.%%I', n.nspname, c.relname) AS rel, p.polname AS policy,
       p.polcmd AS cmd, p.polpermissive AS permissive, c.relrowsecurity AS enabled,
       pg_get_userbyid(c.relowner) AS owner,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END
               FROM unnest(p.polroles) AS r ORDER BY 1) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS qual, p.polqual::text AS qual_tree,
       pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
       p.polwithcheck::text AS check_tree
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s)
 ORDER BY 1, 2
"""

COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


def _policies(conn: psycopg.Connection, config: LintConfig) -> list[dict[str, Any]]:
    return rows(conn, POLICIES, schemas=list(config.schemas))


def _label(policy: dict[str, Any]) -> str:
    return f"{policy['rel']} policy {policy['policy']}"


@lint("rls_enabled_forced", "RLS enabled and forced on every table holding tenant data")
def rls_enabled_forced(conn: psycopg.Connection, config: LintConfig, me: Lint):
    for table in rows(conn, TABLES, column=config.tenant_column, schemas=list(config.schemas)):
        rel = table["rel"]
        tenant_data = table["has_tenant_column"] or rel in config.rls_tables
        if not table["enabled"] and (tenant_data or table["has_policy"]):
            why = "holds tenant data" if tenant_data else "has policies, which do nothing"
            yield me.finding(
                "error",
                rel,
                f"row-level security is disabled, and the table {why}: every role with a "
                "privilege on it sees and writes every row",
                f"ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY; "
                f"ALTER TABLE {rel} FORCE ROW LEVEL SECURITY;",
            )
        elif tenant_data and not table["forced"]:
            yield me.finding(
                "error",
                rel,
                "row-level security is enabled but not forced: the table owner (the "
                "SECURITY DEFINER functions, migrations) ignores every policy",
                f"ALTER TABLE {rel} FORCE ROW LEVEL SECURITY;",
            )


# Node types of an expression made only of literals and built-in operators: such an
# expression has one value for every row and every caller, so we can evaluate it.
_CONSTANT_NODES = {"CONST", "OPEXPR", "BOOLEXPR", "RELABELTYPE", "NULLTEST", "BOOLEANTEST"}
_FIRST_USER_OID = 16384


def _constant(conn: psycopg.Connection, text: str | None, tree: str | None) -> bool | None:
    """The value of an expression that is the same for every row and caller (None: not
    such an expression, or none at all: a permissive policy without one admits no row)."""
    if text is None or tree is None:
        return None
    nodes = set(re.findall(r"\{([A-Z_]+)", tree))
    functions = [int(oid) for oid in re.findall(r":opfuncid (\d+)", tree)]
    if not nodes <= _CONSTANT_NODES or any(oid >= _FIRST_USER_OID for oid in functions):
        return None
    try:
        with conn.transaction():  # a savepoint: 1/0 = 0 must not end the lint
            query = sql.SQL("SELECT coalesce(({})::boolean, false)").format(sql.SQL(text))
            value = conn.execute(query).fetchone()
    except psycopg.Error:
        return None
    return bool(value and value[0])


def _reads_no_column(tree: str | None) -> bool:
    """No column anywhere in the expression: whoever passes it passes for every row."""
    return tree is not None and "{VAR " not in tree


@lint("no_always_true_policy", "no policy whose USING or WITH CHECK is (trivially) true")
def no_always_true_policy(conn: psycopg.Connection, config: LintConfig, me: Lint):
    serving = {"PUBLIC", config.app_role, *config.exposed_roles}
    for policy in _policies(conn, config):
        if not policy["permissive"]:
            continue  # a restrictive policy is ANDed: `true` there restricts nothing, opens nothing
        cmd = COMMANDS[policy["cmd"]]
        using = None if cmd == "INSERT" else (policy["qual"], policy["qual_tree"])
        check = None
        if cmd in ("INSERT", "UPDATE", "ALL"):
            # Without WITH CHECK, UPDATE and ALL check new rows with USING.
            has_check = policy["with_check"] is not None
            check = (policy["with_check"], policy["check_tree"]) if has_check else using
        clauses = [(name, c) for name, c in (("USING", using), ("WITH CHECK", check)) if c]
        values = {name: _constant(conn, text, tree) for name, (text, tree) in clauses}
        true = [name for name, value in values.items() if value is True]
        # Reads no column yet is no constant: whoever passes it passes for every row.
        blind = [
            name for name, (_, tree) in clauses if values[name] is None and _reads_no_column(tree)
        ]
        if not true and not blind:
            continue
        roles = set(policy["roles"])
        what = (
            f"{' and '.join(true)} always true"
            if true
            else f"{' and '.join(blind)} reads no column (every row or none)"
        )
        head = f"{cmd} for {', '.join(sorted(roles))}: {what}"
        if roles <= {policy["owner"], *config.cross_tenant_roles} and not roles & serving:
            # The owner could switch FORCE off anyway; its policies are the SECURITY DEFINER
            # paths. A declared cross-tenant reader is meant to see every tenant.
            yield me.finding(
                "info",
                _label(policy),
                f"{head}: the table owner (SECURITY DEFINER paths) or a declared "
                "cross-tenant role passes every row",
                "by design only if every definer scopes its own statements and the role is "
                "in CROSS_TENANT_ROLES (kit/db/lint/model.py, docs/security.md)",
            )
            continue
        yield me.finding(
            "error" if roles & serving else "warn",
            _label(policy),
            f"{head}, so row-level security does not separate tenants for these roles",
            f"compare the row with the caller's claims, e.g. USING (tenant_id = (select "
            f"app.tenant_id())); or DROP POLICY {policy['policy']} ON {policy['rel']};",
        )


@lint("table_without_policy", "no table with RLS enabled and no policy")
def table_without_policy(conn: psycopg.Connection, config: LintConfig, me: Lint):
    for table in rows(conn, TABLES, column=config.tenant_column, schemas=list(config.schemas)):
        if table["enabled"] and not table["has_policy"]:
            yield me.finding(
                "warn",
                table["rel"],
                "row-level security is enabled but no policy exists: no role but a "
                "superuser or BYPASSRLS role reaches a row (a forgotten policy, or a dead table)",
                f"CREATE POLICY ... ON {table['rel']} TO app_rw USING (...) WITH CHECK (...);"
                " or drop the table",
            )


def _per_row_calls(text: str | None, config: LintConfig) -> list[str]:
    """Claim readers (zero-argument functions of the claim schemas, current_setting) that
    are not the whole of a `(select ...)`, so Postgres runs them for every row."""
    if text is None:
        return []
    schemas = "|".join(re.escape(s) for s in config.claim_schemas)
    pattern = re.compile(rf"(?<![\w.])(?:(?:{schemas})\.\w+\(\)|current_setting\()")
    calls = set()
    for match in pattern.finditer(text):
        if not re.search(r"\bSELECT\s*$", text[: match.start()], re.IGNORECASE):
            call = match.group(0)
            calls.add(call if call.endswith("()") else "current_setting(...)")
    return sorted(calls)


@lint("policy_initplan", "policies read claims through (select fn()), once per statement")
def policy_initplan(conn: psycopg.Connection, config: LintConfig, me: Lint):
    for policy in _policies(conn, config):
        calls = sorted(
            {*_per_row_calls(policy["qual"], config), *_per_row_calls(policy["with_check"], config)}
        )
        if calls:
            first = calls[0]
            yield me.finding(
                "warn",
                _label(policy),
                f"calls {', '.join(calls)} for every row it checks (no initplan)",
                f"wrap each call: {first} -> (select {first}), in ALTER POLICY "
                f"{policy['policy']} ON {policy['rel']} USING (...) WITH CHECK (...);",
            )
