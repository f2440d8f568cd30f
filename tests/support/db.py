"""Database access for tests: the embedded superuser for ground truth (bypasses RLS), the
runtime role app_rw with claims set the app's way, and rows written as the app writes them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy import text
from sqlalchemy.engine import make_url

from rampart.kit.db.transaction import Claims, transaction
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


def add_user(tenant_id: str, role: str) -> Account:
    """A user of the tenant with `role`, written under RLS (no signup, no password to log in
    with); its token issued as login issues it."""
    user_id, email = str(uuid.uuid4()), f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    with transaction(Claims(tenant_id=tenant_id, sub=user_id)) as session:
        session.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, password_hash, role)"
                " VALUES (:id, :tenant, :email, 'no-login', :role)"
            ),
            {"id": user_id, "tenant": tenant_id, "email": email, "role": role},
        )
    token, _ = issue_access_token(user_id=user_id, tenant_id=tenant_id, role=role)
    return Account(email=email, user_id=user_id, tenant_id=tenant_id, token=token)
