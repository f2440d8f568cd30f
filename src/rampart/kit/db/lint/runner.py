"""Run the lints against a live database, in one read-only transaction, and render them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import psycopg
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
if set(ORDER) != set(LINTS):
    raise RuntimeError("every lint is listed in ORDER (and in docs/security.md)")


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


def render(findings: list[Finding], console: Console, ran: int, hidden_info: int = 0) -> None:
    """A table of the findings and one summary line."""
    if findings:
        table = Table()
        table.add_column("level")
        table.add_column("lint", overflow="fold")
        table.add_column("object", overflow="fold")
        table.add_column("finding, fix and doc", overflow="fold")
        style = {"error": "bold red", "warn": "yellow", "info": "dim"}
        for f in findings:
            table.add_row(
                Text(f.level, style=style[f.level]),
                f.lint,
                f.object,
                Text.assemble(f.message, "\nfix: ", (f.hint, "cyan"), "\n", (f.doc, "dim")),
            )
        console.print(table)
    summary = counts(findings)
    info = summary["info"] + hidden_info
    console.print(
        f"{summary['error']} error(s), {summary['warn']} warning(s), {info} info"
        + (f" ({hidden_info} not listed: --info)" if hidden_info else "")
        + f", from {ran} lint(s)",
        markup=False,
    )
