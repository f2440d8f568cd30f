"""The checks of the gate, in the order of the table, each under a short name for
`rampart readiness --only NAME`."""

from __future__ import annotations

from collections.abc import Callable

from rampart.readiness import (
    checks_data,
    checks_observability,
    checks_operations,
    checks_performance,
    checks_resilience,
    checks_security,
)
from rampart.readiness.context import Context
from rampart.readiness.model import AREAS, Result, Status

Check = Callable[[Context], Result]

CHECKS: dict[str, tuple[str, Check]] = {
    "settings": ("security", checks_security.settings_strength),
    "db-lint": ("security", checks_security.db_lint),
    "dependency-audit": ("security", checks_security.dependency_audit),
    "bundle-scan": ("security", checks_security.bundle_scan),
    "migrations": ("data", checks_data.migrations_at_head),
    "backup": ("data", checks_data.last_backup),
    "restore-drill": ("data", checks_data.restore_drill),
    "alert-rules": ("observability", checks_observability.alert_rules),
    "alertmanager": ("observability", checks_observability.alertmanager_receiver),
    "sentry": ("observability", checks_observability.sentry_event),
    "llm-fallback": ("resilience", checks_resilience.llm_fallback),
    "load-test": ("performance", checks_performance.load_test),
    "soak-test": ("performance", checks_performance.soak_test),
    "error-budget": ("operations", checks_operations.error_budget),
}
if {area for area, _ in CHECKS.values()} != set(AREAS):
    raise RuntimeError("every area of the gate has at least one check")


def run_checks(ctx: Context, only: list[str] | None = None) -> list[Result]:
    """Each check's result; a check that crashes is a no-go naming the error, never a
    pass and never the end of the run."""
    unknown = sorted(set(only or []) - set(CHECKS))
    if unknown:
        raise ValueError(f"no such check: {', '.join(unknown)} (known: {', '.join(CHECKS)})")
    results = []
    for name, (area, check) in CHECKS.items():
        if only and name not in only:
            continue
        try:
            results.append(check(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            results.append(
                Result(
                    area,
                    name,
                    Status.NO_GO,
                    f"the check crashed: {exc!r}",
                    "rampart readiness",
                    "report it",
                    "docs/go-live.md",
                )
            )
    return results
