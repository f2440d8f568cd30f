"""The test stack: LocalStack in fast mode plus what tests need to reach it.

RAMPART_TEST_DB_SHAPE picks the database: `plain` (default: the embedded Postgres,
bootstrapped for migration_admin) or `supabase` (the same server shaped like a Supabase
project, tests/support/supabase.py, migrated as Supabase's demoted `postgres` role in
its `postgres` database). `make test` runs the migrations, core flow, isolation and RLS
tests under both.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from rampart.devstack.ports import free_port
from rampart.devstack.postgres import EmbeddedPostgres
from rampart.devstack.stack import LocalStack, make_private
from tests.support import supabase

SHAPES = ("plain", "supabase")


def db_shape() -> str:
    shape = os.environ.get("RAMPART_TEST_DB_SHAPE", "plain")
    if shape not in SHAPES:
        raise ValueError(f"RAMPART_TEST_DB_SHAPE must be one of {', '.join(SHAPES)}, not {shape!r}")
    return shape


def reset_caches() -> None:
    """Forget settings and everything built from them (after the env changed)."""
    from rampart.config import get_settings
    from rampart.kit.jobs import loop
    from rampart.kit.jobs.celery_app import get_celery
    from rampart.llm.service import provider_chain

    for cached in (get_settings, get_celery, provider_chain):
        cached.cache_clear()
    # The job loop's pool was made with the old settings: stop it (it restarts on use).
    # The API's pools belong to their servers' loops and close with them.
    loop.stop()


@dataclass
class TestStack:
    __test__ = False  # not a test class, though its name starts with Test

    local: LocalStack
    env: dict[str, str]
    home: Path
    shape: str = "plain"

    @property
    def postgres(self):
        return self.local.postgres

    @property
    def redis(self):
        return self.local.redis

    def process_env(self, **extra: str) -> dict[str, str]:
        """Environment for a Rampart subprocess (API, worker, relay) on this stack."""
        return {**os.environ, **self.env, **extra}

    def stop(self) -> None:
        self.local.stop()


# The suite signs up many users and posts many assessments from 127.0.0.1: limits stay on
# (every test goes through the limiter) but far above what any test does. Rate-limit tests
# set real ones. FORWARDED_ALLOW_IPS="" keeps the in-thread uvicorn from rewriting the
# client from X-Forwarded-For itself, as `rampart api` does (proxy_headers=False): the app
# alone decides, from TRUSTED_PROXIES.
GENEROUS_RATE_LIMITS = {
    "RATE_LIMIT_DEFAULT_PER_IP": "100000/minute",
    "RATE_LIMIT_LOGIN_PER_IP_EMAIL": "10000/minute",
    "RATE_LIMIT_LOGIN_PER_IP": "10000/minute",
    "RATE_LIMIT_SIGNUP_PER_IP": "10000/minute",
    "RATE_LIMIT_ASSESSMENTS_FREE": "10000/minute",
    "RATE_LIMIT_ASSESSMENTS_PRO": "10000/minute",
    "RATE_LIMIT_UPLOADS_PER_USER": "10000/minute",
    "RATE_LIMIT_INVITATIONS_PER_TENANT": "10000/minute",
    "FORWARDED_ALLOW_IPS": "",
    # Monthly plan quotas, likewise: the quota tests (test_billing_quota.py) set real ones.
    "PLAN_FREE_ASSESSMENTS_PER_MONTH": "100000",
    "PLAN_PRO_ASSESSMENTS_PER_MONTH": "100000",
}


# The incident webhook's bearer token (what Alertmanager sends): set, so the route is on.
ALERT_WEBHOOK_TOKEN = "test-alert-webhook-token-0123456789abcdef"  # pragma: allowlist secret


def _supabase_postgres(home: Path) -> EmbeddedPostgres:
    """A Supabase-shaped server; its URLs go into os.environ, where LocalStack finds them."""
    if os.environ.get("DATABASE_URL"):
        raise ValueError("RAMPART_TEST_DB_SHAPE=supabase starts its own server: unset DATABASE_URL")
    make_private(home)  # as LocalStack.start does: the server user may pass through
    server = EmbeddedPostgres(
        home / "postgres", free_port(), fast=True, superuser=supabase.SUPERUSER
    )
    server.start()
    passwords = {role: secrets.token_urlsafe(24) for role in ("postgres", "app_rw", "operator")}
    supabase.shape_cluster(server.superuser_url, passwords["postgres"])
    supabase.shape_database(server.superuser_url, "postgres")
    def url(role: str, password: str) -> str:
        return supabase.role_url(server.superuser_url, role, password, "postgres")

    os.environ.update(
        MIGRATION_DATABASE_URL=url("postgres", passwords["postgres"]),
        DATABASE_URL=url("app_rw", passwords["app_rw"]),
        OPERATOR_DATABASE_URL=url("rampart_operator", passwords["operator"]),
    )
    return server


def start_test_stack(home: Path) -> TestStack:
    shape = db_shape()
    server = _supabase_postgres(home) if shape == "supabase" else None
    # The fake Stripe too (a real HTTP server): checkout and portal work in every test.
    local = LocalStack(home, fast=True, postgres=server, fake_stripe=True)
    env = local.start()
    env = {
        **env,
        "ENV": "test",
        "RAMPART_HOME": str(home),
        "ALERT_WEBHOOK_TOKEN": ALERT_WEBHOOK_TOKEN,
        # Tests play a trusted gateway, so they can pin a request's trace id with
        # traceparent / X-Request-ID; the default (off) is proven in test_trace_trust.py.
        "TRUST_CLIENT_TRACE_IDS": "true",
        **GENEROUS_RATE_LIMITS,
    }
    os.environ.update(env)
    reset_caches()
    return TestStack(local=local, env=env, home=home, shape=shape)
