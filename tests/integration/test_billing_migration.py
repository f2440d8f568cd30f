"""Migration 0015 goes down cleanly (the down-and-up schema equality of every reversible
migration is tests/integration/test_migrations_reversible.py): its tables and columns go,
and 0010's role functions come back as they were."""

from __future__ import annotations

from alembic import command
from tests.support.db import su_value
from tests.support.scratch_db import scratch_database


def test_0015_down_removes_its_objects_and_restores_0010s_role_functions(stack):
    with scratch_database(stack) as scratch:
        command.upgrade(scratch.config, "heads")
        command.downgrade(scratch.config, "0014")
        down = scratch.schema_dump()
        for gone in ("usage_counters", "before_state", "subscription_status", "audit_page"):
            assert gone not in down, gone
        body = su_value(
            scratch.superuser,
            "SELECT pg_get_functiondef('app.user_set_role(uuid, text, text)'::regprocedure)",
        )
        assert "role_changed" in body and "before_state" not in body  # 0010's, back
