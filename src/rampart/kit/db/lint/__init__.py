"""`rampart db lint`: the Supabase hardening checklist as checks against a live database.

Each lint reads the system catalogs with its own SQL (Supabase's splinter inspired the
list; the checks are ours, fitted to our roles and schemas) and yields findings with a
level, the object, a fix and its section of docs/security.md. No well-kept Python library
lints Postgres security catalogs, hence this small module.
"""

from rampart.kit.db.lint.model import (
    CROSS_TENANT_ROLES,
    DEFINER_EXECUTE_ROLES,
    RLS_TABLES_WITHOUT_TENANT_COLUMN,
    Finding,
    LintConfig,
)
from rampart.kit.db.lint.registry import LINTS
from rampart.kit.db.lint.runner import ORDER, as_json, counts, render, run_lints

__all__ = [
    "CROSS_TENANT_ROLES",
    "DEFINER_EXECUTE_ROLES",
    "LINTS",
    "ORDER",
    "RLS_TABLES_WITHOUT_TENANT_COLUMN",
    "Finding",
    "LintConfig",
    "as_json",
    "counts",
    "render",
    "run_lints",
]
