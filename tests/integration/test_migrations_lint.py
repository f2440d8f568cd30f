"""Every migration's SQL, as Alembic prints it offline, passes squawk (docs/migrations.md):
a finding fails the test unless migrations/squawk-exceptions.toml accepts it with a reason,
and an acceptance that no longer matches a finding fails too, so the list only shrinks.
No database and no network: squawk reads the SQL text.
"""

from __future__ import annotations

import tomllib

import pytest
from tests.support.migration_sql import EXCEPTIONS, offline_sql, per_revision, squawk


@pytest.fixture(scope="module")
def scripts() -> dict[str, str]:
    return per_revision(offline_sql())


def _accepted() -> set[tuple[str, str]]:
    entries = tomllib.loads(EXCEPTIONS.read_text())["exception"]
    assert all(entry.get("reason", "").strip() for entry in entries), "every entry needs a reason"
    return {(entry["rule"], revision) for entry in entries for revision in entry["revisions"]}


def test_every_revision_is_printed_once_with_the_session_timeouts(scripts):
    from alembic.script import ScriptDirectory

    from rampart.kit.db.migrate import _alembic_config

    script_directory = ScriptDirectory.from_config(_alembic_config(""))
    revisions = {r.revision for r in script_directory.walk_revisions()}
    assert set(scripts) == revisions
    for script in scripts.values():
        assert "SET lock_timeout" in script and "SET statement_timeout" in script


def test_squawk_finds_nothing_the_exceptions_do_not_accept(scripts):
    findings = [f for revision, script in scripts.items() for f in squawk(revision, script)]
    accepted = _accepted()
    new = [f for f in findings if (f.rule, f.revision) not in accepted]
    assert not new, "squawk findings (fix them; docs/migrations.md):\n" + "\n".join(
        f"  {f.revision} {f.rule}: {f.statement}  -- {f.message}" for f in new
    )
    stale = accepted - {(f.rule, f.revision) for f in findings}
    assert not stale, f"exceptions that match no finding any more (remove them): {sorted(stale)}"


def test_squawk_catches_a_blocking_index_build():
    # The lint is only worth something if it fails: a plain CREATE INDEX on an existing
    # table, in a script shaped like ours, is a finding.
    script = (
        "SET lock_timeout = '5000ms';\nSET statement_timeout = '60000ms';\nBEGIN;\n"
        "CREATE INDEX users_x_idx ON users (email);\nCOMMIT;\n"
    )
    assert {f.rule for f in squawk("probe", script)} == {"require-concurrent-index-creation"}
