"""LLM settings: outside dev/test a chain naming a real provider needs its API key, and
LLM_PROVIDERS only names known providers, each once, offline last."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rampart.config import Settings

STRONG = "s" * 40
PROD = {
    "env": "production",
    "jwt_secret": STRONG,
    "session_secret": "t" * 40,
    "stripe_webhook_secret": "whsec_" + "x" * 32,  # pragma: allowlist secret
    "database_url": "postgresql://x",
    "redis_url": "redis://x",
    "smtp_url": "smtp+starttls://mail.example.com:587",
    "mail_from": "Rampart <no-reply@example.com>",
}


@pytest.fixture(autouse=True)
def _no_keys_from_the_environment(monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LLM_PROVIDERS"):
        monkeypatch.delenv(name, raising=False)


def test_outside_dev_each_missing_provider_key_is_named():
    with pytest.raises(ValidationError) as info:
        Settings(**PROD, llm_providers="openai,anthropic,offline")
    message = str(info.value)
    assert "OPENAI_API_KEY: not set" in message
    assert "ANTHROPIC_API_KEY: not set" in message


def test_outside_dev_an_empty_key_is_missing_too():
    with pytest.raises(ValidationError, match="OPENAI_API_KEY"):
        Settings(**PROD, llm_providers="openai", openai_api_key="")


def test_outside_dev_keys_are_only_required_for_providers_in_the_chain():
    assert Settings(**PROD, llm_providers="offline").provider_chain == ["offline"]
    settings = Settings(**PROD, llm_providers="anthropic,offline", anthropic_api_key="sk-ant-x")
    assert settings.provider_chain == ["anthropic", "offline"]


def test_in_dev_a_chain_without_keys_starts():
    assert Settings(env="dev", llm_providers="openai,anthropic").provider_chain == [
        "openai",
        "anthropic",
    ]


@pytest.mark.parametrize(
    ("chain", "reason"),
    [
        ("openai,gemini", "unknown provider"),
        ("openai,openai", "named twice"),
        ("offline,openai", "only come last"),
    ],
)
def test_bad_chains_are_refused(chain, reason):
    with pytest.raises(ValidationError, match=reason):
        Settings(env="dev", llm_providers=chain)


def test_keys_are_not_shown_in_repr():
    settings = Settings(env="dev", openai_api_key="sk-very-secret", anthropic_api_key="sk-ant-2")
    assert "sk-very-secret" not in repr(settings)
    assert "sk-ant-2" not in repr(settings)
