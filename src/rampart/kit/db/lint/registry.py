"""The lint registry: each lint is a function (connection, config) -> findings, named and
tied to its section of docs/security.md."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from rampart.kit.db.lint.model import DOC, Finding, Level, LintConfig

Check = Callable[[psycopg.Connection, LintConfig, "Lint"], Iterable[Finding]]


@dataclass(frozen=True)
class Lint:
    name: str
    summary: str
    check: Check

    @property
    def doc(self) -> str:
        return f"{DOC}#{self.name}"

    def finding(self, level: Level, obj: str, message: str, hint: str) -> Finding:
        return Finding(self.name, level, obj, message, hint, self.doc)


LINTS: dict[str, Lint] = {}


def lint(name: str, summary: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        LINTS[name] = Lint(name, summary, check)
        return check

    return register


def rows(conn: psycopg.Connection, query: str, **params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def existing_roles(conn: psycopg.Connection, names: Iterable[str]) -> list[str]:
    """The roles of `names` this server has (Supabase's roles exist only on Supabase)."""
    found = rows(conn, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%(n)s)", n=list(names))
    return sorted(row["rolname"] for row in found)
