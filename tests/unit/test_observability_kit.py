"""Pure logic of the observability kit: statement normalization, database error reasons,
Sentry scrubbing, trace-id rules of spans, and reading log files for `rampart trace`."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from rampart.kit import tracing
from rampart.kit.db.observe import error_reason, normalize_statement, operation
from rampart.kit.metrics import instruments
from rampart.kit.sentry import FILTERED, before_send, scrub
from rampart.kit.trace_lookup import from_logs, log_files


def test_a_normalized_statement_keeps_the_shape_and_drops_every_value():
    statement = """
        SELECT id, email FROM users
        WHERE lower(email) = 'alice@example.com' AND age > 42 AND note = E'it''s' AND
              body = $tag$secret text$tag$ AND id IN (%(id_1)s, %(id_2)s, %(id_3)s)
    """
    normalized = normalize_statement(statement)
    assert normalized == (
        "SELECT id, email FROM users WHERE lower(email) = ? AND age > ? AND note = ? AND "
        "body = ? AND id IN (%(id_n)s)"
    )
    assert len(normalize_statement("SELECT " + "x, " * 2000)) == 1000


@pytest.mark.parametrize(
    "statement, expected",
    [("  select 1", "select"), ("INSERT INTO t", "insert"), ("WITH x AS (...)", "other")],
)
def test_statements_are_labelled_by_operation(statement, expected):
    assert operation(statement) == expected


@pytest.mark.parametrize(
    "error, reason",
    [
        (asyncpg.DeadlockDetectedError(), "deadlock"),
        (asyncpg.SerializationError(), "serialization_failure"),
        (asyncpg.LockNotAvailableError(), "lock_timeout"),
        (asyncpg.QueryCanceledError(), "statement_timeout"),
        (asyncpg.UniqueViolationError(), "integrity"),
        (ConnectionRefusedError("connection refused"), "connection"),
        (TimeoutError(), "connection"),
        (asyncpg.UndefinedTableError(), "other"),
    ],
)
def test_database_errors_get_a_bounded_reason(error, reason):
    assert error_reason(error) == reason


# Fake secrets the scrubber must catch (not real ones: detect-secrets is told so).
NEW_PW = "pw-1"  # pragma: allowlist secret
STRIPE_KEY = "sk_live_abcdef"  # pragma: allowlist secret
REPR_WITH_SECRETS = "{'password': 'hunter2', 'key': 'whsec_abc123'}"  # pragma: allowlist secret


def test_sentry_scrubbing_filters_secret_keys_headers_pairs_and_values_in_text():
    event = {
        "request": {
            "headers": {
                "Authorization": "Bearer abc",
                "Stripe-Signature": "t=1,v1=ff",
                "Host": "h",
            },
            "cookies": {"session": "s"},
            "data": {"user": {"email": "bob@example.com", "new_password": NEW_PW, "plan": "pro"}},
        },
        "exception": {
            "values": [
                {
                    "value": "failed for bob@example.com: password=hunter2, Bearer eyJhbGciOi",
                    "stacktrace": {
                        "frames": [
                            {
                                "vars": {
                                    "scope": {"headers": [["b'cookie'", "b'sid=123'"]]},
                                    "api_key": STRIPE_KEY,
                                    "text": REPR_WITH_SECRETS,
                                }
                            }
                        ]
                    },
                }
            ]
        },
    }
    scrubbed = json.dumps(before_send(event, {}))
    for secret in ("Bearer abc", "t=1,v1=ff", "sid=123", "bob@example.com", "pw-1", "hunter2"):
        assert secret not in scrubbed, secret
    for secret in ("sk_live_abcdef", "whsec_abc123", "eyJhbGciOi"):
        assert secret not in scrubbed, secret
    assert '"plan": "pro"' in scrubbed and '"Host": "h"' in scrubbed  # the rest stays useful
    assert "email:" in scrubbed  # hashed, like in the logs


def test_scrub_leaves_ordinary_values_alone():
    value = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "count": 3, "items": ["a", "b"]}
    assert scrub(value) == value
    assert scrub({"token": "x"}) == {"token": FILTERED}


def test_a_span_takes_a_chosen_hex_trace_id_or_the_callers_traceparent():
    # No exporter here: spans only carry ids (parent links of recording spans: test_tracing).
    tracing.configure("unit")
    chosen = "c0ffee00c0ffee00c0ffee00c0ffee00"
    root = tracing.start_span("root", trace_id=chosen)
    assert tracing.ids(root)[0] == chosen
    child = tracing.start_span("child", traceparent=tracing.traceparent_of(root))
    assert tracing.ids(child)[0] == chosen
    assert tracing.ids(child)[1] != tracing.ids(root)[1]  # a span of its own in that trace
    assert tracing.ids(tracing.start_span("fresh", trace_id="not-hex"))[0] != chosen
    assert tracing.log_trace_id(child, "legacy-id-0001") == "legacy-id-0001"
    assert tracing.log_trace_id(child, chosen) == chosen


def _line(trace_id: str, event: str, at: str, **fields) -> str:
    return json.dumps({"timestamp": at, "trace_id": trace_id, "event": event, **fields}) + "\n"


def test_trace_lookup_reads_rotated_log_files_and_matches_request_ids(tmp_path: Path):
    wanted, other = "a" * 32, "b" * 32
    (tmp_path / "api.log").write_text(
        _line(wanted, "http_request", "2026-01-01T10:00:02Z", service="api", status=202)
        + "not json at all "
        + wanted
        + "\n"
        + _line(other, "http_request", "2026-01-01T10:00:03Z", service="api")
    )
    (tmp_path / "api.log.1").write_text(
        _line(wanted, "assessment_accepted", "2026-01-01T10:00:01Z", service="api")
    )
    (tmp_path / "worker.log").write_text(
        _line("c" * 32, "job_started", "2026-01-01T10:00:04Z", request_id="client-req-1")
    )
    (tmp_path / "worker.out").write_text(_line(wanted, "ignored", "2026-01-01T10:00:05Z"))
    files = log_files([tmp_path])
    assert [f.name for f in files] == ["api.log", "api.log.1", "worker.log"]

    entries, trace_ids = from_logs(wanted, files)
    assert sorted((e.at.second, e.event, e.source) for e in entries) == [
        (1, "assessment_accepted", "api"),
        (2, "http_request", "api"),
    ]
    assert trace_ids == {wanted}
    by_request, trace_ids = from_logs("client-req-1", files)
    assert [e.event for e in by_request] == ["job_started"] and trace_ids == {"c" * 32}


@pytest.mark.parametrize(
    ("declare", "name"),
    [
        (lambda name: instruments.counter(name, "doc"), "signups_total"),
        (lambda name: instruments.counter(name, "doc"), "rampart_signups"),
        (lambda name: instruments.histogram(name, "doc", buckets=(1.0,)), "rampart_wait_ms"),
        (lambda name: instruments.gauge(name, "doc", multiprocess_mode="max"), "queue_depth"),
    ],
)
def test_a_metric_outside_the_house_naming_is_refused_before_it_is_registered(declare, name):
    with pytest.raises(ValueError, match="house naming"):
        declare(name)
