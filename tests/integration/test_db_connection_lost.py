"""A connection the server ends in the middle of a transaction (a restart, an operator's
pg_terminate_backend, a failover) is a 503 `db_unavailable`, the connection is never used
again, and its admission slot comes back.

Two ways this once broke under a Postgres restart (tests/chaos test 7): asyncpg's pool takes
back a connection the server closed on its own, and `terminate()` on the released proxy
raised InterfaceError (a 500 that also leaked the slot); and a connection that had received
the server's FATAL "terminating connection" but not yet its EOF went back to the pool and
failed the next request's BEGIN with asyncpg's InternalClientError (a 500)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from tests.support.db import superuser_conninfo

from rampart.kit.db.pool import pool_capacity
from rampart.kit.db.transaction import DatabaseUnavailable, transaction
from rampart.kit.jobs import loop


@pytest.mark.parametrize("when", ["between statements", "during a statement"])
def test_a_transaction_whose_connection_the_server_ends_is_unavailable_and_frees_its_slot(
    stack, api, when
):
    with psycopg.connect(superuser_conninfo(stack), autocommit=True) as superuser:
        lock = threading.Lock()

        def terminate(pid: int) -> None:
            with lock:  # waits (up to 5 s) until that backend has exited
                superuser.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

        async def ended_by_the_server() -> None:
            async with transaction(None) as tx:
                pid = await tx.fetchval("SELECT pg_backend_pid()")
                if when == "between statements":
                    terminate(pid)
                    await tx.fetchval("SELECT 1")
                else:
                    threading.Timer(0.1, terminate, (pid,)).start()
                    await tx.fetchval("SELECT pg_sleep(5)")

        # More times than there are slots: a leaked slot would make the last ones wait and
        # fail `overloaded`; a reused half-dead connection would fail with another error.
        for _ in range(pool_capacity() + 2):
            with pytest.raises(DatabaseUnavailable):
                loop.run(ended_by_the_server())

    async def still_works() -> list[int]:
        async with transaction(None) as tx:
            return [await tx.fetchval("SELECT 1") for _ in range(3)]

    assert [loop.run(still_works()) for _ in range(pool_capacity() + 2)] == [[1, 1, 1]] * (
        pool_capacity() + 2
    )
