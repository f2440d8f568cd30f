"""The test stack: LocalStack in fast mode plus what tests need to reach it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rampart.devstack.stack import LocalStack


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
    local: LocalStack
    env: dict[str, str]
    home: Path

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
    "FORWARDED_ALLOW_IPS": "",
}


# The incident webhook's bearer token (what Alertmanager sends): set, so the route is on.
ALERT_WEBHOOK_TOKEN = "test-alert-webhook-token-0123456789abcdef"  # pragma: allowlist secret


def start_test_stack(home: Path) -> TestStack:
    local = LocalStack(home, fast=True)
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
    return TestStack(local=local, env=env, home=home)
