"""The LLM domain's metrics: every provider call, and the scoring and roadmap work it does
through the provider chain (declared with the kit's rules, kit/metrics/instruments.py)."""

from __future__ import annotations

from rampart.kit.metrics.instruments import counter, histogram

LLM_REQUESTS = counter(
    "rampart_llm_requests_total",
    "LLM provider calls by outcome: success, error, timeout, or circuit_open (failed fast, "
    "no network).",
    ["provider", "outcome"],
)
LLM_DURATION = histogram(
    "rampart_llm_request_duration_seconds",
    "Duration of one LLM provider call (one try).",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0),
)
LLM_RETRIES = counter(
    "rampart_llm_retries_total",
    "Retries of LLM provider calls after transient failures.",
    ["provider"],
)

_LLM_WORK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
SCORE_DURATION = histogram(
    "rampart_assessment_score_duration_seconds",
    "Time to score one assessment through the LLM provider chain (retries and fallbacks "
    "included), by the provider that answered.",
    ["provider"],
    buckets=_LLM_WORK_BUCKETS,
)
ROADMAP_DURATION = histogram(
    "rampart_roadmap_duration_seconds",
    "Time to write one roadmap through the LLM provider chain (retries and fallbacks "
    "included), by the provider that answered.",
    ["provider"],
    buckets=_LLM_WORK_BUCKETS,
)
