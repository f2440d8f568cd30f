from __future__ import annotations

import pytest
from pydantic import ValidationError

from rampart.config import Settings
from rampart.config_docs import DOC_PATH, render

STRONG = "s" * 40


def test_dev_starts_with_defaults():
    assert Settings(env="dev").jwt_secret.get_secret_value()


@pytest.mark.parametrize("env", ["staging", "production"])
def test_outside_dev_missing_secrets_are_refused_and_each_is_named(env, monkeypatch):
    for name in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError) as info:
        Settings(env=env)
    message = str(info.value)
    for name in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL"):
        assert name in message


def test_outside_dev_a_short_jwt_secret_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match="JWT_SECRET: shorter than 32"):
        Settings(
            env="production",
            jwt_secret="short",
            database_url="postgresql://x",
            redis_url="redis://x",
        )


def test_outside_dev_strong_secrets_start():
    settings = Settings(
        env="production",
        jwt_secret=STRONG,
        session_secret="t" * 40,
        stripe_webhook_secret="whsec_" + "x" * 32,  # pragma: allowlist secret
        database_url="postgresql://x",
        redis_url="redis://x",
    )
    assert settings.env == "production"


def test_visibility_timeout_must_exceed_task_time_limit():
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings(task_time_limit_seconds=600, celery_visibility_timeout_seconds=300)


def test_secrets_are_not_shown_in_repr():
    settings = Settings(env="dev", jwt_secret=STRONG)
    assert STRONG not in repr(settings)


def test_configuration_doc_matches_the_settings_model():
    assert DOC_PATH.read_text() == render(), "run `rampart config-docs` and commit the result"
