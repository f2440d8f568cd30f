"""The canary: one row a minute in `ops.canary`, written by the backup schedule of the
running stack, so a restored copy tells how recent its newest data is (RPO).

A table, not pg_last_xact_replay_timestamp(): that tells when the last replayed commit
happened, but on a quiet database it may be an hour old while nothing was lost. A row
written every minute makes "newest data restored" a fact we can read back. It lives in a
schema of its own (no migration: the schema is ours, not the product's), created on first
use by the backup role and readable by nobody else.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

SETUP = """
CREATE SCHEMA IF NOT EXISTS ops;
REVOKE ALL ON SCHEMA ops FROM PUBLIC;
CREATE TABLE IF NOT EXISTS ops.canary (
  written_at timestamptz PRIMARY KEY DEFAULT clock_timestamp()
);
REVOKE ALL ON ops.canary FROM PUBLIC;
"""


def write(url: str, keep_days: int = 35) -> datetime:
    """Insert one canary row (and forget those older than `keep_days`); returns its time."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.execute("SET LOCAL statement_timeout = '5s'")
        if conn.execute("SELECT to_regclass('ops.canary')").fetchone()[0] is None:
            conn.execute(SETUP)
        written = conn.execute("INSERT INTO ops.canary DEFAULT VALUES RETURNING written_at")
        at = written.fetchone()[0]
        conn.execute(
            "DELETE FROM ops.canary WHERE written_at < now() - make_interval(days => %s)",
            (keep_days,),
        )
    return at


def newest(conn: psycopg.Connection) -> datetime | None:
    if conn.execute("SELECT to_regclass('ops.canary')").fetchone()[0] is None:
        return None
    return conn.execute("SELECT max(written_at) FROM ops.canary").fetchone()[0]
