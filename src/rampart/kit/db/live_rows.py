"""Soft-deleted rows, written once for every repository: what "live" means and how a row
stops being live.

A table that soft-deletes has a nullable `deleted_at timestamptz`; a row with it set is
gone for the API (404, not listed) and for the pipeline (its jobs find nothing to do).
Polar's `RepositorySoftDeletionMixin` plays this part for its ORM repositories; ours are
raw SQL, so the kit gives the predicate and the statement, and the repository keeps its
own queries. Table and alias names are constants of our own code, never input.
"""

from __future__ import annotations

import uuid

from rampart.kit.db.transaction import Tx

LIVE = "deleted_at IS NULL"


def live(alias: str | None = None) -> str:
    """The predicate selecting live rows; `alias` qualifies it for a joined table."""
    return f"{alias}.{LIVE}" if alias else LIVE


async def soft_delete(tx: Tx, table: str, row_id: uuid.UUID) -> None:
    """Mark the row deleted (and touched): from now on `live()` no longer selects it."""
    await tx.execute(
        f"UPDATE {table} SET deleted_at = now(), updated_at = now() WHERE id = $1",  # noqa: S608
        row_id,
    )
