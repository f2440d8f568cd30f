"""Apply migrations as the migration role, then give the login roles their passwords.

The migrations create app_rw and rampart_operator without a password (a migration must not
hold secrets); this step makes their credentials match DATABASE_URL and
OPERATOR_DATABASE_URL. Alembic runs on SQLAlchemy with psycopg, the one place the runtime
does not use asyncpg.
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


def sqlalchemy_url(url: str) -> str:
    """A Postgres URL in SQLAlchemy's psycopg 3 dialect form (for Alembic)."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _names_role(username: str | None, role: str) -> bool:
    """Whether a URL logs in as `role`: Supabase's pooler (Supavisor) wants the user as
    `<role>.<project-ref>`, e.g. `app_rw.abcdefghijklmnopqrst`."""
    return username == role or (username or "").startswith(f"{role}.")


def migrate(migration_url: str, runtime_url: str | None, operator_url: str | None = None) -> None:
    # "heads": independent migration branches (each off a shared parent) all apply.
    command.upgrade(_alembic_config(sqlalchemy_url(migration_url)), "heads")
    logins = [
        (url, role)
        for url, role in ((runtime_url, "app_rw"), (operator_url, "rampart_operator"))
        if url
    ]
    with psycopg.connect(_libpq(migration_url), autocommit=True) as conn:
        for url, role in logins:
            parsed = make_url(url)
            if _names_role(parsed.username, role) and parsed.password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(parsed.password)
                    )
                )


def current_revision(migration_url: str) -> str | None:
    with psycopg.connect(_libpq(migration_url)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
