"""free_port() never hands the same port to two callers of ours in a short while: parallel
test workers and stacks each pick ports, and the OS may give two of them the same free one
between their pick and their bind (a test worker's API once failed to bind that way)."""

from __future__ import annotations

import socket
from concurrent.futures import ProcessPoolExecutor

from rampart.devstack.ports import free_port


def _ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]


def test_ports_handed_out_by_parallel_processes_are_distinct_and_free():
    with ProcessPoolExecutor(4) as pool:
        ports = [port for batch in pool.map(_ports, [100] * 4) for port in batch]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:  # and the last one really is free
        sock.bind(("127.0.0.1", ports[-1]))
