from __future__ import annotations

import pytest

from rampart.kit.context import request_id_from_header, trace_id_from_headers, traceparent_for

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_w3c_traceparent_gives_its_trace_id():
    assert trace_id_from_headers(VALID, None) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_traceparent_wins_over_request_id():
    assert trace_id_from_headers(VALID, "my-request-123") == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_hex_request_id_becomes_the_trace_id_when_no_traceparent():
    assert trace_id_from_headers(None, "4BF92F3577B34DA6A3CE929D0E0E4736") == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )


def test_any_other_well_formed_request_id_is_kept_as_request_id_not_as_trace_id():
    # The trace id is the OpenTelemetry trace id: always 32 hex characters.
    trace_id = trace_id_from_headers(None, "my-request-123")
    assert len(trace_id) == 32 and trace_id != "my-request-123"
    assert request_id_from_header("my-request-123") == "my-request-123"
    assert request_id_from_header("has spaces and <script>") is None


@pytest.mark.parametrize(
    "traceparent, request_id",
    [
        ("garbage", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # all-zero id
        (None, "short"),
        (None, "has spaces and <script>"),
        (None, "x" * 500),
    ],
)
def test_malformed_headers_get_a_fresh_hex_trace_id(traceparent, request_id):
    trace_id = trace_id_from_headers(traceparent, request_id)
    assert len(trace_id) == 32 and int(trace_id, 16) >= 0
    assert trace_id != request_id


def test_outgoing_traceparent_carries_the_trace_id():
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert traceparent_for(trace_id, "00f067aa0ba902b7") == f"00-{trace_id}-00f067aa0ba902b7-01"
