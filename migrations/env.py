"""Alembic runs as the migration role (MIGRATION_DATABASE_URL): it owns every object."""

from alembic import context
from sqlalchemy import create_engine, pool

from rampart.config import get_settings
from rampart.kit.db.migrate import sqlalchemy_url

url = context.config.attributes.get("url") or sqlalchemy_url(
    get_settings().require("migration_database_url")
)
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
