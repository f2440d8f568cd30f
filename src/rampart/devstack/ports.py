"""TCP ports for dev and test servers: free ones to pick, busy ones to refuse early."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the OS picks it; racy but fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
