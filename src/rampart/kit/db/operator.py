"""The operator's connection: role rampart_operator (OPERATOR_DATABASE_URL), the only role
that may run the operator functions (dead letters, incident list, trace lookup; migration
0010). The API never holds these credentials; `rampart dlq|incidents|trace` use them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from rampart.kit.db.pool import connect


@asynccontextmanager
async def operator_connection() -> AsyncIterator[asyncpg.Connection]:
    """One connection as the operator, in one transaction (committed on success)."""
    conn = await connect("operator_database_url")
    try:
        async with conn.transaction():
            yield conn
    finally:
        await conn.close()
