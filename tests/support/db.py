"""Database access for tests: the embedded superuser for ground truth (bypasses RLS), the
runtime role app_rw with claims set the app's way, and rows written as the app writes them.

Tests read and write synchronously through SQLAlchemy's psycopg engine (`app_session`): the
app itself uses asyncpg (kit/db), but a test wants plain blocking calls, and the claims are
set exactly as the app sets them (`set_config('request.jwt.claims', ..., true)` inside the
transaction).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from rampart.kit.db.migrate import sqlalchemy_url
from rampart.kit.db.transaction import Claims
from rampart.kit.security.tokens import issue_access_token
from tests.support.stack import TestStack
from tests.support.users import Account


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as a conninfo plain psycopg accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def superuser_conninfo(stack: TestStack) -> str:
    """The embedded Postgres' superuser, in the app's own database (bypasses RLS); skips the
    test when DATABASE_URL points at another server, whose superuser we do not have."""
    if stack.postgres is None:
        pytest.skip("needs the embedded Postgres' superuser; DATABASE_URL points elsewhere")
    database = make_url(os.environ["DATABASE_URL"]).database
    return make_conninfo(stack.postgres.superuser_url, dbname=database)


@contextmanager
def app_rw(claims: dict | None = None) -> Iterator[psycopg.Connection]:
    """One transaction as app_rw with `claims` set the app's way; always rolled back."""
    with psycopg.connect(libpq_conninfo(os.environ["DATABASE_URL"])) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "app_rw"
        if claims is not None:
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        try:
            yield conn
        finally:
            conn.rollback()


@lru_cache
def _engine(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_size=2, max_overflow=8, pool_pre_ping=True)


@contextmanager
def app_session(claims: Claims | None = None) -> Iterator[Session]:
    """One transaction as app_rw with `claims` set the app's way; committed on success."""
    with Session(_engine(os.environ["DATABASE_URL"])) as session, session.begin():
        if claims is not None:
            session.execute(
                text("SELECT set_config('request.jwt.claims', :claims, true)"),
                {"claims": claims.as_json()},
            )
        yield session


@contextmanager
def idle_in_transaction(tenant_id: str) -> Iterator[None]:
    """An app_rw session idle inside an open transaction, in another thread, while the
    block runs (what the connection gauges must count)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with app_session(Claims(tenant_id=tenant_id)) as session:
            session.execute(text("SELECT 1"))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        yield
    finally:
        release.set()
        holder.join(10)


def add_user(tenant_id: str, role: str) -> Account:
    """A user of the tenant with `role`, address confirmed, written under RLS (no signup, no
    password to log in with); its token issued as login issues it."""
    user_id, email = str(uuid.uuid4()), f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    with app_session(Claims(tenant_id=tenant_id, sub=user_id)) as session:
        session.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, password_hash, role, email_verified_at)"
                " VALUES (:id, :tenant, :email, 'no-login', :role, now())"
            ),
            {"id": user_id, "tenant": tenant_id, "email": email, "role": role},
        )
    token, _ = issue_access_token(user_id=user_id, tenant_id=tenant_id, role=role)
    return Account(email=email, user_id=user_id, tenant_id=tenant_id, token=token)
