"""The running `rampart up` stack the load and soak tests aim at, learned from what `up`
records in its home (devstack/running.py: up.json) and from its services' environment.

Load comes from one client IP, so the stack must run without the per-IP abuse limits
(`RATE_LIMIT_ENABLED=false`, as `make bench` runs its API) and must let one client have
many bodies in flight (`MAX_PENDING_BODIES_PER_CLIENT`); otherwise the test would measure
the limiter. `preflight` refuses such a stack in one line that says how to start it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rampart.devstack import running

START_HINT = (
    "RATE_LIMIT_ENABLED=false MAX_PENDING_BODIES_PER_CLIENT=100000 make up"
)


class NoStack(RuntimeError):
    """No usable stack: the message is one line that says what to do."""


@dataclass(frozen=True)
class Stack:
    home: Path
    api_url: str
    superuser_url: str  # ground truth (bypasses RLS): the record's BACKUP_DATABASE_URL
    webhook_secret: str
    pids: dict[str, int]  # service → its recorded process
    relay_metrics_url: str | None
    env: dict[str, str]  # the API process's environment (settings it runs with)

    @property
    def api_host(self) -> str:
        return urlsplit(self.api_url).hostname or "127.0.0.1"

    @property
    def api_port(self) -> int:
        return urlsplit(self.api_url).port or 80


def process_env(pid: int) -> dict[str, str]:
    """The environment a process was started with (our own processes only)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def home_dir() -> Path:
    return Path(os.environ.get("RAMPART_HOME") or ".rampart").resolve()


def find(home: Path | None = None) -> Stack:
    home = Path(home or home_dir()).resolve()
    record = running.running_up(home)
    if record is None:
        raise NoStack(
            f"no `rampart up` is running in {home} (RAMPART_HOME): start one with "
            f"`{START_HINT}` and run this again"
        )
    urls = record.urls
    for needed in (running.API_URL, "BACKUP_DATABASE_URL"):
        if needed not in urls:
            raise NoStack(f"the `rampart up` in {home} records no {needed}: "
                          "it runs against an external database; point the test at a local stack")
    pids = {name: child.pid for name, child in record.children.items()}
    api_env = process_env(pids["api"]) if "api" in pids else {}
    secret = api_env.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        try:
            secret = json.loads((home / "secrets.json").read_text())["stripe_webhook_secret"]
        except (OSError, ValueError, KeyError) as exc:
            raise NoStack(f"cannot learn the stack's Stripe webhook secret in {home}") from exc
    relay_env = process_env(pids["relay"]) if "relay" in pids else {}
    relay_port = relay_env.get("RELAY_METRICS_PORT")
    metrics_host = relay_env.get("METRICS_HOST") or "127.0.0.1"
    if metrics_host in ("0.0.0.0", "::"):  # noqa: S104 - an address we read, not bind
        metrics_host = "127.0.0.1"
    return Stack(
        home=home,
        api_url=urls[running.API_URL],
        superuser_url=urls["BACKUP_DATABASE_URL"],
        webhook_secret=secret,
        pids=pids,
        relay_metrics_url=f"http://{metrics_host}:{relay_port}/metrics" if relay_port else None,
        env=api_env,
    )


def preflight(stack: Stack) -> None:
    """Refuse a stack whose per-IP limits would answer the load test with 429s."""
    enabled = stack.env.get("RATE_LIMIT_ENABLED", "true").strip().lower()
    if enabled not in ("false", "0", "no", "off"):
        raise NoStack(
            "the running stack enforces per-IP rate limits (all load comes from one IP): "
            f"stop it and start it with `{START_HINT}`"
        )
