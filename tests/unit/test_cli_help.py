"""`rampart ... --help` for every command reads cleanly (src/rampart/cli_help.py): no Typer
type placeholders (`<bool>`, `<str>`), no hard line breaks inside a sentence, an Examples
section whose `rampart` examples name real commands and options, and `fake-llm` names every
fault mode of the fake LLM server.

Commands come from the Typer app itself, so a new command is held to this without a change
here. The help pages are printed at a fixed width by one real Python process that runs the
CLI's Click command for each path, as `python -m rampart.cli <path> --help` does (the same
text, byte for byte; one process instead of 35 saves each its start-up and imports).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
import typer
from tests.unit.test_runbooks import command_problem

from rampart.cli import app
from rampart.llm.fake_server import MODES

COLUMNS = 100
# Typer's type labels are lowercase (<bool>, <str>, <int>, <path>, <list[Path]>, <a|b>);
# placeholders written in help text are uppercase (<RAMPART_HOME>).
TYPE_PLACEHOLDER = re.compile(r"<[a-z][^<>]*>")


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The command paths under `command` (a group, or Typer's own click-like command)."""
    found = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            found += _paths(sub, (*prefix, name))
    return found


COMMANDS = _paths(typer.main.get_command(app))


PAGE = "\x00--rampart-help-page--\x00\n"
# Each page: the CLI's Click command with `--help`, under the name `python -m` gives it.
PRINT_PAGES = f"""
import json, sys
import typer
from rampart.cli import app
command = typer.main.get_command(app)
for path in json.loads(sys.argv[1]):
    sys.stdout.write({PAGE!r})
    try:
        command.main([*path, "--help"], prog_name="python -m rampart.cli", standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, (path, exc.code)
    sys.stdout.flush()
"""


@cache
def help_pages() -> dict[tuple[str, ...], str]:
    env = {**os.environ, "COLUMNS": str(COLUMNS), "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", PRINT_PAGES, json.dumps(COMMANDS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pages = result.stdout.split(PAGE)[1:]
    assert len(pages) == len(COMMANDS), result.stdout + result.stderr
    return dict(zip(COMMANDS, pages, strict=True))


def help_of(path: tuple[str, ...]) -> str:
    return help_pages()[path]


def hard_breaks(text: str, width: int = COLUMNS) -> list[str]:
    """Lines broken before a word that would have fitted: rich fills each line, so such a
    break is a newline in the help text itself. A continuation starts with a lowercase word
    (list items start with a bullet, examples with `$`, options with `-`, defaults with
    `[`) and, in a panel, is indented past the first column (else it is the next row)."""
    lines = [line.rstrip().removesuffix("│").rstrip() for line in text.splitlines()]
    found = []
    for above, below in zip(lines, lines[1:], strict=False):
        in_panel = below.startswith("│")
        inner = below.removeprefix("│")
        content = inner.lstrip()
        indent = len(inner) - len(content)
        if not above.strip(" │") or not content[:1].islower() or (in_panel and indent <= 1):
            continue
        if len(above) + 1 + len(content.split()[0]) <= width - 3:
            found.append(f"{above}\n{below}")
    return found


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "rampart")
def test_help_is_clean_and_has_examples(path: tuple[str, ...]) -> None:
    text = help_of(path)
    assert TYPE_PLACEHOLDER.findall(text) == [], text
    assert hard_breaks(text) == [], text
    assert "Examples" in (line.strip(" │") for line in text.splitlines()), text
    for example in re.findall(r"^\s*\$ (?:\w+=\S+ )*rampart (.*)$", text, re.MULTILINE):
        assert command_problem(example.split()) is None, example


def test_fake_llm_help_names_every_fault_mode_on_its_own_line() -> None:
    text = help_of(("fake-llm",))
    missing = [m for m in MODES if not re.search(rf"^\s*•\s+{m}\b", text, re.MULTILINE)]
    assert missing == [], text


def test_hard_break_detection_sees_a_newline_inside_a_sentence() -> None:
    reflowed = " Hand the deliveries of dead workers back to the job queue now.\n"
    broken = " Hand the deliveries of dead workers\n back to the job queue now.\n"
    assert hard_breaks(reflowed) == []
    assert hard_breaks(broken) != []
    rows = "│ relay   Publish committed outbox rows.\n│ migrate Apply database migrations.\n"
    assert hard_breaks(rows) == []
    wrapped_row = "│ worker  Run a Celery worker: a threads pool\n│         whose jobs share one.\n"
    assert hard_breaks(wrapped_row) != []
