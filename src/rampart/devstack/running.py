"""What a running `rampart up` records in its home, and what other processes learn from it.

`<RAMPART_HOME>/up.json` (0600, replaced atomically) holds the `up` process, the URLs it
gave its services, and every child it started (the embedded Postgres and Redis, the API,
worker and relay), each as a pid *with its start time*: a pid alone may by now belong to
another process, a pid and its start time name one process.

- The operator commands (`rampart dlq`, `trace`, `incidents`, `maintenance`, ...) use the
  running stack's URLs when the environment sets none (`StackFallback`), and say so.
- The next `up` stops whatever a killed one left running (`leftover_groups`), and never
  signals a pid that is no longer the recorded process.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rampart.config import MissingSetting
from rampart.kit.processes import same_process, start_time

RECORD = "up.json"
# The URLs `up` hands its services; the operator commands need one or more of them.
URL_VARIABLES = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "OPERATOR_DATABASE_URL",
    "BACKUP_DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "STRIPE_API_BASE",
)
# Where `up` serves the API (loopback when it binds every address): for `rampart demo`.
API_URL = "API_URL"
# Where `up` serves the web app (web/), when it does.
WEB_URL = "WEB_URL"


@dataclass
class Child:
    pid: int
    started: int | None
    stop_signal: int = signal.SIGTERM  # Postgres: SIGINT, its fast shutdown


@dataclass
class UpRecord:
    pid: int
    started: int | None
    urls: dict[str, str]
    children: dict[str, Child] = field(default_factory=dict)


def child(pid: int, stop_signal: int = signal.SIGTERM) -> Child:
    """A child as it runs now (its start time read from /proc)."""
    return Child(pid, start_time(pid), int(stop_signal))


def write(home: Path, record: UpRecord) -> None:
    """Replace the record (written aside and renamed: a reader never sees half of it)."""
    path = Path(home) / RECORD
    partial = path.with_name(f".{RECORD}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(record), handle)
    os.replace(partial, path)


def read(home: Path) -> UpRecord | None:
    try:
        raw = json.loads((Path(home) / RECORD).read_text())
        children = {name: Child(**value) for name, value in raw.pop("children").items()}
        return UpRecord(**raw, children=children)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def remove(home: Path) -> None:
    (Path(home) / RECORD).unlink(missing_ok=True)


def running_up(home: Path) -> UpRecord | None:
    """The record of the `up` that runs now for `home`, or None (none, or it was killed)."""
    record = read(home)
    if record is None or not same_process(record.pid, record.started):
        return None
    return record


def leftover_groups(home: Path) -> dict[int, int]:
    """Process groups (→ the signal that stops them) of the children a dead `up` recorded
    that still run as the very processes it started. Each child leads its own group."""
    record = read(home)
    if record is None or same_process(record.pid, record.started):
        return {}
    return {
        child.pid: child.stop_signal
        for child in record.children.values()
        if same_process(child.pid, child.started)
    }


class StackFallback:
    """`config.fall_back_to(StackFallback(home, say))`: an unset URL setting is taken from
    the `rampart up` running for `home()` (RAMPART_HOME); `say` hears once which stack is
    used. With none running: MissingSetting, one line saying what to do."""

    def __init__(self, home: Callable[[], Path], say: Callable[[str], None]) -> None:
        self.home = home  # read when first needed: most commands need no URL at all
        self.say = say
        self.announced = False

    def __call__(self, variable: str) -> str:
        home = Path(self.home()).resolve()
        record = running_up(home)
        if record is None:
            raise MissingSetting(
                f"{variable} is not set and no `rampart up` is running in {home} "
                f"(RAMPART_HOME): start the stack with `rampart up`, or set {variable}"
            )
        url = record.urls.get(variable)
        if url is None:
            raise MissingSetting(
                f"{variable} is not set, nor known to the `rampart up` (pid {record.pid}) "
                f"in {home}: set {variable}"
            )
        if not self.announced:
            self.announced = True
            self.say(f"using the stack of `rampart up` (pid {record.pid}) in {home}")
        return url
