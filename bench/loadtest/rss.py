"""Resident memory of the stack's processes, read from /proc (Linux).

A service is its recorded process and every descendant (Postgres forks a backend per
connection), so its figure is the sum over the tree. Each process counts its resident set
without shared memory (VmRSS - RssShmem): Postgres' shared buffers are one fixed segment,
mapped by every backend, and counting it once per backend that has touched more of it
would look like growth. Anonymous memory (the heap, where a leak lives) and file pages
are all counted.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def _status_kb(status_text: str, field: str) -> int | None:
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                unit = parts[2].lower() if len(parts) > 2 else "kb"
                value = int(parts[1])
                return value * 1024 if unit == "mb" else value
    return None


def parse_vmrss_kb(status_text: str) -> int | None:
    """Resident memory without shared memory from /proc/<pid>/status, in kB: VmRSS minus
    RssShmem (absent on old kernels: 0). None: a kernel thread or a zombie (no VmRSS)."""
    total = _status_kb(status_text, "VmRSS")
    if total is None:
        return None
    return total - (_status_kb(status_text, "RssShmem") or 0)


def parse_ppid(stat_text: str) -> int | None:
    """The parent pid from /proc/<pid>/stat (the command may hold spaces and parentheses)."""
    tail = stat_text[stat_text.rfind(")") + 2 :].split()
    return int(tail[1]) if len(tail) > 1 and tail[1].isdigit() else None


def rss_kb(pid: int, proc: Path = PROC) -> int | None:
    try:
        return parse_vmrss_kb((proc / str(pid) / "status").read_text())
    except OSError:
        return None


def children_map(proc: Path = PROC) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = parse_ppid((entry / "stat").read_text())
        except OSError:
            continue
        if ppid is not None:
            found.setdefault(ppid, []).append(int(entry.name))
    return found


def tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def tree_rss_kb(pids: dict[str, int], proc: Path = PROC) -> dict[str, int | None]:
    """{service: RSS of its process tree in kB, None when the process is gone}."""
    children = children_map(proc)
    out: dict[str, int | None] = {}
    for name, pid in pids.items():
        root = rss_kb(pid, proc)
        if root is None:
            out[name] = None
            continue
        out[name] = root + sum(rss_kb(p, proc) or 0 for p in tree(pid, children)[1:])
    return out
