"""What a lint finding is, what the lints are told about our database, and the lists the
lints and docs/security.md ("Database hardening lints") share: one place, checked against
the docs by tests/integration/test_db_lint.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Level = Literal["error", "warn", "info"]
LEVELS: tuple[Level, ...] = ("error", "warn", "info")

DOC = "docs/security.md"

# The only roles, besides the owner, that may EXECUTE a SECURITY DEFINER function in our
# schemas: the runtime role (the cross-tenant paths) and the operator (dead letters,
# incidents, trace lookup). Anyone else holding EXECUTE reaches across tenants.
DEFINER_EXECUTE_ROLES: tuple[str, ...] = ("app_rw", "rampart_operator")

# Roles whose job is to read every tenant's rows, so an always-true policy for them is the
# design (reported as info), not a hole: the auditor reads every tenant's audit and billing
# events. The table owner is treated the same way (see no_always_true_policy).
CROSS_TENANT_ROLES: tuple[str, ...] = ("readonly_audit",)

# Tables RLS must protect although they have no tenant_id column: the tenants themselves,
# and the operator's incidents (nobody's tenant data, reached only through definers).
RLS_TABLES_WITHOUT_TENANT_COLUMN: tuple[str, ...] = ("public.tenants", "public.incidents")


@dataclass(frozen=True)
class LintConfig:
    """Where to look and whom to distrust. Roles that do not exist are simply absent."""

    schemas: tuple[str, ...] = ("public", "app")
    # Roles that must get nothing (Supabase's API roles); PUBLIC is always one of them.
    exposed_roles: tuple[str, ...] = ("anon", "authenticated")
    app_role: str = "app_rw"
    # The role that must own every SECURITY DEFINER function; None: the connected role
    # (by default the migration role, which owns the schema).
    owner_role: str | None = None
    tenant_column: str = "tenant_id"
    rls_tables: tuple[str, ...] = RLS_TABLES_WITHOUT_TENANT_COLUMN
    definer_execute_roles: tuple[str, ...] = DEFINER_EXECUTE_ROLES
    cross_tenant_roles: tuple[str, ...] = CROSS_TENANT_ROLES
    # Schemas whose argument-less functions are claim readers (auth.uid(), app.tenant_id()).
    claim_schemas: tuple[str, ...] = ("auth", "app")
    exposed_schemas: tuple[str, ...] = field(default=("public",))


@dataclass(frozen=True)
class Finding:
    lint: str
    level: Level
    object: str
    message: str
    hint: str
    doc: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)
