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
