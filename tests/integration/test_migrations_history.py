"""No drift between the migrations and the databases already deployed: a database the
previous release migrated (its own `rampart migrate`, from git history), then upgraded
with today's migrations, has exactly the schema of one migrated from scratch today. An
already-released migration edited afterwards (deployed databases never run it again)
breaks this. Compared with pg_dump --schema-only: tables, columns, indexes, constraints,
functions, triggers, policies and grants.
"""

from __future__ import annotations

import difflib
import subprocess
import sys

from alembic import command
from tests.support.releases import previous_release, unpack
from tests.support.scratch_db import scratch_database


def test_upgrading_the_previous_release_schema_matches_a_fresh_migration(stack, tmp_path):
    commit = previous_release()
    old = unpack(commit, tmp_path / "previous-release")
    with scratch_database(stack) as upgraded, scratch_database(stack) as fresh:
        # The previous release migrates as it did in production: its code, its migrations.
        env = {
            key: value
            for key, value in stack.process_env().items()
            if key not in ("DATABASE_URL", "OPERATOR_DATABASE_URL")  # no password changes
        }
        env.update(PYTHONPATH=str(old / "src"), MIGRATION_DATABASE_URL=upgraded.url)
        done = subprocess.run(  # noqa: S603 - our interpreter, fixed argv
            [sys.executable, "-m", "rampart.cli", "migrate"],
            env=env, cwd=old, capture_output=True, text=True, timeout=240, check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

        command.upgrade(upgraded.config, "heads")
        command.upgrade(fresh.config, "heads")

        drift = list(
            difflib.unified_diff(
                fresh.schema_dump().splitlines(), upgraded.schema_dump().splitlines(),
                "migrated from scratch", f"migrated by {commit[:12]}, then upgraded", lineterm="",
            )
        )
        assert not drift, "\n".join(drift[:200])
