"""How `rampart ... --help` reads: the Typer app class every `rampart` command group uses.

- Help text is Markdown (`rich_markup_mode="markdown"`): docstrings stay wrapped at 100
  columns in the source and rich reflows each paragraph to the terminal; an **Examples**
  section is a code block, one command per line.
- Typer's rich help prints a type column: `<str>` for an option or argument without a
  metavar, so every one names its value (`--port PORT`, `TRACE_ID`), and `<bool>` for a
  flag, which takes no value: the command classes below leave a flag's column empty
  (Typer's own `--help` included), and an argument's, as its metavar is its name.

tests/unit/test_cli_help.py holds every command to this.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


def _no_type(ctx: Any = None) -> None:
    return None


class _NoTypePlaceholders:
    """At help time, when every parameter is there (Typer adds `--help` and the completion
    flags after building the command): a flag's type column is empty, and so is an
    argument's, whose metavar in the name column already names it (`TRACE_ID`)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            elif param.param_type_name == "argument" and param.metavar is not None:
                param.display_type_rich = _no_type  # Typer's one hook for that column
        super().format_help(ctx, formatter)  # type: ignore[misc]


class HelpCommand(_NoTypePlaceholders, TyperCommand):
    pass


class HelpGroup(_NoTypePlaceholders, TyperGroup):
    pass


class Typer(typer.Typer):
    """typer.Typer with Markdown help, and the classes above for itself and its commands."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=HelpGroup, rich_markup_mode="markdown", **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        return super().command(*args, **{"cls": HelpCommand, **kwargs})
