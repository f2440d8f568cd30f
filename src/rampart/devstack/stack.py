"""The local stack: embedded Postgres and Redis, bootstrapped and migrated, as environment
variables for the processes that use them. `rampart up` and the test suite both use it;
whatever is already configured (DATABASE_URL, REDIS_URL) is used instead of starting one."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from rampart.devstack.ports import free_port
from rampart.devstack.postgres import EmbeddedPostgres, bootstrap_database
from rampart.devstack.redis import EmbeddedRedis
from rampart.kit.db.migrate import migrate

DATABASE = "rampart"


def _local_secrets(home: Path) -> dict[str, str]:
    """Dev-only credentials, generated once per .rampart/ and kept there (mode 0600).

    A key missing from an older file is generated and added; existing ones never change.
    """
    path = home / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    generate = {
        "migration_password": lambda: secrets.token_urlsafe(24),
        "app_password": lambda: secrets.token_urlsafe(24),
        "operator_password": lambda: secrets.token_urlsafe(24),
        "jwt_secret": lambda: secrets.token_urlsafe(48),
        "session_secret": lambda: secrets.token_urlsafe(48),
        "alert_webhook_token": lambda: secrets.token_urlsafe(32),
    }
    missing = {key: make() for key, make in generate.items() if key not in values}
    if missing:
        values |= missing
        path.touch(mode=0o600)
        path.write_text(json.dumps(values))
    return values


def _ports(home: Path) -> dict[str, int]:
    """Ports chosen once per .rampart/ and reused, so a server left running by a killed
    `rampart up` is found again instead of clashing with a fresh port."""
    path = home / "ports.json"
    if path.exists():
        return json.loads(path.read_text())
    ports = {"postgres": free_port(), "redis": free_port()}
    path.write_text(json.dumps(ports))
    return ports


@dataclass
class LocalStack:
    home: Path
    fast: bool = False
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> dict[str, str]:
        """Start what is not configured, migrate, and return the env for child processes."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)  # noqa: S103 - the unprivileged Postgres user must traverse it
        local = _local_secrets(self.home)
        ports = _ports(self.home)
        env = {
            "JWT_SECRET": os.environ.get("JWT_SECRET") or local["jwt_secret"],
            "SESSION_SECRET": os.environ.get("SESSION_SECRET") or local["session_secret"],
            "ALERT_WEBHOOK_TOKEN": (
                os.environ.get("ALERT_WEBHOOK_TOKEN") or local["alert_webhook_token"]
            ),
        }
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
            env["MIGRATION_DATABASE_URL"] = os.environ.get(
                "MIGRATION_DATABASE_URL", os.environ["DATABASE_URL"]
            )
            if os.environ.get("OPERATOR_DATABASE_URL"):
                env["OPERATOR_DATABASE_URL"] = os.environ["OPERATOR_DATABASE_URL"]
        else:
            self.postgres = EmbeddedPostgres(
                self.home / "postgres", ports["postgres"], fast=self.fast
            )
            self.postgres.start()
            bootstrap_database(
                self.postgres.superuser_url,
                database=DATABASE,
                migration_user="migration_admin",
                migration_password=local["migration_password"],
            )
            base = f"127.0.0.1:{self.postgres.port}/{DATABASE}"
            env["MIGRATION_DATABASE_URL"] = (
                f"postgresql://migration_admin:{local['migration_password']}@{base}"
            )
            env["DATABASE_URL"] = f"postgresql://app_rw:{local['app_password']}@{base}"
            env["OPERATOR_DATABASE_URL"] = (
                f"postgresql://rampart_operator:{local['operator_password']}@{base}"
            )
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            self.redis = EmbeddedRedis(self.home / "redis", ports["redis"], fast=self.fast)
            self.redis.start()
            env["REDIS_URL"] = self.redis.url
        migrate(
            env["MIGRATION_DATABASE_URL"], env["DATABASE_URL"], env.get("OPERATOR_DATABASE_URL")
        )
        self.env = env
        return env

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
