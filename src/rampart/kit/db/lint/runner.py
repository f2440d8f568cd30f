"""Run the lints against a live database, in one read-only transaction, and render them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import psycopg
from rich.console import Console
from rich.table import Table

from rampart.kit.db.lint import checks_grants, checks_rls, checks_schema  # noqa: F401 - registers
from rampart.kit.db.lint.model import LEVELS, Finding, LintConfig
from rampart.kit.db.lint.registry import LINTS

# The order of docs/security.md "Database hardening lints".
ORDER = (
    "rls_enabled_forced",
    "no_always_true_policy",
    "table_without_policy",
    "exposed_privileges",
    "definer_search_path",
    "definer_owner_and_execute",
    "extension_in_exposed_schema",
    "policy_initplan",
    "unindexed_foreign_key",
    "app_role_privileges",
)
assert set(ORDER) == set(LINTS), "every lint is listed in ORDER (and in the docs)"


def run_lints(
    conninfo: str, config: LintConfig | None = None, only: Iterable[str] | None = None
) -> list[Finding]:
    """Every finding of the named lints (default: all), in lint order. Reads catalogs only:
    the transaction is read-only and rolled back."""
    config = config or LintConfig()
    names = list(only) if only is not None else list(ORDER)
    unknown = sorted(set(names) - set(LINTS))
    if unknown:
        raise ValueError(f"no such lint: {', '.join(unknown)}")
    findings: list[Finding] = []
    with psycopg.connect(conninfo) as conn:
        conn.read_only = True
        # pg_catalog alone: expressions and names come out schema-qualified.
        conn.execute("SET LOCAL search_path = pg_catalog")
        conn.execute("SET LOCAL statement_timeout = '60s'")
        for name in names:
            lint = LINTS[name]
            findings.extend(lint.check(conn, config, lint))
        conn.rollback()
    return findings


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    counted = Counter(f.level for f in findings)
    return {level: counted.get(level, 0) for level in LEVELS}


def as_json(findings: list[Finding], database: dict[str, str]) -> str:
    return json.dumps(
        {
            "database": database,
            "summary": counts(findings),
            "findings": [f.as_json() for f in findings],
        },
        indent=2,
    )


def render(findings: list[Finding], console: Console) -> None:
    if findings:
        table = Table(show_lines=False)
        for column in ("level", "lint", "object", "finding", "fix"):
            table.add_column(column, overflow="fold")
        style = {"error": "bold red", "warn": "yellow", "info": "dim"}
        for f in findings:
            table.add_row(
                f"[{style[f.level]}]{f.level}[/]",
                f.lint,
                f.object,
                f.message,
                f"{f.hint}\n[dim]{f.doc}[/]",
            )
        console.print(table)
    summary = counts(findings)
    console.print(
        f"{summary['error']} error(s), {summary['warn']} warning(s), {summary['info']} info "
        f"from {len(ORDER)} lints"
    )
