"""One typed Settings object, read from the environment (and secret files), fail-closed.

Outside ENV=dev|test, startup refuses missing, weak or default secrets and names each
variable and why. docs/configuration.md is generated from this model
(`rampart config-docs`); a test keeps it in sync.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

from limits import parse_many
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that only ever make sense on a developer's machine.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"  # noqa: S105
DEV_STRIPE_WEBHOOK_SECRET = "whsec_dev_only_change_me"  # noqa: S105  # pragma: allowlist secret
DEV_SESSION_SECRET = "dev-only-session-secret-change-me-0123456789"  # noqa: S105  # pragma: allowlist secret
DEV_MAIL_FROM = "Rampart <no-reply@localhost>"
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
MIN_SECRET_LENGTH = 32
_ORIGIN = re.compile(r"https?://[^/\s:]+(:\d{1,5})?")


def _csv(value: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated setting."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _key_problem(value: str, dev_default: str) -> str | None:
    """What is wrong with a signing key outside dev, if anything."""
    if value == dev_default:
        return "not set (the dev default is refused)"
    if len(value) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    return None


def _plain_smtp_off_host(url: str) -> bool:
    """Whether `url` is plain smtp:// (no TLS required) to a host other than loopback."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme == "smtp" and parts.hostname not in ("localhost", "127.0.0.1", "::1")


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
    web_port: int = Field(
        3000,
        ge=0,
        le=65535,
        description="Port `rampart up` serves the web app (web/, Next.js) on, beside the API "
        "it proxies under /api/ (one origin, docs/web.md); 0 leaves the web app out.",
    )
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
        "`rampart migrate` and, read-only, `rampart db lint`.",
    )
    operator_database_url: SecretStr | None = Field(
        None,
        description="Postgres URL of the operator role (rampart_operator), the only role "
        "that may run the operator functions: `rampart dlq`, `rampart incidents`, `rampart "
        "trace`. Never given to the API. `rampart migrate` sets the role's password from it.",
    )
    redis_url: SecretStr | None = Field(
        None, description="Redis URL (Celery broker). Unset in dev: the embedded Redis is used."
    )
    backup_database_url: SecretStr | None = Field(
        None,
        description="Postgres URL of a role with REPLICATION (superuser on the embedded "
        "Postgres) for `rampart backup`, `restore` and `drill`: pg_basebackup streams through "
        "it, the drill reads every table and writes the canary (ops.canary) with it.",
    )
    db_pool_size: int = Field(
        10, ge=1, description="Connections per process kept open in the pool."
    )
    db_max_overflow: int = Field(
        5, ge=0, description="Extra connections beyond DB_POOL_SIZE, closed again when idle."
    )
    db_pool_timeout_seconds: float = Field(
        2.0,
        gt=0,
        description="Wait at most this long for a pooled connection, then 503 `overloaded` "
        "(transactions queue for the DB_POOL_SIZE + DB_MAX_OVERFLOW connections in order).",
    )
    db_statement_timeout_ms: int = Field(
        5_000,
        ge=0,
        description="Postgres statement_timeout for the runtime role's sessions: the server "
        "ends a slow statement cleanly (503 `db_unavailable`).",
    )
    db_command_timeout_seconds: float = Field(
        6.0,
        gt=0,
        description="The most any one database round trip may take on the client side, "
        "whatever the server does (frozen, unreachable): then the connection is dropped and "
        "the request gets 503 `db_unavailable`. Above DB_STATEMENT_TIMEOUT_MS, so a merely "
        "slow statement is ended by the server first.",
    )
    db_connect_timeout_seconds: float = Field(3, gt=0, description="Postgres connect timeout.")
    migration_lock_timeout_ms: int = Field(
        5_000,
        gt=0,
        description="lock_timeout of every migration (docs/migrations.md): a DDL statement "
        "that waits longer for its lock fails instead of queueing every query behind it.",
    )
    migration_statement_timeout_ms: int = Field(
        60_000,
        gt=0,
        description="statement_timeout of every migration: one statement running longer "
        "fails (backfill in batches instead; see docs/migrations.md).",
    )
    db_statement_cache_size: int = Field(
        100,
        ge=0,
        description="Prepared statements cached per connection. Set 0 behind a PgBouncer "
        "older than 1.21 (or any pooler without prepared-statement support) in transaction "
        "mode.",
    )

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
    body_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A request body must arrive whole within this long of the request's "
        "start (408 `request_timeout` beyond); evidence uploads get EVIDENCE_UPLOAD_TIMEOUT_"
        "SECONDS instead.",
    )
    max_pending_bodies_per_client: int = Field(
        32,
        ge=1,
        description="Requests one client IP may have still sending their body at once; more "
        "get 429 `too_many_pending_bodies` (slow-body attacks). A busy process counts a body "
        "until it has read it, so leave room for clients behind NAT and for webhook senders "
        "(a few IPs, many requests).",
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
    worker_concurrency: int = Field(
        128,
        ge=1,
        description="Jobs one worker process runs at once. Their work shares one event loop "
        "(I/O-bound: LLM calls, database), so this bounds LLM calls in flight per process.",
    )
    shutdown_drain_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a stopping service may finish its work: `rampart up` sends "
        "SIGTERM to each service's main process only (the worker finishes its running tasks "
        "and takes no new ones, the API its requests in flight, the relay its round) and "
        "kills whatever still runs after this. Also the API's graceful-shutdown limit. A "
        "task still running then is delivered again later: raise it toward "
        "TASK_TIME_LIMIT_SECONDS if tasks are long.",
    )
    relay_poll_interval_seconds: float = Field(
        1.0,
        gt=0,
        description="How often the outbox relay looks for committed jobs without being "
        "woken (a commit wakes it at once through NOTIFY).",
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
        60.0, gt=0, description="Longest delay between job retries (jitter included)."
    )
    job_stale_after_seconds: int = Field(
        7200,
        ge=1,
        description="A pending or processing job whose row has not changed for this long, "
        "and whose outbox row was already published, is published again by the relay (its "
        "message was lost: Redis restarted empty, or Celery dropped it). Must exceed "
        "CELERY_VISIBILITY_TIMEOUT_SECONDS, so Redis' own redelivery comes first and a "
        "running task is never republished.",
    )
    job_sweep_interval_seconds: float = Field(
        60.0, gt=0, description="How often the relay looks for stale jobs to republish."
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
    llm_max_connections: int = Field(
        512,
        ge=1,
        description="Most HTTP connections to the LLM providers per process and event loop "
        "(all providers together), so most LLM calls in flight at once. Keep it above the "
        "calls one process runs at once (the worker's concurrency): a call waiting for a free "
        "connection spends its LLM_TIMEOUT_SECONDS waiting.",
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

    # --- Stripe webhooks ------------------------------------------------------------------
    stripe_webhook_secret: SecretStr = Field(
        SecretStr(DEV_STRIPE_WEBHOOK_SECRET),
        description="Signing secret of the Stripe webhook endpoint (`whsec_...`, from the "
        "Stripe dashboard or `stripe listen`). Required outside dev/test.",
    )
    stripe_webhook_tolerance_seconds: int = Field(
        300,
        ge=1,
        le=3600,
        description="Accept a Stripe-Signature timestamp at most this far in the past or "
        "future; replay nonces are kept in Redis for twice this plus a minute.",
    )

    # --- billing: Stripe API, plans, quotas (billing/plans.py) ---------------------------
    stripe_api_key: SecretStr | None = Field(
        None,
        description="Stripe secret API key (`sk_...`). Unset in dev/test: the fake Stripe "
        "(`rampart fake-stripe`) at STRIPE_API_BASE takes any key.",
    )
    stripe_api_base: str | None = Field(
        None,
        description="Base URL of the Stripe API (unset: Stripe's own). Point it at "
        "`rampart fake-stripe` for local work and tests, e.g. `http://127.0.0.1:12111`.",
    )
    stripe_price_pro: str = Field(
        "price_rampart_pro_monthly", description="Stripe Price id of the pro plan."
    )
    stripe_timeout_seconds: float = Field(
        10, gt=0, le=60, description="Timeout of one call to the Stripe API."
    )
    billing_return_url: str = Field(
        "http://127.0.0.1:8000/billing",
        description="Where Checkout and the Customer Portal send the browser back to.",
    )
    plan_free_assessments_per_month: int = Field(
        10, ge=0, description="Assessments a tenant on the free plan may create per month."
    )
    plan_pro_assessments_per_month: int = Field(
        1000, ge=0, description="Assessments a tenant on the pro plan may create per month."
    )
    billing_grace_period_seconds: int = Field(
        7 * 86400,
        ge=0,
        description="How long a tenant stays on pro after a failed payment (past_due) "
        "before it is downgraded to free (its data is kept).",
    )
    billing_reconcile_interval_seconds: int = Field(
        900,
        ge=60,
        description="How often `rampart up` runs billing reconciliation (`rampart "
        "billing-reconcile --every`); a deployment schedules that command itself.",
    )
    billing_reconcile_window_seconds: int = Field(
        3 * 86400,
        ge=60,
        le=30 * 86400,
        description="How far back reconciliation lists Stripe events (Stripe retries "
        "deliveries for 3 days; events are listable for 30).",
    )

    # --- rate limits, client IP, CORS ----------------------------------------------------
    rate_limit_enabled: bool = Field(
        True,
        description="Enforce the abuse limits below (buckets in Redis, shared by every API "
        "process). If Redis cannot be asked, requests go through with a warning log.",
    )
    rate_limit_default_per_ip: str = Field(
        "60/minute",
        description="Base limit per client IP on every route except /health, /ready "
        "and the incident webhook, where only failed token attempts count "
        "(`limits` notation: `N/minute`, `N per 15 minutes`, ...).",
    )
    rate_limit_login_per_ip_email: str = Field(
        "5/15 minutes", description="Login attempts per client IP and email."
    )
    rate_limit_login_per_ip: str = Field(
        "20/15 minutes", description="Login attempts per client IP, whatever the email."
    )
    rate_limit_signup_per_ip: str = Field(
        "3/hour",
        description="Signups per client IP: every accepted one (202) counts, a rejected body "
        "(422) does not.",
    )
    rate_limit_assessments_free: str = Field(
        "10/hour", description="Assessments created per user of a tenant on the free plan."
    )
    rate_limit_assessments_pro: str = Field(
        "100/hour", description="Assessments created per user of a tenant on the pro plan."
    )
    rate_limit_uploads_per_user: str = Field("10/hour", description="Evidence uploads per user.")
    rate_limit_invitations_per_tenant: str = Field(
        "20/day",
        description="Invitations a tenant may send: each one mails an address the tenant "
        "chooses, so without a bound one account could mail anyone through our domain.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated IPs/CIDRs of the reverse proxies in front of the API. "
        "X-Forwarded-For is read only when the socket peer is one of them (walked from the "
        "right, skipping trusted hops); empty: the socket peer is the client.",
    )
    cors_origins: str = Field(
        "",
        description="Comma-separated exact origins (`https://app.example.com`) allowed to "
        "call the API from a browser; empty: no cross-origin access.",
    )
    cors_allow_credentials: bool = Field(
        True,
        description="Let allowed origins send cookies (the session cookie). `*` in "
        "CORS_ORIGINS is refused while this is on.",
    )

    @field_validator(
        "rate_limit_default_per_ip",
        "rate_limit_login_per_ip_email",
        "rate_limit_login_per_ip",
        "rate_limit_signup_per_ip",
        "rate_limit_assessments_free",
        "rate_limit_assessments_pro",
        "rate_limit_uploads_per_user",
        "rate_limit_invitations_per_tenant",
    )
    @classmethod
    def _one_rate_limit(cls, value: str, info: ValidationInfo) -> str:
        name = (info.field_name or "").upper()
        try:
            count = len(parse_many(value))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
        if count != 1:
            raise ValueError(f"{name}: give exactly one limit, not {count}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        from rampart.kit.security.client_ip import parse_trusted_proxies

        try:
            parse_trusted_proxies(value)
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {exc}") from exc
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_exact(cls, value: str) -> str:
        for origin in _csv(value):
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CORS_ORIGINS: {origin!r} is not an exact origin (scheme://host[:port], "
                    "no path or trailing slash)"
                )
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return _csv(self.cors_origins)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return _csv(self.trusted_proxies)

    # --- RBAC and invitations ----------------------------------------------------------
    invitation_ttl_seconds: int = Field(
        7 * 24 * 3600,
        ge=300,
        le=30 * 24 * 3600,
        description="How long an invitation token can be accepted (default 7 days); it is "
        "also used up by its first acceptance.",
    )

    # --- email: verification links, invitations, notices (sent by the worker) -----------
    smtp_url: SecretStr | None = Field(
        None,
        description="SMTP server of outgoing mail: `smtp+starttls://host:587` (STARTTLS "
        "required), `smtps://host:465` (TLS from the first byte) or `smtp://host:25` "
        "(STARTTLS only if the server offers it: a local relay); login credentials, if any, "
        "as the URL's user and password (percent-encoded). Required "
        "outside dev/test, where plain `smtp://` is refused unless the host is loopback. "
        "Unset in dev: `rampart up` starts a local capture server (`rampart mail` reads it).",
    )
    smtp_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Deadline of one SMTP conversation; past it the mail job is retried "
        "later with backoff (a mail server that is down never fails a request).",
    )
    mail_from: str = Field(
        DEV_MAIL_FROM,
        description="Sender (`From:`) of every mail, e.g. `Rampart <no-reply@example.com>`. "
        "Required outside dev/test.",
    )
    email_link_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL of the web app that links in emails open: "
        "`<url>/verify-email#token=...` and `<url>/accept-invitation#token=...` (the token "
        "in the fragment, so it never reaches a server log or a Referer); the page posts it "
        "to the API. The mails also show the token itself, for API clients.",
    )
    email_verification_ttl_seconds: int = Field(
        24 * 3600,
        ge=300,
        le=7 * 24 * 3600,
        description="How long an email verification link works (default 24 h); it is also "
        "used up by its first use. Signing up again sends a new one.",
    )

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        from urllib.parse import urlsplit

        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
            raise ValueError(
                "SMTP_URL: give smtp+starttls://, smtps:// or smtp:// with a host, e.g. "
                "smtp+starttls://mail.example.com:587"
            )
        return value

    # --- observability -----------------------------------------------------------------
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus endpoint (`/metrics`, served by the "
        "Celery main process for all its pool processes); 0 disables it.",
    )
    relay_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the relay's Prometheus endpoint; 0 disables it. The relay also "
        "reports the cross-service gauges (jobs, queues, database connections) at scrape time.",
    )
    billing_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the Prometheus endpoint of `rampart billing-reconcile --every` "
        "(its runs, repairs and drift); 0 disables it.",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the API's Prometheus endpoint (`/metrics`, served by the main "
        "`rampart api` process for all its uvicorn workers); 0 disables it. The public API "
        "port has no /metrics: it would show build and business counters to anyone.",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address the API, worker and relay metrics endpoints bind to (loopback: "
        "only this host can scrape; set the address Prometheus reaches, never a public one).",
    )
    prometheus_multiproc_dir: str | None = Field(
        None,
        description="Base directory for prometheus-client's multiprocess files. Each "
        "`rampart api|worker|relay` start uses a fresh `<service>-<pid>/` under it, removed "
        "at exit; unset: a new temporary directory.",
    )
    db_slow_query_ms: int = Field(
        500,
        ge=1,
        description="Queries slower than this count in `rampart_db_slow_queries_total` and "
        "are logged (`db_slow_query`) with their trace_id and normalized statement.",
    )
    git_commit: str | None = Field(
        None,
        description="Commit of the running build, for `rampart_build_info`; unset: "
        "`git rev-parse HEAD` at startup if available, else `unknown`.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector base URL (OTLP over HTTP, e.g. "
        "`http://otel-collector:4318`); spans go to `<url>/v1/traces`. Unset: spans are not "
        "exported (trace ids and propagation still work).",
    )
    otel_traces_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded (parent-based: a trusted caller's sampled "
        "flag wins). Unsampled requests still carry a trace_id.",
    )
    trust_client_trace_ids: bool = Field(
        False,
        description="Continue a caller's W3C `traceparent` (or take a UUID or 32-hex "
        "`X-Request-ID` as the trace id). Only when every request comes through a gateway "
        "that sets or strips these headers. Off: each request starts its own trace and a "
        "caller's trace id is logged as `client_trace_id` (and linked), so no caller can join "
        "another tenant's trace or force sampling; X-Request-ID is echoed either way.",
    )
    sentry_dsn: SecretStr | None = Field(
        None, description="Sentry DSN; unset: no error reporting to Sentry."
    )
    sentry_environment: str | None = Field(
        None, description="Sentry environment tag; unset: the value of ENV."
    )
    sentry_release: str | None = Field(
        None, description="Sentry release; unset: the value of VERSION."
    )

    # --- alerting: incident webhook and Alertmanager ------------------------------------
    alert_webhook_token: SecretStr | None = Field(
        None,
        description="Bearer token Alertmanager sends to the incident webhook "
        "(`POST /api/v1/internal/alerts`). Unset: the webhook answers 503 "
        "`alert_webhook_disabled`. Outside dev/test, when set, >= 32 characters. "
        "`rampart alertmanager-config` points Alertmanager at a file holding it.",
    )
    alert_webhook_url: str = Field(
        "http://rampart:8000/api/v1/internal/alerts",
        description="Where Alertmanager reaches the incident webhook, for "
        "`rampart alertmanager-config` (the default suits ops/docker-compose.yml).",
    )
    alert_webhook_token_file: str = Field(
        "/etc/alertmanager/secrets/alert-webhook-token",
        description="Path, as Alertmanager sees it, of a file holding ALERT_WEBHOOK_TOKEN; "
        "the rendered alertmanager.yml names this file (`credentials_file`) instead of "
        "holding the token.",
    )
    alert_slack_webhook_url: SecretStr | None = Field(
        None,
        description="Slack incoming-webhook URL; set: warning and critical alerts also go "
        "to Slack (rendered into alertmanager.yml).",
    )
    alert_slack_channel: str = Field(
        "#rampart-alerts", description="Slack channel of the alert messages."
    )
    alert_pagerduty_routing_key: SecretStr | None = Field(
        None,
        description="PagerDuty Events API v2 routing (integration) key; set: critical "
        "alerts also page (rendered into alertmanager.yml).",
    )

    # --- evidence uploads ---------------------------------------------------------------
    evidence_dir: str | None = Field(
        None,
        description="Directory where evidence files are stored (under random keys, per "
        "tenant). Unset: `<RAMPART_HOME>/evidence`.",
    )
    evidence_max_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        le=100 * 1024 * 1024,
        description="Largest evidence file accepted (5 MiB); beyond it the upload is "
        "refused with 413 while it streams. The upload route has this limit instead of "
        "MAX_BODY_BYTES.",
    )
    evidence_upload_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="An evidence upload must arrive whole within this long (408 beyond).",
    )
    evidence_max_image_side: int = Field(
        2048,
        ge=16,
        le=20_000,
        description="Largest width and height, in pixels, of an uploaded PNG or JPEG; read "
        "from the image header before any pixel is decoded (decompression bombs).",
    )

    # --- browser sessions and CSRF -----------------------------------------------------
    session_secret: SecretStr = Field(
        SecretStr(DEV_SESSION_SECRET),
        description="HMAC key of the CSRF tokens of cookie sessions. Required outside "
        "dev/test, >= 32 characters, different from JWT_SECRET. Rotating it makes every "
        "live session's CSRF token invalid (writes get 403 until the user logs in again).",
    )
    session_ttl_seconds: int = Field(
        3600,
        ge=60,
        description="Idle timeout of a cookie session (rolling: each authenticated request "
        "starts it again). Session state lives in Redis.",
    )
    session_cookie_samesite: Literal["lax", "strict", "none"] = Field(
        "lax",
        description="SameSite of the `__Host-session` and `__Host-csrf` cookies: `lax` when "
        "the frontend is served from the API's site, `none` when it is on another site "
        "(then list it in CORS_ORIGINS).",
    )

    @model_validator(mode="after")
    def _fail_closed(self) -> Settings:
        if self.db_command_timeout_seconds * 1000 <= self.db_statement_timeout_ms:
            raise ValueError(
                "DB_COMMAND_TIMEOUT_SECONDS must exceed DB_STATEMENT_TIMEOUT_MS, so the server "
                "ends a slow statement before the client gives up on the connection"
            )
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
        if self.job_stale_after_seconds <= self.celery_visibility_timeout_seconds:
            raise ValueError(
                "JOB_STALE_AFTER_SECONDS must exceed CELERY_VISIBILITY_TIMEOUT_SECONDS, "
                "or a job whose message Redis still holds (or a running task) is republished"
            )
        if self.cors_allow_credentials and "*" in self.cors_origin_list:
            raise ValueError(
                "CORS_ORIGINS: `*` is refused while CORS_ALLOW_CREDENTIALS is on "
                "(list the exact origins)"
            )
        if self.env in ("dev", "test"):
            return self
        problems = []
        jwt = self.jwt_secret.get_secret_value()
        if problem := _key_problem(jwt, DEV_JWT_SECRET):
            problems.append(f"JWT_SECRET: {problem}")
        session_secret = self.session_secret.get_secret_value()
        if problem := _key_problem(session_secret, DEV_SESSION_SECRET):
            problems.append(f"SESSION_SECRET: {problem}")
        elif session_secret == jwt:
            problems.append("SESSION_SECRET: the same as JWT_SECRET (use separate keys)")
        stripe_secret = self.stripe_webhook_secret.get_secret_value()
        if stripe_secret == DEV_STRIPE_WEBHOOK_SECRET:
            problems.append("STRIPE_WEBHOOK_SECRET: not set (the dev default is refused)")
        elif not stripe_secret.startswith("whsec_"):
            problems.append("STRIPE_WEBHOOK_SECRET: not a webhook signing secret (whsec_...)")
        alert_token = self.alert_webhook_token
        if alert_token is not None and len(alert_token.get_secret_value()) < MIN_SECRET_LENGTH:
            problems.append(f"ALERT_WEBHOOK_TOKEN: shorter than {MIN_SECRET_LENGTH} characters")
        if self.database_url is None:
            problems.append("DATABASE_URL: not set (no embedded Postgres outside dev)")
        if self.smtp_url is None:
            problems.append("SMTP_URL: not set (verification and invitation mails)")
        elif _plain_smtp_off_host(self.smtp_url.get_secret_value()):
            problems.append(
                "SMTP_URL: plain smtp:// to a host other than loopback (use smtp+starttls:// "
                "or smtps://: the mails carry login links)"
            )
        if self.mail_from == DEV_MAIL_FROM:
            problems.append("MAIL_FROM: not set (the dev default is refused)")
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
        return _csv(self.llm_providers)

    # --- backups and restore drills (docs/backups.md) -----------------------------------
    backups_enabled: bool = Field(
        True,
        description="`rampart up` archives WAL of its embedded Postgres and runs the backup "
        "schedule (base backups, canary row every minute).",
    )
    backup_dir: str | None = Field(
        None,
        description="Backup repository (WAL archive and base backups); default "
        "<RAMPART_HOME>/backups.",
    )
    backup_s3_url: str | None = Field(
        None,
        description="Off-site copy of the repository, `s3://BUCKET/PREFIX` on any "
        "S3-compatible store: the schedule pushes new backups and WAL there every round; "
        "`rampart backup pull` fetches them on another host. Credentials: the usual "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or any boto3 source).",
    )
    backup_s3_endpoint_url: str | None = Field(
        None, description="Endpoint of a non-AWS S3-compatible store (MinIO, R2, Ceph)."
    )
    backup_retention_days: int = Field(
        30, ge=1, description="Base backups (and the WAL they need) are kept this long."
    )
    backup_full_interval_days: float = Field(
        7, gt=0, description="A full base backup at least this often; incrementals between."
    )
    backup_incremental_interval_hours: float = Field(
        24, gt=0, description="An incremental base backup (on the newest backup) this often."
    )
    backup_archive_timeout_seconds: int = Field(
        60,
        ge=1,
        description="archive_timeout of the embedded Postgres: WAL is archived at "
        "least this often while anything is written (bounds the RPO).",
    )
    drill_interval_days: float = Field(
        14,
        ge=0,
        description="The backup schedule runs `rampart drill` this often (the first "
        "one this long after the first backup); 0: never.",
    )
    drill_rpo_target_seconds: float = Field(
        300, gt=0, description="`rampart drill` fails when the measured RPO exceeds this."
    )
    drill_rto_target_seconds: float = Field(
        900, gt=0, description="`rampart drill` fails when the measured RTO exceeds this."
    )

    # --- go-live gate (`rampart readiness`, docs/go-live.md) ---------------------------
    prometheus_url: str | None = Field(
        None,
        description="Base URL of the Prometheus that scrapes this deployment (e.g. "
        "`http://prometheus:9090`), for `rampart readiness` (error budget left). Unset: that "
        "check says not available (no-go); `rampart up` runs no Prometheus.",
    )
    alertmanager_url: str | None = Field(
        None,
        description="Base URL of the Alertmanager that routes this deployment's alerts (e.g. "
        "`http://alertmanager:9093`), for `rampart readiness` (a test alert through the real "
        "path). Unset: that check says not available (no-go).",
    )
    readiness_max_age_days: float = Field(
        7,
        gt=0,
        description="`rampart readiness` refuses load and soak reports and the bundle secret "
        "scan older than this.",
    )
    readiness_audit_max_age_hours: float = Field(
        24,
        gt=0,
        description="`rampart readiness` refuses a recorded dependency audit older than this "
        "(`rampart readiness --audit` runs and records a new one).",
    )

    def require(self, name: str) -> str:
        """The secret value of a URL setting; when unset, what the fallback (the operator
        commands: the running `rampart up`) gives, else MissingSetting naming the variable."""
        value = getattr(self, name)
        if value is not None:
            return value.get_secret_value() if isinstance(value, SecretStr) else value
        if _unset_fallback is not None:
            return _unset_fallback(name.upper())
        raise MissingSetting(f"{name.upper()} is not set (start the stack with `rampart up`)")


class MissingSetting(RuntimeError):
    """A setting a command needs is not set: one line for the operator, no traceback."""


# Where `require` looks for a setting that is unset: None (the services: fail), or what the
# CLI installs for the operator commands (devstack/running.py: the running `rampart up`).
_unset_fallback: Callable[[str], str] | None = None


def fall_back_to(fallback: Callable[[str], str] | None) -> None:
    """Have `Settings.require` ask `fallback(VARIABLE)` for unset settings; it returns the
    value or raises MissingSetting."""
    global _unset_fallback
    _unset_fallback = fallback


@lru_cache
def get_settings() -> Settings:
    import os

    # Secret files (Docker/Kubernetes style) are read when SECRETS_DIR points at them.
    secrets_dir = os.environ.get("SECRETS_DIR")
    if secrets_dir:
        return Settings(_secrets_dir=secrets_dir)  # type: ignore[call-arg]
    return Settings()
