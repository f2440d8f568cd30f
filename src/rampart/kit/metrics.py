"""Prometheus metrics shared by the API, workers and relay (names are a contract)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "rampart_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "rampart_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0),
)
HTTP_ERRORS = Counter(
    "rampart_http_errors_total",
    "Error envelopes answered, by HTTP status and the envelope's error code: 5xx by cause "
    "(db_unavailable, read_only, internal_error, ...), 4xx by why the request was refused.",
    ["status", "code"],
)
JOB_DURATION = Histogram(
    "rampart_job_duration_seconds",
    "Background job run time.",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
OUTBOX_PUBLISHED = Counter(
    "rampart_outbox_published_total", "Outbox rows published to the broker.", ["task"]
)
SIGNUPS = Counter("rampart_signups_total", "Tenants created through signup.")
JOBS_QUARANTINED = Counter(
    "rampart_jobs_quarantined_total", "Jobs moved to quarantine (dead letters).", ["type"]
)
JOB_RETRIES = Counter("rampart_job_retries_total", "Job retries scheduled.", ["type"])
JOBS_REPUBLISHED = Counter(
    "rampart_jobs_republished_total",
    "Stale jobs (pending/processing, published, unchanged for JOB_STALE_AFTER_SECONDS) "
    "published again by the relay's sweeper: their broker message was lost.",
    ["type"],
)

# --- LLM providers and circuit breakers ------------------------------------------------------
LLM_REQUESTS = Counter(
    "rampart_llm_requests_total",
    "LLM provider calls by outcome: success, error, timeout, or circuit_open (failed fast, "
    "no network).",
    ["provider", "outcome"],
)
LLM_DURATION = Histogram(
    "rampart_llm_request_duration_seconds",
    "Duration of one LLM provider call (one try).",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0),
)
LLM_RETRIES = Counter(
    "rampart_llm_retries_total",
    "Retries of LLM provider calls after transient failures.",
    ["provider"],
)
CIRCUIT_BREAKER_STATE = Gauge(
    "rampart_circuit_breaker_state",
    "Circuit breaker state as last seen by this process: 0 closed, 1 half-open, 2 open.",
    ["provider"],
    multiprocess_mode="mostrecent",
)

# --- incidents (Alertmanager's webhook) -------------------------------------------------------
INCIDENT_NOTIFICATIONS = Counter(
    "rampart_incident_notifications_total",
    "Alerts received from Alertmanager on the incident webhook, by status (firing, resolved) "
    "and severity (critical, warning, info, none, other).",
    ["status", "severity"],
)

# --- billing and webhooks --------------------------------------------------------------------
PLAN_CHANGES = Counter(
    "rampart_plan_changes_total",
    "Tenant plan changes made by billing events.",
    ["from_plan", "to_plan"],
)
BILLING_CONFLICTS = Counter(
    "rampart_billing_customer_conflicts_total",
    "Stripe checkouts that named a tenant already bound to another customer, or a customer "
    "bound to another tenant: recorded with no effect (a second checkout or a forged "
    "client_reference_id); each one is logged as stripe_customer_conflict.",
)
QUOTA_BLOCKS = Counter(
    "rampart_quota_blocks_total",
    "Requests refused with 402 quota_exceeded, by the tenant's plan and metered metric.",
    ["plan", "metric"],
)
QUOTA_WARNINGS = Counter(
    "rampart_quota_warnings_total",
    "Tenants crossing the warning share (80 %) of a plan limit, by plan and metric.",
    ["plan", "metric"],
)
QUOTA_REFUNDS = Counter(
    "rampart_quota_refunds_total",
    "Metered units given back (a failed or quarantined assessment), by metric.",
    ["metric"],
)
BILLING_RECONCILE_RUNS = Counter(
    "rampart_billing_reconcile_runs_total",
    "Billing reconciliation runs against Stripe, by outcome (ok, failed).",
    ["outcome"],
)
BILLING_RECONCILE_REPAIRED = Counter(
    "rampart_billing_reconcile_repaired_total",
    "Stripe events reconciliation applied that no webhook had delivered (drift repaired), "
    "by event type family (checkout, subscription, invoice, other).",
    ["kind"],
)
BILLING_DRIFT = Counter(
    "rampart_billing_drift_total",
    "Tenants whose subscription state differed from Stripe's after reconciliation "
    "applied the missed events (left for a human: runbook billing-reconciliation-drift).",
)
BILLING_DOWNGRADES = Counter(
    "rampart_billing_grace_downgrades_total",
    "Tenants downgraded to free because their payment failed longer ago than the grace period.",
)
WEBHOOK_DELIVERIES = Counter(
    "rampart_webhook_deliveries_total",
    "Webhook deliveries by outcome: applied, no_effect, duplicate (event id seen before), "
    "replayed (exact delivery seen before), bad_signature, malformed.",
    ["provider", "outcome"],
)

# --- rate limits -----------------------------------------------------------------------------
RATE_LIMITED = Counter(
    "rampart_rate_limited_total",
    "Requests refused with 429 by a rate limit (default, login_ip, login_ip_email, signup_ip, "
    "assessments, uploads).",
    ["limit"],
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "rampart_rate_limit_fail_open_total",
    "Rate-limit checks that let a request through because Redis could not be asked.",
)

# --- observability: LLM work, database, build (docs/observability.md) -------------------------
# Gauges set by a process carry an explicit multiprocess mode: under `rampart api|worker`
# every process writes its own file and the service's /metrics aggregates them
# (kit/metrics_export.py). The jobs, queue and pg_stat_activity gauges are not here: the
# relay computes them at scrape time (kit/ops_metrics.py), once for the whole system. Nor
# are the worker's consumer-progress gauges (rampart_worker_*: alive but not consuming?):
# its main process computes them at scrape time from Celery's consumer
# (kit/jobs/liveness.py).
_LLM_WORK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
SCORE_DURATION = Histogram(
    "rampart_assessment_score_duration_seconds",
    "Time to score one assessment through the LLM provider chain (retries and fallbacks "
    "included), by the provider that answered.",
    ["provider"],
    buckets=_LLM_WORK_BUCKETS,
)
ROADMAP_DURATION = Histogram(
    "rampart_roadmap_duration_seconds",
    "Time to write one roadmap through the LLM provider chain (retries and fallbacks "
    "included), by the provider that answered.",
    ["provider"],
    buckets=_LLM_WORK_BUCKETS,
)
DB_QUERY_DURATION = Histogram(
    "rampart_db_query_duration_seconds",
    "Duration of one SQL statement, by operation (select, insert, update, delete, other).",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DB_SLOW_QUERIES = Counter(
    "rampart_db_slow_queries_total",
    "SQL statements slower than DB_SLOW_QUERY_MS (each one is also logged as db_slow_query).",
)
DB_TRANSACTION_ERRORS = Counter(
    "rampart_db_transaction_errors_total",
    "Failed or rolled-back database work by reason: rollback, deadlock, "
    "serialization_failure, lock_timeout, statement_timeout, integrity, connection, other.",
    ["reason"],
)
DB_POOL_IN_USE = Gauge(
    "rampart_db_pool_in_use",
    "Connections checked out of this service's pools, summed over processes.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "rampart_db_pool_size",
    "Most connections this service's pools may hold: pool size + max overflow, summed over "
    "its live processes.",
    multiprocess_mode="livesum",
)
DB_ADMISSION_WAITING = Gauge(
    "rampart_db_admission_waiting",
    "Transactions waiting for a pooled connection (more in flight than the pool has "
    "connections), summed over live processes.",
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "rampart_build_info",
    "Always 1; the labels say which version and commit this service runs.",
    ["version", "commit"],
    multiprocess_mode="max",
)

# --- browser sessions and CSRF ----------------------------------------------------------------
SESSION_EVENTS = Counter(
    "rampart_session_events_total",
    "Cookie session events: created, revoked (logout), store_unavailable (Redis could not "
    "be asked: the request got 503).",
    ["event"],
)
CSRF_FAILURES = Counter(
    "rampart_csrf_failures_total",
    "Cookie-authenticated writes refused with 403 csrf_failed, by reason: missing, "
    "cookie_mismatch, bad_signature.",
    ["reason"],
)

# --- evidence uploads --------------------------------------------------------------------------
EVIDENCE_UPLOADS = Counter(
    "rampart_evidence_uploads_total",
    "Evidence uploads by outcome: accepted, or the error code that refused them "
    "(payload_too_large, unsupported_media_type, validation_error, bad_request, "
    "not_found, forbidden).",
    ["outcome"],
)
