"""`rampart web ...` (build, serve, scan) and `rampart openapi`: the web app's commands
(docs/web.md)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rampart.cli_help import Typer

console = Console(stderr=True, soft_wrap=True)

web_app = Typer(
    help="""The web app in web/ (Next.js): build it, serve it, scan its bundle for secrets.

    **Examples**

    ```
    $ rampart web build
    $ rampart web serve --port 3000 --api-url http://127.0.0.1:8000
    $ rampart web scan
    ```
    """,
    no_args_is_help=True,
)


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


@web_app.command("build")
def build(
    force: Annotated[
        bool, typer.Option("--force", help="Build even when the build matches the sources.")
    ] = False,
) -> None:
    """Install the app's npm packages (`npm ci`, when package-lock.json changed) and build
    it (`next build`, when a source changed), with the venv's Node.js.

    **Examples**

    ```
    $ rampart web build
    $ rampart web build --force
    ```
    """
    from rampart.webapp.build import WebBuildError
    from rampart.webapp.build import build as run_build

    try:
        built = run_build(force=force, say=_say)
    except WebBuildError as exc:
        _say(str(exc))
        raise typer.Exit(1) from None
    _say("built web/.next" if built else "web/.next is up to date")


@web_app.command("serve")
def serve(
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            metavar="URL",
            help="The API that /api/* is proxied to (default: RAMPART_API_URL).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the built app (`next start`), proxying /api/* to the API on one origin. `rampart
    up` runs this for you.

    **Examples**

    ```
    $ rampart web serve --port 3000 --api-url http://127.0.0.1:8000
    ```
    """
    from rampart.webapp.build import is_built, serve_command
    from rampart.webapp.paths import WEB_DIR, node_env

    api = api_url or os.environ.get("RAMPART_API_URL")
    if not api:
        _say("set --api-url or RAMPART_API_URL: the API that /api/* goes to")
        raise typer.Exit(2)
    if not is_built():
        _say("web/.next is missing or stale: run `rampart web build` first")
        raise typer.Exit(1)
    env = node_env()
    env["RAMPART_API_URL"] = api
    env["NODE_ENV"] = "production"
    command = serve_command(port, host)
    sys.stdout.flush()
    os.chdir(WEB_DIR)
    # exec: the supervisor's SIGTERM reaches Node itself, which closes its server.
    os.execve(command[0], command, env)  # noqa: S606 - the venv's node  # nosec B606


@web_app.command("scan")
def scan(
    build_dir: Annotated[
        Path | None,
        typer.Option(
            "--build-dir",
            metavar="DIR",
            help="The build to scan (default: web/.next).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Scan the built app (source maps included) for every secret the stack knows and for
    secret-shaped strings; write <RAMPART_HOME>/reports/bundle-scan.json; exit 1 unless
    clean.

    **Examples**

    ```
    $ rampart web scan
    $ RAMPART_HOME=/tmp/rampart-demo rampart web scan --build-dir web/.next
    ```
    """
    from rampart.webapp.bundle_scan import run
    from rampart.webapp.paths import BUILD_DIR

    result = run(build_dir or BUILD_DIR)
    for finding in result["findings"]:
        _say(f"{finding['kind']}: {finding['file']}")
    _say(
        f"{result['files']} files scanned in {result['build_dir']}: "
        + ("clean" if result["clean"] else f"NOT clean ({len(result['findings'])} findings)")
    )
    if not result["clean"]:
        raise typer.Exit(1)


def openapi(
    check: Annotated[
        bool, typer.Option("--check", help="Fail if web/openapi.json is stale.")
    ] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print the document instead.")] = False,
) -> None:
    """Write the API's OpenAPI document to web/openapi.json, from the app itself (no server
    needed); the web app's typed client is generated from it (`make web-client`).

    **Examples**

    ```
    $ rampart openapi
    $ rampart openapi --check
    ```
    """
    from rampart.webapp import openapi as document

    if stdout:
        print(json.dumps(document.document(), indent=2, sort_keys=True))
        return
    if check:
        if document.is_stale():
            _say("web/openapi.json is stale: run `make web-client`")
            raise typer.Exit(1)
        return
    _say(f"wrote {document.write()}")
