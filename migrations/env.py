"""Alembic runs as the migration role (MIGRATION_DATABASE_URL): it owns every object.

Every migration runs under lock_timeout and statement_timeout (docs/migrations.md): a DDL
statement stuck behind a long transaction fails after MIGRATION_LOCK_TIMEOUT_MS instead of
making every query of the running app queue behind its lock. Offline (`alembic upgrade
--sql`, what the squawk lint reads) prints the same SET statements before the first
migration.
"""

from alembic import context
from sqlalchemy import create_engine, pool

from rampart.config import get_settings
from rampart.kit.db.migrate import sqlalchemy_url

settings = get_settings()
TIMEOUTS = (
    f"SET lock_timeout = '{settings.migration_lock_timeout_ms}ms'",
    f"SET statement_timeout = '{settings.migration_statement_timeout_ms}ms'",
)

if context.is_offline_mode():
    context.configure(
        dialect_name="postgresql", literal_binds=True, transaction_per_migration=True
    )
    for statement in TIMEOUTS:
        context.execute(statement)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = context.config.attributes.get("url") or sqlalchemy_url(
        settings.require("migration_database_url")
    )
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Session-level SET: it holds for every migration's transaction and for the
        # statements a migration runs outside one (autocommit_block).
        for statement in TIMEOUTS:
            connection.exec_driver_sql(statement)
        connection.commit()
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
