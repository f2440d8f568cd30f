"""Migration 0012 on a database holding accounts from before it: every address is rewritten
to its canonical form, two live accounts that turn out to share an address keep it for the
oldest only (the younger is removed, audited, its tokens revoked), older accounts count as
confirmed, and invitations whose token went to the inviter can no longer be accepted.

A fresh database in the embedded server, migrated to 0011 by the migration role, filled
as the superuser, then migrated to the head.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from alembic import command
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from rampart.devstack.postgres import bootstrap_database
from rampart.kit.db.migrate import _alembic_config, sqlalchemy_url


@pytest.fixture
def database_at_0011(stack):
    if stack.postgres is None:
        pytest.skip("needs the embedded Postgres' superuser; DATABASE_URL points elsewhere")
    name = f"rampart_0012_{uuid.uuid4().hex[:8]}"
    migration = make_url(os.environ["MIGRATION_DATABASE_URL"])
    bootstrap_database(
        stack.postgres.superuser_url,
        database=name,
        migration_user=migration.username,
        migration_password=migration.password,
    )
    url = migration.set(database=name).render_as_string(hide_password=False)
    config = _alembic_config(sqlalchemy_url(url))
    command.upgrade(config, "0011")
    superuser = make_conninfo(stack.postgres.superuser_url, dbname=name)
    try:
        yield config, superuser
    finally:
        with psycopg.connect(stack.postgres.superuser_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_0012_canonicalizes_addresses_and_the_oldest_account_keeps_a_shared_one(
    database_at_0011,
):
    config, superuser = database_at_0011
    tenant, other = uuid.uuid4(), uuid.uuid4()
    older, younger, plain, unicode_domain = (uuid.uuid4() for _ in range(4))
    with psycopg.connect(superuser) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, 'Old'), (%s, 'Young')", (tenant, other)
        )
        insert = (
            "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at)"
            " VALUES (%s, %s, %s, 'h', 'owner', now() - %s::interval)"
        )
        # Unequal under lower(), so the old unique index let both in; one mailbox.
        conn.execute(insert, (older, tenant, "Alice@Example.com", "2 days"))
        conn.execute(insert, (younger, other, "ＡＬＩＣＥ@example.com", "1 day"))
        conn.execute(insert, (plain, tenant, "bob@example.com", "3 days"))
        conn.execute(insert, (unicode_domain, tenant, "Carol@BÜCHER.example", "3 days"))
        conn.execute(
            "INSERT INTO invitations (tenant_id, email, role, token_hash, invited_by, expires_at)"
            " VALUES (%s, 'Dave@Example.COM', 'member', %s, %s, now() + interval '7 days')",
            (tenant, "a" * 64, older),
        )

    command.upgrade(config, "heads")

    with psycopg.connect(superuser) as conn:
        users = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT id, email, removed_at IS NOT NULL, token_version,"
                " email_verified_at IS NOT NULL FROM users"
            )
        }
        assert users[older] == ("alice@example.com", False, 0, True)
        assert users[younger] == ("alice@example.com", True, 1, True)  # removed, revoked
        assert users[plain] == ("bob@example.com", False, 0, True)
        assert users[unicode_domain] == ("carol@xn--bcher-kva.example", False, 0, True)
        audit = conn.execute(
            "SELECT tenant_id, subject FROM audit_events WHERE action = 'email_collision_removed'"
        ).fetchall()
        assert audit == [(other, f"user:{younger} kept by user:{older}")]
        invitation = conn.execute("SELECT email, expires_at <= now() FROM invitations").fetchone()
        assert invitation == ("dave@example.com", True)  # its token was shown to the inviter
        # The address is one account's now: the unique index refuses a second live one.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("UPDATE users SET removed_at = NULL WHERE id = %s", (younger,))
