"""The local stack: embedded Postgres and Redis, bootstrapped and migrated, and a mail
capture server (devstack/mailbox.py: mails land in `<home>/mail/`), as environment
variables for the processes that use them. `rampart up` and the test suite both use it;
whatever is already configured (DATABASE_URL, REDIS_URL, SMTP_URL) is used instead of
starting one.

Everything under the home (.rampart/) is private to its owner: files 0600, directories
0700, except that the home and postgres/ are 0711 when we are root, so the unprivileged
user Postgres runs as (nobody) can pass through to its own data/ (owned by it, 0700). The
secrets are generated here, once: database passwords, JWT and session keys, the incident
webhook token, the Redis password (`requirepass`; REDIS_URL carries it) and a Stripe
webhook secret (`whsec_...`, so signatures made with the public dev default are refused).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from rampart.billing.fake_stripe import FakeStripeServer
from rampart.devstack.mailbox import MailCapture
from rampart.devstack.ports import Binding, free_port
from rampart.devstack.postgres import EmbeddedPostgres, bootstrap_database
from rampart.devstack.redis import EmbeddedRedis
from rampart.kit.db.migrate import migrate

DATABASE = "rampart"


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (also when it existed before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


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
        "redis_password": lambda: secrets.token_urlsafe(32),
        "stripe_webhook_secret": lambda: "whsec_" + secrets.token_urlsafe(32),
    }
    missing = {key: make() for key, make in generate.items() if key not in values}
    if missing:
        values |= missing
        _write_private(path, json.dumps(values))
    return values


def _ports(home: Path) -> dict[str, int]:
    """Ports chosen once per .rampart/ and reused, so a server left running by a killed
    `rampart up` is found again instead of clashing with a fresh port."""
    path = home / "ports.json"
    ports = json.loads(path.read_text()) if path.exists() else {}
    missing = {
        name: free_port() for name in ("postgres", "redis", "smtp", "stripe") if name not in ports
    }
    if missing:  # a new home, or one from before a server was added
        ports |= missing
        _write_private(path, json.dumps(ports))
    return ports


def make_private(home: Path) -> None:
    """Take group and others' rights from everything under `home` (earlier versions left
    logs and Redis files 0644): they may only pass through the directories that the
    Postgres server user must cross (the home and postgres/, when we are root)."""
    traverse = 0o711 if os.geteuid() == 0 else 0o700
    os.chmod(home, traverse)
    for directory, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(directory, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or stat.S_ISSOCK(info.st_mode):
                continue
            mode = stat.S_IMODE(info.st_mode)
            wanted = mode & ~0o077
            if path in (home / "postgres", home / "backups"):
                wanted = traverse  # the server user passes through to data/ and backups/wal/
            if wanted != mode:
                os.chmod(path, wanted)


@dataclass
class LocalStack:
    home: Path
    fast: bool = False
    supervised: bool = False  # `rampart up`: its servers die with it (die_with_parent)
    fake_stripe: bool = False  # start the fake Stripe even when not supervised (tests)
    postgres_settings: dict[str, str] = field(default_factory=dict)  # e.g. WAL archiving
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    mail: MailCapture | None = None
    stripe: FakeStripeServer | None = None
    env: dict[str, str] = field(default_factory=dict)

    def bindings(self) -> list[Binding]:
        """The ports the servers that `start` would start listen on (configured ones are
        not ours to start)."""
        ports = _ports(self.home)
        found = []
        for service, name, variable in (
            ("Postgres", "postgres", "DATABASE_URL"),
            ("Redis", "redis", "REDIS_URL"),
            ("mail capture", "smtp", "SMTP_URL"),
            ("fake Stripe", "stripe", "STRIPE_API_BASE"),
        ):
            if name == "stripe" and not self._fake_stripe_wanted():
                continue
            if not os.environ.get(variable):
                change = (
                    f'delete "{name}" from {self.home / "ports.json"} (the next start '
                    "picks a free port)"
                )
                found.append(Binding(service, "127.0.0.1", ports[name], change))
        return found

    def start(self) -> dict[str, str]:
        """Start what is not configured, migrate, and return the env for child processes."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(self.home)
        local = _local_secrets(self.home)
        ports = _ports(self.home)
        env = {
            "JWT_SECRET": os.environ.get("JWT_SECRET") or local["jwt_secret"],
            "SESSION_SECRET": os.environ.get("SESSION_SECRET") or local["session_secret"],
            "ALERT_WEBHOOK_TOKEN": (
                os.environ.get("ALERT_WEBHOOK_TOKEN") or local["alert_webhook_token"]
            ),
            # `stripe listen` prints its own secret: set STRIPE_WEBHOOK_SECRET to use it.
            "STRIPE_WEBHOOK_SECRET": (
                os.environ.get("STRIPE_WEBHOOK_SECRET") or local["stripe_webhook_secret"]
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
                self.home / "postgres",
                ports["postgres"],
                fast=self.fast,
                die_with_parent=self.supervised,
                settings=self.postgres_settings,
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
            # pg_basebackup needs REPLICATION; on the embedded server that is its superuser.
            env["BACKUP_DATABASE_URL"] = (
                self.postgres.superuser_url.rsplit("/", 1)[0] + f"/{DATABASE}"
            )
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            self.redis = EmbeddedRedis(
                self.home / "redis",
                ports["redis"],
                fast=self.fast,
                password=local["redis_password"],
                die_with_parent=self.supervised,
            )
            self.redis.start()
            env["REDIS_URL"] = self.redis.url
        if os.environ.get("SMTP_URL"):
            env["SMTP_URL"] = os.environ["SMTP_URL"]
        else:
            self.mail = MailCapture(self.home / "mail", ports["smtp"])
            self.mail.start()
            env["SMTP_URL"] = self.mail.url
        if os.environ.get("STRIPE_API_BASE"):
            env["STRIPE_API_BASE"] = os.environ["STRIPE_API_BASE"]
        elif self._fake_stripe_wanted():
            # `rampart up` without Stripe keys: the fake Stripe (billing/fake_stripe.py),
            # signing webhooks with this stack's secret; `up` tells it the API's URL.
            self.stripe = FakeStripeServer(
                port=ports["stripe"], webhook_secret=env["STRIPE_WEBHOOK_SECRET"]
            ).start()
            env["STRIPE_API_BASE"] = self.stripe.url
        migrate(
            env["MIGRATION_DATABASE_URL"], env["DATABASE_URL"], env.get("OPERATOR_DATABASE_URL")
        )
        self.env = env
        return env

    def _fake_stripe_wanted(self) -> bool:
        return (self.supervised or self.fake_stripe) and not (
            os.environ.get("STRIPE_API_KEY") or os.environ.get("STRIPE_API_BASE")
        )

    def stop(self) -> None:
        if self.stripe is not None:
            self.stripe.stop()
            self.stripe = None
        if self.mail is not None:
            self.mail.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
