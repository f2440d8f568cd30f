"""Operator commands: `rampart dlq ...` (quarantine), `rampart maintenance ...`,
`rampart incidents` and `rampart alertmanager-config`."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rampart.cli_help import Typer

console = Console()
dlq_app = Typer(
    help="""Inspect, replay and discard quarantined jobs (dead letters).

    Uses OPERATOR_DATABASE_URL.

    **Examples**

    ```
    $ rampart dlq list
    $ rampart dlq show 42
    $ rampart dlq replay --all
    ```
    """
)
_ID = typer.Argument(metavar="ID", help="A dead letter's id (`rampart dlq list`).")
DeadLetterId = Annotated[int, _ID]
maintenance_app = Typer(
    help="""Operator switches shared by every process.

    **Examples**

    ```
    $ rampart maintenance read-only on
    ```
    """
)


@dlq_app.command("list")
def dlq_list(
    all_: Annotated[bool, typer.Option("--all", help="Include replayed and discarded.")] = False,
) -> None:
    """Quarantined jobs, oldest first.

    **Examples**

    ```
    $ rampart dlq list
    $ rampart dlq list --all
    ```
    """
    from rampart.kit.jobs.quarantine import list_dead_letters

    rows = asyncio.run(list_dead_letters(include_closed=all_))
    table = Table(title=f"{len(rows)} dead letter(s)")
    for column in ("id", "quarantined", "type", "error", "attempts", "trace_id", "state"):
        table.add_column(column, no_wrap=column in ("id", "trace_id"))
    for row in rows:
        state = "replayed" if row["replayed_at"] else "discarded" if row["discarded_at"] else "open"
        table.add_row(
            str(row["id"]),
            row["quarantined_at"].strftime("%Y-%m-%d %H:%M:%S"),
            row["job_type"],
            f"{row['error_class']}: {row['error_message']}"[:60],
            str(row["attempts"]),
            row["trace_id"] or "",
            state,
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(dead_letter_id: DeadLetterId) -> None:
    """Everything kept about one quarantined job: error, traceback, payload, trace id.

    **Examples**

    ```
    $ rampart dlq show 42
    ```
    """
    from rampart.kit.jobs.quarantine import show_dead_letter

    row = asyncio.run(show_dead_letter(dead_letter_id))
    if row is None:
        console.print(f"[red]no dead letter {dead_letter_id}[/red]")
        raise typer.Exit(1)
    for key, value in row.items():
        if key in ("traceback", "payload"):
            continue
        console.print(f"[bold]{key}[/bold]: {value}")
    console.print("[bold]payload[/bold]:", json.dumps(row["payload"], indent=2))
    console.print("[bold]traceback[/bold]:\n" + (row["traceback"] or "(none)"))


@dlq_app.command("replay")
def dlq_replay(
    dead_letter_id: Annotated[int | None, _ID] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every open dead letter.")] = False,
) -> None:
    """Send a quarantined job (or all) back to the queue, keeping its trace_id.

    Replaying a job whose work is already done changes nothing: tasks are idempotent.

    **Examples**

    ```
    $ rampart dlq replay 42
    $ rampart dlq replay --all
    ```
    """
    from rampart.kit.jobs.quarantine import list_dead_letters, replay

    if (dead_letter_id is None) == (not all_):
        console.print("[red]give one ID or --all[/red]")
        raise typer.Exit(2)
    ids = [row["id"] for row in asyncio.run(list_dead_letters())] if all_ else [dead_letter_id]
    replayed = [i for i in ids if asyncio.run(replay(i))]
    for i in set(ids) - set(replayed):
        console.print(f"[yellow]dead letter {i}: not found, or already replayed/discarded[/yellow]")
    console.print(f"replayed {len(replayed)} job(s)")
    if not replayed and not all_:
        raise typer.Exit(1)


@dlq_app.command("discard")
def dlq_discard(dead_letter_id: DeadLetterId) -> None:
    """Close a dead letter without running it again (it stays for the record).

    **Examples**

    ```
    $ rampart dlq discard 42
    ```
    """
    from rampart.kit.jobs.quarantine import discard

    if not asyncio.run(discard(dead_letter_id)):
        console.print(f"[red]dead letter {dead_letter_id}: not found or already closed[/red]")
        raise typer.Exit(1)
    console.print(f"discarded {dead_letter_id}")


@maintenance_app.command("read-only")
def read_only(
    state: Annotated[str, typer.Argument(metavar="STATE", help="on, off or status.")] = "status",
) -> None:
    """Switch read-only mode for every API process (writes get 503 `read_only`).

    **Examples**

    ```
    $ rampart maintenance read-only on
    $ rampart maintenance read-only off
    $ rampart maintenance read-only
    ```
    """
    from rampart.config import get_settings
    from rampart.kit.read_only import read_only_flag, set_read_only

    if state not in ("on", "off", "status"):
        console.print("[red]say on, off or status[/red]")
        raise typer.Exit(2)
    if state != "status":
        set_read_only(state == "on")
    flag = read_only_flag()
    setting = get_settings().read_only
    console.print(
        f"read-only: {'ON' if flag or setting else 'off'} "
        f"(runtime flag {'on' if flag else 'off'}, READ_ONLY setting {setting})"
    )


def incidents(
    all_: Annotated[bool, typer.Option("--all", help="Include resolved incidents.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per incident.")] = False,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, metavar="N", help="At most this many.")
    ] = 200,
) -> None:
    """Incidents received from Alertmanager: firing ones (with --all, resolved ones too),
    newest first. Uses OPERATOR_DATABASE_URL.

    **Examples**

    ```
    $ rampart incidents
    $ rampart incidents --all --limit 20
    $ rampart incidents --json
    ```
    """
    from rampart.incidents.service import list_incidents

    rows = asyncio.run(list_incidents(include_resolved=all_, limit=limit))
    if as_json:
        for row in rows:
            console.print_json(json.dumps(row.as_json()), indent=None)
        return
    kind = "incident(s)" if all_ else "firing incident(s)"
    table = Table(title=f"{len(rows)} {kind}")
    columns = ("id", "started", "status", "severity", "alert", "service", "summary", "notes")
    for column in columns:
        table.add_column(column, no_wrap=column in ("id", "started", "alert"))
    for row in rows:
        ended = row.resolved_at.strftime("%H:%M:%S") if row.resolved_at else ""
        table.add_row(
            str(row.id),
            row.starts_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.status + (f" {ended}" if ended else ""),
            row.severity or "",
            row.alertname,
            row.service or "",
            (row.summary or "")[:80],
            str(row.notifications),
        )
    console.print(table)


def alertmanager_config(
    webhook_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Incident webhook URL (default: ALERT_WEBHOOK_URL)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write here (mode 0600), not stdout."
        ),
    ] = None,
    inline_token: Annotated[
        bool,
        typer.Option(
            help="Put ALERT_WEBHOOK_TOKEN itself in the file (`credentials`) instead of "
            "naming ALERT_WEBHOOK_TOKEN_FILE (`credentials_file`)."
        ),
    ] = False,
    group_wait: Annotated[
        str, typer.Option(metavar="DURATION", help="Alertmanager group_wait.")
    ] = "30s",
    group_interval: Annotated[
        str, typer.Option(metavar="DURATION", help="Alertmanager group_interval.")
    ] = "5m",
    repeat_interval: Annotated[
        str, typer.Option(metavar="DURATION", help="Alertmanager repeat_interval.")
    ] = "4h",
    resolve_timeout: Annotated[
        str, typer.Option(metavar="DURATION", help="Alertmanager resolve_timeout.")
    ] = "5m",
) -> None:
    """Render alertmanager.yml from the settings: routes by severity, inhibition, the
    incident webhook, Slack and PagerDuty when their settings are set.

    **Examples**

    ```
    $ rampart alertmanager-config -o ops/alertmanager/alertmanager.yml
    $ rampart alertmanager-config --webhook-url https://api.example.com/api/v1/internal/alerts
    $ rampart alertmanager-config --group-wait 10s --inline-token
    ```
    """
    from rampart.config import get_settings
    from rampart.kit.alertmanager_config import Timing, render

    try:
        timing = Timing(group_wait, group_interval, repeat_interval, resolve_timeout)
        text = render(
            get_settings(), webhook_url=webhook_url, inline_token=inline_token, timing=timing
        )
    except ValueError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if output is None:
        print(text, end="")
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    Console(stderr=True).print(f"wrote {output}")
