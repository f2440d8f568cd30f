"""One typed Settings object, read from the environment (and secret files), fail-closed.

Outside ENV=dev|test, startup refuses missing, weak or default secrets and names each
variable and why. docs/configuration.md is generated from this model
(`rampart config-docs`); a test keeps it in sync.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that only ever make sense on a developer's machine.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"  # noqa: S105
MIN_SECRET_LENGTH = 32


class InsecureSettingsError(ValueError):
    """Raised at startup when a secret is missing, weak or a known default outside dev."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None,
        secrets_dir=None,
        extra="ignore",
        case_sensitive=False,
    )

    # --- runtime -------------------------------------------------------------------------
    env: Literal["dev", "test", "staging", "production"] = Field(
        "dev", description="Deployment environment. Secrets are enforced outside dev and test."
    )
    service_name: str = Field("rampart-api", description="Service name written on log lines.")
    version: str = Field("0.1.0", description="Release version written on log lines.")
    host: str = Field("127.0.0.1", description="Address the API binds to.")
    port: int = Field(8000, description="Port the API listens on.")
    rampart_home: str = Field(
        ".rampart", description="Directory for the dev stack's data (Postgres, Redis, logs)."
    )

    # --- data stores ---------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        None,
        description="Postgres URL of the runtime role (app_rw). Unset in dev: the embedded "
        "Postgres is used.",
    )
    migration_database_url: SecretStr | None = Field(
        None,
        description="Postgres URL of the migration role (migration_admin); used only by "
        "`rampart migrate`.",
    )
    redis_url: SecretStr | None = Field(
        None, description="Redis URL (Celery broker). Unset in dev: the embedded Redis is used."
    )
    db_pool_size: int = Field(10, ge=1, description="SQLAlchemy pool size per process.")
    db_max_overflow: int = Field(5, ge=0, description="Extra connections beyond the pool.")
    db_pool_timeout_seconds: float = Field(
        2.0, gt=0, description="Wait at most this long for a pooled connection."
    )
    db_statement_timeout_ms: int = Field(
        10_000, ge=0, description="Postgres statement_timeout for the runtime role's sessions."
    )
    db_connect_timeout_seconds: int = Field(3, ge=1, description="Postgres connect timeout.")

    # --- auth ----------------------------------------------------------------------------
    jwt_secret: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET),
        description="HMAC key for access tokens. Required outside dev/test, >= 32 characters.",
    )
    jwt_ttl_seconds: int = Field(3600, ge=60, description="Access token lifetime.")
    password_min_length: int = Field(12, ge=8, description="Minimum password length.")

    # --- HTTP ----------------------------------------------------------------------------
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body (413 beyond)."
    )

    # --- jobs ----------------------------------------------------------------------------
    task_time_limit_seconds: int = Field(
        300, ge=1, description="Hard limit for one Celery task run."
    )
    celery_visibility_timeout_seconds: int = Field(
        3600,
        ge=1,
        description="Redis visibility timeout: an unacked task is redelivered after this. "
        "Must exceed the task time limit.",
    )
    worker_concurrency: int = Field(2, ge=1, description="Celery worker processes.")
    relay_poll_interval_seconds: float = Field(
        0.2, gt=0, description="How often the outbox relay looks for committed jobs."
    )
    relay_batch_size: int = Field(100, ge=1, description="Outbox rows published per round.")
    job_max_attempts: int = Field(
        5,
        ge=1,
        description="Deliveries of one job before it is quarantined (retries and deliveries "
        "that crashed a worker both count).",
    )
    job_retry_base_seconds: float = Field(
        1.0, gt=0, description="First retry delay of a transient job failure (doubles each time)."
    )
    job_retry_max_seconds: float = Field(
        60.0, gt=0, description="Longest delay between job retries (before jitter)."
    )
    read_only: bool = Field(
        False,
        description="Start in read-only mode: writes get 503 `read_only`. Operators can also "
        "switch it at runtime with `rampart maintenance read-only on|off`.",
    )

    # --- LLM -----------------------------------------------------------------------------
    llm_providers: str = Field(
        "offline",
        description="Ordered, comma-separated provider fallback chain of `openai`, "
        "`anthropic` and `offline` (e.g. `openai,anthropic,offline`). It always ends in "
        "`offline`, which never fails; results from a later provider are marked degraded.",
    )
    llm_offline_latency_seconds: float = Field(
        0.0, ge=0, description="Simulated latency of the offline provider (demos, chaos tests)."
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1",
        description="Base URL of an OpenAI-compatible chat-completions API (OpenAI, Ollama, "
        "vLLM, OpenRouter); `/chat/completions` is appended.",
    )
    openai_api_key: SecretStr | None = Field(
        None,
        description="API key sent as `Authorization: Bearer`. Required outside dev/test when "
        "LLM_PROVIDERS names `openai`.",
    )
    openai_model: str = Field("gpt-4o-mini", description="Model of the `openai` provider.")
    anthropic_base_url: str = Field(
        "https://api.anthropic.com",
        description="Base URL of the Anthropic Messages API; `/v1/messages` is appended.",
    )
    anthropic_api_key: SecretStr | None = Field(
        None,
        description="API key sent as `x-api-key`. Required outside dev/test when "
        "LLM_PROVIDERS names `anthropic`.",
    )
    anthropic_model: str = Field(
        "claude-3-5-haiku-latest", description="Model of the `anthropic` provider."
    )
    llm_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="Deadline of one HTTP call to an LLM provider (connect to last byte); "
        "past it the call counts as a transient failure.",
    )
    llm_retry_attempts: int = Field(
        3, ge=1, description="Tries per provider call for transient failures (1 = no retry)."
    )
    llm_retry_base_seconds: float = Field(
        1.0,
        ge=0,
        description="First backoff between tries; doubles each retry (~1 s, 2 s, 4 s), "
        "plus up to this much random jitter.",
    )
    llm_retry_max_seconds: float = Field(
        8.0,
        ge=0,
        description="Cap of one backoff, including a 429's Retry-After.",
    )
    llm_breaker_failure_threshold: int = Field(
        5,
        ge=1,
        description="Consecutive failed calls (after retries) that open a provider's circuit "
        "breaker.",
    )
    llm_breaker_cooldown_seconds: float = Field(
        300.0,
        gt=0,
        description="How long an open breaker fails fast before one trial call (half-open) "
        "is let through. Breaker state is shared by all processes through Redis.",
    )

    @field_validator("llm_providers")
    @classmethod
    def _known_llm_providers(cls, value: str) -> str:
        known = ("openai", "anthropic", "offline")
        names = [p.strip() for p in value.split(",") if p.strip()]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(
                f"LLM_PROVIDERS: unknown provider(s) {', '.join(unknown)} "
                f"(known: {', '.join(known)})"
            )
        if len(set(names)) != len(names):
            raise ValueError("LLM_PROVIDERS: a provider is named twice")
        if "offline" in names[:-1]:
            raise ValueError("LLM_PROVIDERS: offline never fails, so it can only come last")
        return value

    # --- logging -------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum log level."
    )
    log_file: str | None = Field(
        None, description="Also write JSON log lines to this rotating file."
    )

    @model_validator(mode="after")
    def _fail_closed(self) -> Settings:
        if self.celery_visibility_timeout_seconds <= self.task_time_limit_seconds:
            raise ValueError(
                "CELERY_VISIBILITY_TIMEOUT_SECONDS must exceed TASK_TIME_LIMIT_SECONDS, "
                "or running tasks are delivered twice"
            )
        if self.job_retry_max_seconds >= self.celery_visibility_timeout_seconds:
            raise ValueError(
                "JOB_RETRY_MAX_SECONDS must be below CELERY_VISIBILITY_TIMEOUT_SECONDS, "
                "or a waiting retry is delivered twice"
            )
        if self.env in ("dev", "test"):
            return self
        problems = []
        jwt = self.jwt_secret.get_secret_value()
        if jwt == DEV_JWT_SECRET:
            problems.append("JWT_SECRET: not set (the dev default is refused)")
        elif len(jwt) < MIN_SECRET_LENGTH:
            problems.append(f"JWT_SECRET: shorter than {MIN_SECRET_LENGTH} characters")
        if self.database_url is None:
            problems.append("DATABASE_URL: not set (no embedded Postgres outside dev)")
        if self.redis_url is None:
            problems.append("REDIS_URL: not set (no embedded Redis outside dev)")
        for provider, key in (
            ("openai", self.openai_api_key),
            ("anthropic", self.anthropic_api_key),
        ):
            if provider in self.provider_chain and (key is None or not key.get_secret_value()):
                problems.append(
                    f"{provider.upper()}_API_KEY: not set (LLM_PROVIDERS names {provider})"
                )
        if problems:
            raise InsecureSettingsError(
                f"refusing to start with ENV={self.env}: " + "; ".join(problems)
            )
        return self

    @property
    def provider_chain(self) -> list[str]:
        return [p.strip() for p in self.llm_providers.split(",") if p.strip()]

    def require(self, name: str) -> str:
        """The secret value of a URL setting, or a clear error naming the variable."""
        value = getattr(self, name)
        if value is None:
            raise RuntimeError(f"{name.upper()} is not set (start the stack with `rampart up`)")
        return value.get_secret_value()


@lru_cache
def get_settings() -> Settings:
    import os

    # Secret files (Docker/Kubernetes style) are read when SECRETS_DIR points at them.
    secrets_dir = os.environ.get("SECRETS_DIR")
    if secrets_dir:
        return Settings(_secrets_dir=secrets_dir)  # type: ignore[call-arg]
    return Settings()
