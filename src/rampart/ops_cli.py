"""Operator commands: `rampart dlq ...` (quarantine) and `rampart maintenance ...`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
dlq_app = typer.Typer(help="Inspect, replay and discard quarantined jobs (dead letters).")
maintenance_app = typer.Typer(help="Operator switches shared by every process.")


@dlq_app.command("list")
def dlq_list(
    all_: Annotated[bool, typer.Option("--all", help="Include replayed and discarded.")] = False,
) -> None:
    """Quarantined jobs, oldest first."""
    from rampart.kit.jobs.quarantine import list_dead_letters

    rows = list_dead_letters(include_closed=all_)
    table = Table(title=f"{len(rows)} dead letter(s)")
    for column in ("id", "quarantined", "type", "error", "attempts", "trace_id", "state"):
        table.add_column(column, no_wrap=column in ("id", "trace_id"))
    for row in rows:
        state = "replayed" if row.replayed_at else "discarded" if row.discarded_at else "open"
        table.add_row(
            str(row.id),
            row.quarantined_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.job_type,
            f"{row.error_class}: {row.error_message}"[:60],
            str(row.attempts),
            row.trace_id or "",
            state,
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(dead_letter_id: int) -> None:
    """Everything kept about one quarantined job: error, traceback, payload, trace id."""
    from rampart.kit.jobs.quarantine import show_dead_letter

    row = show_dead_letter(dead_letter_id)
    if row is None:
        console.print(f"[red]no dead letter {dead_letter_id}[/red]")
        raise typer.Exit(1)
    for key, value in row._mapping.items():
        if key in ("traceback", "payload"):
            continue
        console.print(f"[bold]{key}[/bold]: {value}")
    console.print("[bold]payload[/bold]:", json.dumps(row.payload, indent=2))
    console.print("[bold]traceback[/bold]:\n" + (row.traceback or "(none)"))


@dlq_app.command("replay")
def dlq_replay(
    dead_letter_id: Annotated[int | None, typer.Argument()] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every open dead letter.")] = False,
) -> None:
    """Send a quarantined job (or all) back to the queue, keeping its trace_id. Replaying
    a job whose work is already done changes nothing: tasks are idempotent."""
    from rampart.kit.jobs.quarantine import list_dead_letters, replay

    if (dead_letter_id is None) == (not all_):
        console.print("[red]give one ID or --all[/red]")
        raise typer.Exit(2)
    ids = [row.id for row in list_dead_letters()] if all_ else [dead_letter_id]
    replayed = [i for i in ids if replay(i)]
    for i in set(ids) - set(replayed):
        console.print(f"[yellow]dead letter {i}: not found, or already replayed/discarded[/yellow]")
    console.print(f"replayed {len(replayed)} job(s)")
    if not replayed and not all_:
        raise typer.Exit(1)


@dlq_app.command("discard")
def dlq_discard(dead_letter_id: int) -> None:
    """Close a dead letter without running it again (it stays for the record)."""
    from rampart.kit.jobs.quarantine import discard

    if not discard(dead_letter_id):
        console.print(f"[red]dead letter {dead_letter_id}: not found or already closed[/red]")
        raise typer.Exit(1)
    console.print(f"discarded {dead_letter_id}")


@maintenance_app.command("read-only")
def read_only(
    state: Annotated[str, typer.Argument(help="on | off | status")] = "status",
) -> None:
    """Switch read-only mode for every API process (writes get 503 `read_only`)."""
    from rampart.config import get_settings
    from rampart.kit.maintenance import read_only_flag, set_read_only

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
