"""A fresh database in the test stack's embedded Postgres, bootstrapped like the app's and
owned by the migration role, dropped afterwards: for tests that move migrations up and
down (the shared database stays at the head for everyone else)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from alembic.config import Config
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from rampart.devstack.postgres import bootstrap_database, install_dir
from rampart.kit.db.migrate import _alembic_config, sqlalchemy_url
from tests.support.stack import TestStack


@dataclass
class ScratchDatabase:
    name: str
    url: str  # the migration role's
    config: Config  # Alembic, as the migration role
    superuser: str  # conninfo, bypasses RLS: ground truth only

    def schema_dump(self) -> str:
        """pg_dump --schema-only: tables, columns, indexes, constraints, functions,
        triggers, policies, grants."""
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [str(install_dir() / "bin" / "pg_dump"), "--schema-only", "-d", self.superuser],
            capture_output=True, text=True, timeout=120, check=True,
        )
        # pg_dump 18 prints a random \restrict key per run.
        return "\n".join(
            line for line in done.stdout.splitlines() if not line.startswith("\\")
        )


@contextmanager
def scratch_database(stack: TestStack) -> Iterator[ScratchDatabase]:
    if stack.postgres is None:
        pytest.skip("needs the embedded Postgres' superuser; DATABASE_URL points elsewhere")
    name = f"rampart_scratch_{uuid.uuid4().hex[:8]}"
    migration = make_url(os.environ["MIGRATION_DATABASE_URL"])
    bootstrap_database(
        stack.postgres.superuser_url,
        database=name,
        migration_user=migration.username,
        migration_password=migration.password,
    )
    url = migration.set(database=name).render_as_string(hide_password=False)
    try:
        yield ScratchDatabase(
            name,
            url,
            _alembic_config(sqlalchemy_url(url)),
            make_conninfo(stack.postgres.superuser_url, dbname=name),
        )
    finally:
        with psycopg.connect(stack.postgres.superuser_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
