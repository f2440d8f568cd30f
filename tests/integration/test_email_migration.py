"""Migration 0012 on a database holding accounts from before it: every address is rewritten
to its canonical form, two live accounts that turn out to share an address keep it for the
oldest only (the younger is removed, audited, its tokens revoked), older accounts count as
confirmed, and invitations whose token went to the inviter can no longer be accepted.

A fresh database in the embedded server, migrated to 0011 by the migration role, filled
as the superuser, then migrated to the head.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic import command
from tests.support.db import su_rows
from tests.support.scratch_db import scratch_database


@pytest.fixture
def database_at_0011(stack):
    with scratch_database(stack) as scratch:
        command.upgrade(scratch.config, "0011")
        yield scratch.config, scratch.superuser


def test_0012_canonicalizes_addresses_and_the_oldest_account_keeps_a_shared_one(
    database_at_0011,
):
    config, superuser = database_at_0011
    tenant, other = uuid.uuid4(), uuid.uuid4()
    older, younger, plain, unicode_domain = (uuid.uuid4() for _ in range(4))
    tenants = "INSERT INTO tenants (id, name) VALUES (%s, 'Old'), (%s, 'Young')"
    su_rows(superuser, tenants, tenant, other)
    insert = (
        "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at)"
        " VALUES (%s, %s, %s, 'h', 'owner', now() - %s::interval)"
    )
    # Unequal under lower(), so the old unique index let both in; one mailbox.
    su_rows(superuser, insert, older, tenant, "Alice@Example.com", "2 days")
    su_rows(superuser, insert, younger, other, "ＡＬＩＣＥ@example.com", "1 day")
    su_rows(superuser, insert, plain, tenant, "bob@example.com", "3 days")
    su_rows(superuser, insert, unicode_domain, tenant, "Carol@BÜCHER.example", "3 days")
    su_rows(
        superuser,
        "INSERT INTO invitations (tenant_id, email, role, token_hash, invited_by, expires_at)"
        " VALUES (%s, 'Dave@Example.COM', 'member', %s, %s, now() + interval '7 days')",
        tenant,
        "a" * 64,
        older,
    )

    command.upgrade(config, "heads")

    users = {
        row[0]: row[1:]
        for row in su_rows(
            superuser,
            "SELECT id, email, removed_at IS NOT NULL, token_version,"
            " email_verified_at IS NOT NULL FROM users",
        )
    }
    assert users[older] == ("alice@example.com", False, 0, True)
    assert users[younger] == ("alice@example.com", True, 1, True)  # removed, revoked
    assert users[plain] == ("bob@example.com", False, 0, True)
    assert users[unicode_domain] == ("carol@xn--bcher-kva.example", False, 0, True)
    audit = su_rows(
        superuser,
        "SELECT tenant_id, subject FROM audit_events WHERE action = 'email_collision_removed'",
    )
    assert audit == [(other, f"user:{younger} kept by user:{older}")]
    invitations = su_rows(superuser, "SELECT email, expires_at <= now() FROM invitations")
    assert invitations[0] == ("dave@example.com", True)  # its token was shown to the inviter
    # The address is one account's now: the unique index refuses a second live one.
    with pytest.raises(psycopg.errors.UniqueViolation):
        su_rows(superuser, "UPDATE users SET removed_at = NULL WHERE id = %s", younger)
