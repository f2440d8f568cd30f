"""Which trace id a request gets (kit/context.py `incoming_trace`).

A caller is untrusted unless TRUST_CLIENT_TRACE_IDS says every request comes through a
gateway that sets or strips the trace headers. An untrusted caller's trace id is never
ours: the request starts a trace of its own, and the caller's id is kept apart as
`client_trace_id`. Malformed ids are never used, in either mode.
"""

from __future__ import annotations

import re

import pytest

from rampart.kit.context import incoming_trace, request_id_from_header, traceparent_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID = f"00-{TRACE}-00f067aa0ba902b7-01"
UUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def fresh(trace_id: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{32}", trace_id)) and int(trace_id, 16) != 0


def test_a_trusted_callers_w3c_traceparent_is_continued():
    got = incoming_trace(VALID, None, trusted=True)
    assert (got.trace_id, got.parent, got.client_trace_id) == (TRACE, VALID, None)


def test_traceparent_wins_over_request_id():
    got = incoming_trace(VALID, "my-request-123", trusted=True)
    assert got.trace_id == TRACE and got.request_id == "my-request-123"


@pytest.mark.parametrize(
    "request_id, trace_id",
    [
        (UUID, UUID.replace("-", "")),
        (UUID.upper(), UUID.replace("-", "")),
        ("4BF92F3577B34DA6A3CE929D0E0E4736", TRACE),  # nginx's $request_id: 32 hex
    ],
)
def test_a_trusted_uuid_or_hex_request_id_becomes_the_trace_id(request_id, trace_id):
    got = incoming_trace(None, request_id, trusted=True)
    assert got.trace_id == trace_id and got.parent is None
    assert got.request_id == request_id  # echoed as sent


def test_an_untrusted_callers_trace_id_is_kept_apart_and_a_new_trace_starts():
    got = incoming_trace(VALID, TRACE, trusted=False)
    assert fresh(got.trace_id) and got.trace_id != TRACE
    assert got.parent is None
    assert got.client_trace_id == TRACE  # logged, and linked from our server span
    assert got.client_parent == VALID
    assert got.request_id == TRACE  # still echoed back in X-Request-ID
    assert incoming_trace(VALID, None, trusted=False).trace_id != got.trace_id


def test_an_untrusted_uuid_request_id_is_only_a_request_id():
    got = incoming_trace(None, UUID, trusted=False)
    assert fresh(got.trace_id) and got.trace_id != UUID.replace("-", "")
    assert got.request_id == UUID and got.client_trace_id is None


MALFORMED_TRACEPARENTS = [
    "garbage",
    f"00-{TRACE.upper()}-00F067AA0BA902B7-01",  # W3C ids are lower-case hex
    f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
    f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is forbidden
    f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
    f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
    f"00-{TRACE}x-00f067aa0ba902b7-01",
    f"00-{TRACE}-00f067aa0ba902b7-1",
    f"00_{TRACE}_00f067aa0ba902b7_01",
]


@pytest.mark.parametrize("trusted", [True, False])
@pytest.mark.parametrize("traceparent", MALFORMED_TRACEPARENTS)
def test_a_malformed_traceparent_is_never_used(traceparent, trusted):
    got = incoming_trace(traceparent, None, trusted=trusted)
    assert fresh(got.trace_id) and got.trace_id != TRACE and got.trace_id not in traceparent
    assert got.parent is None and got.client_trace_id is None


def test_a_later_w3c_version_is_read_by_its_first_four_fields():
    later = f"cc-{TRACE}-00f067aa0ba902b7-01-what-the-future-holds"
    got = incoming_trace(later, None, trusted=True)
    assert got.trace_id == TRACE


@pytest.mark.parametrize(
    "request_id",
    [
        "short",
        "has spaces and <script>",
        "x" * 500,
        "3f2504e0-4f89-41d3-9a0c-0305e82c330",  # one digit short of a UUID
        "3f2504e04f89-41d3-9a0c-0305e82c3301x",
        "0" * 32,
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_a_malformed_request_id_is_never_the_trace_id(request_id):
    got = incoming_trace(None, request_id, trusted=True)
    assert fresh(got.trace_id) and got.trace_id != request_id.replace("-", "")


def test_only_a_well_formed_request_id_is_echoed():
    assert request_id_from_header("my-request-123") == "my-request-123"
    assert request_id_from_header("has spaces and <script>") is None
    assert request_id_from_header("x" * 129) is None


def test_outgoing_traceparent_carries_the_trace_id():
    assert traceparent_for(TRACE, "00f067aa0ba902b7") == f"00-{TRACE}-00f067aa0ba902b7-01"
