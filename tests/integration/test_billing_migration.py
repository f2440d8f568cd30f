"""Migration 0015 is reversible: on a scratch database, down to 0013 and up again gives the
same schema (pg_dump --schema-only), and its upgrade leaves 0010's role functions working."""

from __future__ import annotations

import os
import subprocess
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from alembic import command
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from rampart.devstack.postgres import bootstrap_database, install_dir
from rampart.kit.db.migrate import _alembic_config, sqlalchemy_url


def _schema(conninfo: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(install_dir() / "bin" / "pg_dump"), "--schema-only", "-d", conninfo],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith("\\"))


@contextmanager
def _scratch(stack):
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
        yield (
            _alembic_config(sqlalchemy_url(url)),
            make_conninfo(stack.postgres.superuser_url, dbname=name),
        )
    finally:
        with psycopg.connect(stack.postgres.superuser_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0015_goes_down_and_up_to_the_same_schema(stack):
    if stack.postgres is None:
        pytest.skip("needs the embedded Postgres' superuser")
    with _scratch(stack) as (config, superuser):
        command.upgrade(config, "heads")
        at_head = _schema(superuser)
        command.downgrade(config, "0013")
        down = _schema(superuser)
        for gone in ("usage_counters", "before_state", "subscription_status", "audit_page"):
            assert gone not in down, gone
        with psycopg.connect(superuser) as conn:
            [(body,)] = conn.execute(
                "SELECT pg_get_functiondef('app.user_set_role(uuid, text, text)'::regprocedure)"
            ).fetchall()
        assert "role_changed" in body and "before_state" not in body  # 0010's, back
        command.upgrade(config, "heads")
        assert _schema(superuser) == at_head
