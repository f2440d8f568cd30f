"""Apply migrations as the migration role, then give app_rw the password from DATABASE_URL.

The migration creates app_rw without a password (a migration must not hold secrets);
this step makes the runtime role's credentials match the configured DATABASE_URL.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[4]


def _alembic_config(migration_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = migration_url
    return config


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def migrate(migration_url: str, runtime_url: str | None) -> None:
    alembic_url = make_url(migration_url).set(drivername="postgresql+psycopg")
    # "heads": independent migration branches (each off a shared parent) all apply.
    command.upgrade(_alembic_config(alembic_url.render_as_string(hide_password=False)), "heads")
    if runtime_url is None:
        return
    runtime = make_url(runtime_url)
    if runtime.username == "app_rw" and runtime.password:
        with psycopg.connect(_libpq(migration_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE app_rw PASSWORD {}").format(sql.Literal(runtime.password))
            )


def current_revision(migration_url: str) -> str | None:
    with psycopg.connect(_libpq(migration_url)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
