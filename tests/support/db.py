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
from typing import Any

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


def _args(params: tuple[Any, ...]) -> Any:
    """`params` as psycopg takes them: one dict for %(name)s placeholders, else the tuple;
    None when empty, so psycopg leaves a literal % (LIKE 'x%') alone."""
    args = params[0] if len(params) == 1 and isinstance(params[0], dict) else params
    return args or None


# One superuser connection per thread and server, kept open: a new connection per query
# (SCRAM authentication and a forked backend each time) was 5-7 % of the CPU of the unit
# and integration tests. Autocommit: each statement commits on its own, as before; no
# session state is set through it (tests that SET ROLE open their own connection).
class _SuConnections(threading.local):
    def __init__(self) -> None:
        self.by_conninfo: dict[str, psycopg.Connection] = {}


_su_connections = _SuConnections()


def _su_connection(superuser: str) -> psycopg.Connection:
    cached = _su_connections.by_conninfo
    conn = cached.get(superuser)
    if conn is None or conn.closed or conn.broken:
        conn = cached[superuser] = psycopg.connect(superuser, autocommit=True)
    return conn


def su_rows(superuser: str, sql: str, *params: Any) -> list[tuple]:
    """Run one statement as the superuser (ground truth and setup: bypasses RLS), committed;
    its rows, or [] for a statement that returns none. `superuser` is the fixture's conninfo;
    `params` fill the %s placeholders, in order (or pass one dict for %(name)s ones)."""
    conn = _su_connection(superuser)
    try:
        cursor = conn.execute(sql, _args(params))
    except psycopg.OperationalError:
        if not conn.broken:
            raise
        # The server closed the kept connection since its last statement (it restarted, or
        # a test ended its backends): once more, on a new one.
        cursor = _su_connection(superuser).execute(sql, _args(params))
    return cursor.fetchall() if cursor.description else []


def su_value(superuser: str, sql: str, *params: Any) -> Any:
    """The single value of a one-row, one-column query run as the superuser (`su_rows`)."""
    [(value,)] = su_rows(superuser, sql, *params)
    return value


@contextmanager
def su_lock(superuser: str, sql: str, *params: Any) -> Iterator[None]:
    """Hold the row locks `sql` (a SELECT ... FOR UPDATE) takes, as the superuser, while the
    block runs; let go when it ends (rolled back: the SELECT wrote nothing). For tests that
    make requests wait on a lock, then release them all at once."""
    with psycopg.connect(superuser) as conn:
        conn.execute(sql, _args(params))
        try:
            yield
        finally:
            conn.rollback()


def waiting_on_a_lock(superuser: str) -> int:
    """How many app_rw sessions wait on a lock right now (pg_stat_activity): the condition a
    test waits for instead of sleeping "until the request is blocked"."""
    return su_value(
        superuser,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE usename = 'app_rw' AND wait_event_type = 'Lock'",
    )


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


def clear_leftover_work(stack: TestStack) -> None:
    """Forget work a test module left behind, so the next module starts with an empty
    outbox, no unfinished job and an empty broker queue, whatever ran before it (integration
    tests run jobs in-process and often leave their outbox rows; a failed scenario leaves
    its queue). Jobs still pending or processing are deleted (their outbox rows with them);
    finished jobs, quarantine and the tenants' data stay. Only on the embedded stack (its
    superuser); run between modules, when no worker process of a test is alive."""
    if stack.postgres is None:
        return
    conninfo = superuser_conninfo(stack)
    su_rows(conninfo, "DELETE FROM jobs WHERE status IN ('pending', 'processing')")
    su_rows(conninfo, "UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL")
    if stack.redis is not None:
        import redis

        from rampart.kit.jobs.celery_app import QUEUE

        broker = redis.Redis.from_url(stack.env["REDIS_URL"], socket_timeout=5)
        try:
            # kombu's Redis transport: the queue, and the unacknowledged deliveries.
            broker.delete(QUEUE, "unacked", "unacked_index")
        except redis.RedisError:
            pass  # a test left Redis down: the next one that needs it says so
        finally:
            broker.close()
