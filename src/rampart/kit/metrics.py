"""Prometheus metrics shared by the API, workers and relay (names are a contract)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
