"""The runtime engine (role app_rw): bounded pool, connect and statement timeouts."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from rampart.config import get_settings
from rampart.kit import tracing
from rampart.kit.db.observe import observe_engine, observe_sessions


def sqlalchemy_url(setting: str = "database_url") -> str:
    """A settings URL in SQLAlchemy's psycopg 3 dialect form."""
    url = get_settings().require(setting)
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    engine = create_engine(
        sqlalchemy_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            "application_name": settings.service_name,
        },
    )
    # Query/pool/error metrics, slow-query logs and (when exporting) OTel database spans.
    observe_engine(engine, settings.db_pool_size + settings.db_max_overflow)
    tracing.instrument_engine(engine)
    return engine


@lru_cache
def session_factory() -> sessionmaker[Session]:
    factory = sessionmaker(get_engine(), expire_on_commit=False)
    observe_sessions(factory)  # rolled-back transactions
    return factory
