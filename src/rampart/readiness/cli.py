"""`rampart readiness`: the go-live gate's command (docs/go-live.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console


def _load_settings():
    """The deployment's settings, and why they were refused (then the checks run on the
    same environment with ENV=dev, so every other check still answers)."""
    from pydantic import ValidationError

    from rampart.config import Settings, get_settings
    from rampart.readiness.checks_security import validation_problems

    try:
        return get_settings(), None
    except ValidationError as exc:
        error = "; ".join(validation_problems(exc))
    try:
        return Settings(env="dev"), error
    except ValidationError as exc:
        raise typer.BadParameter(f"settings refused even in dev: {exc}") from None


def readiness(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict/--allow-warn",
            help="A warn counts as no-go (exit 1); --allow-warn lists warns and exits 0.",
        ),
    ] = True,
    audit: Annotated[
        bool,
        typer.Option(
            help="Run the dependency audit now (needs PyPI) and record it before checking."
        ),
    ] = False,
    audit_timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="Give up on the audit after this long.")
    ] = 300.0,
    alert_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            help="Wait this long for Alertmanager to deliver the test alert (group_wait).",
        ),
    ] = 90.0,
    only: Annotated[
        list[str] | None,
        typer.Option(metavar="CHECK", help="Run only this check (repeatable), by its name."),
    ] = None,
) -> None:
    """The go-live gate: check the deployment against fresh evidence, one row per check
    with its area, status (go, no-go, warn), evidence (figure, age, source) and a fix hint
    with its doc.

    Runs with the deployment's settings (the environment) and, for what they leave unset,
    the `rampart up` stack of RAMPART_HOME. A check whose evidence does not exist says "not
    available", a no-go. Exit 0 only when every check is go (`--allow-warn`: when none is
    no-go), 1 otherwise. Check names: settings, db-lint, dependency-audit,
    bundle-scan, migrations, backup, restore-drill, alert-rules, alertmanager, sentry,
    llm-fallback, load-test, soak-test, error-budget. See docs/go-live.md.

    **Examples**

    ```
    $ rampart readiness
    $ rampart readiness --json
    $ rampart readiness --allow-warn
    $ rampart readiness --audit --audit-timeout 120
    $ rampart readiness --only restore-drill --only backup
    ```
    """
    from rampart.readiness.checks_security import record_dependency_audit
    from rampart.readiness.context import Context
    from rampart.readiness.model import Status, verdict
    from rampart.readiness.render import as_json as to_json
    from rampart.readiness.render import table
    from rampart.readiness.runner import CHECKS, run_checks

    err = Console(stderr=True, soft_wrap=True, highlight=False)
    unknown = sorted(set(only or []) - set(CHECKS))
    if unknown:
        err.print(
            f"no such check: {', '.join(unknown)} (known: {', '.join(CHECKS)})",
            style="red",
            markup=False,
        )
        raise typer.Exit(2)
    settings, error = _load_settings()
    # URLs the settings leave unset come from the `rampart up` of these settings' home (the
    # CLI's own fallback would load the settings again, and fail again when they are refused).
    from pathlib import Path

    from rampart.config import fall_back_to
    from rampart.devstack.running import StackFallback

    fall_back_to(
        StackFallback(
            lambda: Path(settings.rampart_home), lambda line: err.print(line, markup=False)
        )
    )
    ctx = Context(settings, settings_error=error, alert_timeout_seconds=alert_timeout)
    if audit:
        err.print(f"running the dependency audit (at most {audit_timeout:g}s)...")
        record_dependency_audit(ctx, audit_timeout)
    results = run_checks(ctx, only)
    if as_json:
        print(to_json(results, ctx.now, strict))
    else:
        table(results, ctx.now, Console(soft_wrap=False, highlight=False), strict)
    if verdict(results, strict) == Status.NO_GO:
        raise typer.Exit(1)
