"""TCP ports for dev and test servers: free ones to pick, busy ones to refuse early."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Ports handed out lately, one marker file each: the OS may give the same free port to two
# processes (parallel test workers, stacks starting together) between their pick and their
# bind, so a port one of ours picked is not handed out again for a while.
_HANDED_OUT = Path(tempfile.gettempdir()) / f"rampart-ports-{os.getuid()}"
_HOLD_SECONDS = 600


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the OS picks it) and that no other
    `free_port()` of this user handed out in the last ten minutes."""
    _HANDED_OUT.mkdir(mode=0o700, exist_ok=True)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        marker = _HANDED_OUT / str(port)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return port
        except FileExistsError:
            try:
                if time.time() - marker.stat().st_mtime < _HOLD_SECONDS:
                    continue  # another process of ours may be about to bind it
                marker.touch()
                return port
            except OSError:
                continue
    return port


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now. SO_REUSEADDR, as servers set it: a
    port whose old connections linger in TIME_WAIT is free, one with a listener is not."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Binding:
    """A port a server of `rampart up` will listen on, and how the operator moves it."""

    service: str
    host: str
    port: int
    change: str  # e.g. "set PORT"

    def busy_message(self) -> str:
        return (
            f"port {self.port} ({self.service}) is already in use on {self.host}: "
            f"stop what listens there, or {self.change}"
        )


def first_busy(bindings: Iterable[Binding]) -> Binding | None:
    return next((b for b in bindings if not port_free(b.host, b.port)), None)
