"""The test stack: LocalStack in fast mode plus what tests need to reach it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rampart.devstack.stack import LocalStack


def reset_caches() -> None:
    """Forget settings and everything built from them (after the env changed)."""
    from rampart.config import get_settings
    from rampart.kit.db.engine import get_engine, session_factory
    from rampart.kit.jobs.celery_app import get_celery
    from rampart.llm.service import provider_chain

    for cached in (get_settings, session_factory, get_celery, provider_chain):
        cached.cache_clear()
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()


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


def start_test_stack(home: Path) -> TestStack:
    local = LocalStack(home, fast=True)
    env = local.start()
    env = {**env, "ENV": "test", "RAMPART_HOME": str(home)}
    os.environ.update(env)
    reset_caches()
    return TestStack(local=local, env=env, home=home)
