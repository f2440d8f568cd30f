"""`rampart db ...`: database checks. `rampart db lint` runs the hardening lints of
kit/db/lint against a live database (docs/security.md, "Database hardening lints")."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from rampart.cli_help import Typer

db_app = Typer(
    help="""Database checks.

    **Examples**

    ```
    $ rampart db lint
    ```
    """,
    no_args_is_help=True,
)


def _default_url() -> str:
    from rampart.config import get_settings

    # The migration role owns the schema, so it can read every catalog the lints need.
    return get_settings().require("migration_database_url")


def _app_role_default() -> str:
    from sqlalchemy.engine import make_url

    from rampart.config import get_settings

    url = get_settings().database_url
    return (make_url(url.get_secret_value()).username if url else None) or "app_rw"


@db_app.command("lint")
def lint(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="Database to lint (default: MIGRATION_DATABASE_URL, the schema owner).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    strict: Annotated[
        bool, typer.Option(help="Fail on warnings too (default); --no-strict: on errors only.")
    ] = True,
    show_info: Annotated[bool, typer.Option("--info", help="List info findings too.")] = False,
    schema: Annotated[
        list[str] | None,
        typer.Option(metavar="SCHEMA", help="Our schemas (repeatable; default: public, app)."),
    ] = None,
    exposed_role: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ROLE",
            help="Roles that must get nothing, besides PUBLIC (repeatable; default: anon, "
            "authenticated). Roles this server lacks are skipped.",
        ),
    ] = None,
    app_role: Annotated[
        str | None,
        typer.Option(
            metavar="ROLE", help="The runtime role (default: DATABASE_URL's user, else app_rw)."
        ),
    ] = None,
    owner_role: Annotated[
        str | None,
        typer.Option(
            metavar="ROLE",
            help="Role that must own SECURITY DEFINER functions (default: who connects).",
        ),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(metavar="LINT", help="Run only this lint (repeatable).")
    ] = None,
) -> None:
    """Check a live database against the hardening checklist: RLS forced, no always-true
    policy, nothing for anon/authenticated/PUBLIC, SECURITY DEFINER functions pinned down,
    indexed foreign keys, a powerless runtime role. Exit 1 on an error (or a warning, unless
    --no-strict), 2 when the database cannot be read.

    **Examples**

    ```
    $ rampart db lint
    $ rampart db lint --json
    $ rampart db lint --no-strict --info
    $ rampart db lint --only policy_initplan --schema app
    ```
    """
    import psycopg
    from sqlalchemy.engine import make_url

    from rampart.kit.db.lint import ORDER, LintConfig, render, run_lints
    from rampart.kit.db.lint import as_json as to_json

    err = Console(stderr=True, soft_wrap=True)
    try:
        url = make_url(database_url or _default_url())
        config = LintConfig(
            schemas=tuple(schema) if schema else LintConfig.schemas,
            exposed_roles=tuple(exposed_role) if exposed_role else LintConfig.exposed_roles,
            app_role=app_role or _app_role_default(),
            owner_role=owner_role,
        )
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        findings = run_lints(conninfo, config, only)
    except (RuntimeError, ValueError, psycopg.Error) as exc:
        err.print(f"db lint could not run: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    where = {"user": url.username or "", "host": url.host or "", "database": url.database or ""}
    out = Console(soft_wrap=True, highlight=False)
    if as_json:
        print(to_json(findings, where))
    else:
        out.print(f"database {where['database']} on {where['host']} as {where['user']}")
        shown = [f for f in findings if show_info or f.level != "info"]
        ran = len(set(only)) if only else len(ORDER)
        render(shown, out, ran, hidden_info=len(findings) - len(shown))
    failing = {"error", "warn"} if strict else {"error"}
    if any(f.level in failing for f in findings):
        raise typer.Exit(1)
