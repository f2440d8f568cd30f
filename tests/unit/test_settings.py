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
    for name in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "MAIL_FROM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError) as info:
        Settings(env=env)
    message = str(info.value)
    for name in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "MAIL_FROM"):
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
        smtp_url="smtp+starttls://mailer:pw@mail.example.com:587",  # pragma: allowlist secret
        mail_from="Rampart <no-reply@example.com>",
    )
    assert settings.env == "production"


PRODUCTION = {
    "env": "production",
    "jwt_secret": STRONG,
    "session_secret": "t" * 40,
    "stripe_webhook_secret": "whsec_" + "x" * 32,  # pragma: allowlist secret
    "database_url": "postgresql://x",
    "redis_url": "redis://x",
    "mail_from": "Rampart <no-reply@example.com>",
}


def test_outside_dev_mail_settings_are_required(monkeypatch):
    monkeypatch.delenv("SMTP_URL", raising=False)
    with pytest.raises(ValidationError) as info:
        Settings(**{**PRODUCTION, "mail_from": Settings.model_fields["mail_from"].default})
    assert "SMTP_URL: not set" in str(info.value) and "MAIL_FROM: not set" in str(info.value)


@pytest.mark.parametrize(
    "url, refused",
    [
        ("smtp://mail.example.com:25", True),  # the links would cross the network in clear
        ("smtp://127.0.0.1:25", False),  # a local relay
        ("smtp+starttls://u:p@mail.example.com:587", False),  # pragma: allowlist secret
        ("smtps://u:p@mail.example.com:465", False),  # pragma: allowlist secret
    ],
)
def test_outside_dev_plain_smtp_is_refused_unless_local(url, refused):
    if refused:
        with pytest.raises(ValidationError, match="SMTP_URL: plain smtp://"):
            Settings(**PRODUCTION, smtp_url=url)
    else:
        assert Settings(**PRODUCTION, smtp_url=url).smtp_url is not None


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "mail.example.com:25"])
def test_a_malformed_smtp_url_is_refused_in_any_env(url):
    with pytest.raises(ValidationError, match="SMTP_URL: give"):
        Settings(env="dev", smtp_url=url)


def test_visibility_timeout_must_exceed_task_time_limit():
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings(task_time_limit_seconds=600, celery_visibility_timeout_seconds=300)


def test_secrets_are_not_shown_in_repr():
    settings = Settings(env="dev", jwt_secret=STRONG)
    assert STRONG not in repr(settings)


def test_configuration_doc_matches_the_settings_model():
    assert DOC_PATH.read_text() == render(), "run `rampart config-docs` and commit the result"
