"""What the kit reads of the settings: one small protocol per concern, and the one hook
through which the kit gets them.

The kit never imports `rampart.config` (an import-linter contract, pyproject.toml): each
kit module asks for its section (`db_settings()`, `job_settings()`, ...) and reads only
what the section names. The project hands its settings object to the kit once, in the
package root (`rampart/__init__.py` calls `provide`); any object with these attributes
will do, so the kit can be lifted into another project with its own settings class.
`config.Settings` has every section (tests/unit/test_kit_settings.py checks it).

A small module of our own: the sections are typing.Protocol classes, checked by shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: importing the package root stays cheap
    from pydantic import SecretStr


class _Requires(Protocol):
    def require(self, name: str) -> str:
        """The setting's value (a secret's clear value), or a clear error if it is unset."""
        ...


class DbSettings(_Requires, Protocol):
    service_name: str
    db_pool_size: int
    db_max_overflow: int
    db_connect_timeout_seconds: float
    db_command_timeout_seconds: float
    db_statement_timeout_ms: int
    db_statement_cache_size: int
    db_pool_timeout_seconds: float
    db_slow_query_ms: int


class JobSettings(_Requires, Protocol):
    celery_visibility_timeout_seconds: int
    task_time_limit_seconds: int
    job_retry_base_seconds: float
    job_retry_max_seconds: float
    job_max_attempts: int
    relay_batch_size: int
    relay_poll_interval_seconds: float
    job_stale_after_seconds: int
    job_sweep_interval_seconds: float


class RedisSettings(_Requires, Protocol):
    read_only: bool  # the read-only switch's default when Redis holds none (kit/read_only.py)


class SecuritySettings(Protocol):
    env: str
    password_min_length: int
    session_secret: SecretStr
    jwt_secret: SecretStr
    jwt_ttl_seconds: int
    session_ttl_seconds: int
    session_cookie_samesite: str
    redis_url: SecretStr | None
    rate_limit_enabled: bool
    rate_limit_default_per_ip: str
    rate_limit_login_per_ip: str
    rate_limit_login_per_ip_email: str
    rate_limit_signup_per_ip: str
    rate_limit_uploads_per_user: str


class TelemetrySettings(Protocol):
    env: str
    version: str
    otel_exporter_otlp_endpoint: str | None
    otel_traces_sample_ratio: float
    sentry_dsn: SecretStr | None
    sentry_environment: str | None
    sentry_release: str | None
    prometheus_multiproc_dir: str | None
    git_commit: str | None


class MailSettings(_Requires, Protocol):
    mail_from: str
    smtp_timeout_seconds: float


class AlertSettings(Protocol):
    alert_webhook_url: str
    alert_webhook_token: SecretStr | None
    alert_webhook_token_file: str
    alert_slack_webhook_url: SecretStr | None
    alert_slack_channel: str
    alert_pagerduty_routing_key: SecretStr | None


SECTIONS = (
    DbSettings,
    JobSettings,
    RedisSettings,
    SecuritySettings,
    TelemetrySettings,
    MailSettings,
    AlertSettings,
)

_provider: Callable[[], Any] | None = None


def provide(provider: Callable[[], Any]) -> None:
    """Where the kit gets the current settings from (called once, by the project)."""
    global _provider
    _provider = provider


def _current() -> Any:
    if _provider is None:
        raise RuntimeError("No settings provided to the kit: call rampart.kit.settings.provide")
    return _provider()


# One accessor per section: the provided settings, typed as that section (each section is
# checked against config.Settings by shape: tests/unit/test_kit_settings.py).
def db_settings() -> DbSettings:
    return _current()


def job_settings() -> JobSettings:
    return _current()


def redis_settings() -> RedisSettings:
    return _current()


def security_settings() -> SecuritySettings:
    return _current()


def telemetry_settings() -> TelemetrySettings:
    return _current()


def mail_settings() -> MailSettings:
    return _current()
