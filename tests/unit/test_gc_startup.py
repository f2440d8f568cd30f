"""The cycle collector is paused while a `rampart` process imports what it runs, and is on
again once it runs (kit/gc_startup.py): a process left without it would grow by every
reference cycle it makes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from rampart import cli
from rampart.kit import gc_startup

pytestmark = pytest.mark.unit


@pytest.fixture
def paused() -> Iterator[None]:
    gc_startup.pause()
    try:
        yield
    finally:
        gc.enable()


def test_resume_turns_the_collector_on_and_leaves_what_the_start_made_out_of_it(paused):
    assert not gc.isenabled()
    before = gc.get_freeze_count()
    made = [[] for _ in range(1000)]
    gc_startup.resume()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)


def test_the_api_turns_it_on_once_set_up(paused):
    from rampart.app import create_app

    create_app()
    assert gc.isenabled()


def test_any_other_command_turns_it_on_before_it_runs(paused, tmp_path, monkeypatch):
    monkeypatch.setenv("RAMPART_HOME", str(tmp_path))
    result = CliRunner().invoke(cli.app, ["mail"])
    assert result.exit_code == 0, result.output
    assert gc.isenabled()



def test_the_command_turns_it_on_also_when_it_ends_before_running(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["rampart", "--help"])
    try:
        with pytest.raises(SystemExit):
            cli.main()  # pauses it first
        assert gc.isenabled()
    finally:
        gc.enable()
