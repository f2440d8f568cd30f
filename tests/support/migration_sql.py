"""Each migration's SQL as Alembic prints it offline (`alembic upgrade heads --sql`), one
script per revision, and squawk's findings on it (tests/integration/test_migrations_lint.py).

Each script starts with what migrations/env.py sets for the whole session (lock_timeout,
statement_timeout), then the revision's own BEGIN ... COMMIT, as it runs online.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config

from rampart.kit.db.migrate import ROOT

SQUAWK = Path(sys.executable).parent / "squawk"
EXCEPTIONS = ROOT / "migrations" / "squawk-exceptions.toml"
PG_VERSION = "18.0"
# "-- Running upgrade 0004, 0005 -> 0010": the revision is after the arrow.
_MARKER = re.compile(r"^-- Running upgrade .*-> (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Finding:
    revision: str
    rule: str
    line: int  # 0-based, as squawk reports it
    message: str
    statement: str


def offline_sql() -> str:
    buffer = io.StringIO()
    config = Config(str(ROOT / "alembic.ini"), output_buffer=buffer)
    config.set_main_option("script_location", str(ROOT / "migrations"))
    command.upgrade(config, "heads", sql=True)
    return buffer.getvalue()


def per_revision(sql: str) -> dict[str, str]:
    """{revision: script}: the session header, then the revision's transaction."""
    markers = list(_MARKER.finditer(sql))
    header = sql[: sql.index("BEGIN;")]
    scripts = {}
    for marker, following in zip(markers, [*markers[1:], None], strict=True):
        body = sql[marker.start() : following.start() if following else len(sql)].rstrip()
        # The next revision's BEGIN; closes this segment: it belongs to the next one.
        body = body.removesuffix("BEGIN;").rstrip()
        scripts[marker.group(1)] = f"{header}BEGIN;\n{body}\n"
    return scripts


def squawk(revision: str, script: str) -> list[Finding]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{revision}.sql"
        path.write_text(script)
        done = subprocess.run(
            [str(SQUAWK), "--pg-version", PG_VERSION, "--reporter", "json", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"squawk failed on {revision}: {done.stderr or done.stdout}")
    lines = script.splitlines()
    return [
        Finding(revision, item["rule_name"], item["line"], item["message"],
                lines[item["line"]].strip() if item["line"] < len(lines) else "")
        for item in json.loads(done.stdout)
    ]
