"""/health (liveness: touches nothing) and /ready (Postgres and Redis, short timeouts)."""

from __future__ import annotations

import asyncio

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from rampart.config import get_settings
from rampart.kit.db.engine import get_engine

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


def _check_postgres() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_redis() -> None:
    client = redis.Redis.from_url(
        get_settings().require("redis_url"),
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


async def _run(check) -> str | None:
    try:
        await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT_SECONDS + 0.5)
    except Exception as exc:  # any failure means "not ready"; the name says which
        return type(exc).__name__
    return None


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready")
async def ready() -> JSONResponse:
    results = await asyncio.gather(_run(_check_postgres), _run(_check_redis))
    checks = {
        name: ("ok" if error is None else f"failed: {error}")
        for name, error in zip(("postgres", "redis"), results, strict=True)
    }
    failed = [name for name, error in zip(("postgres", "redis"), results, strict=True) if error]
    if failed:
        return JSONResponse(
            {
                "status": "unavailable",
                "checks": checks,
                "error": {"code": "not_ready", "message": "Not ready: " + ", ".join(failed)},
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "checks": checks})
