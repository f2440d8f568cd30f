"""Client-chosen trace ids against the real API and `rampart trace`.

The attack: tenant B sends `traceparent` (or X-Request-ID) carrying tenant A's trace id,
learned from a shared error message or a support ticket, so that B's requests, log lines
and jobs show up in A's incident timeline, or B forces A's trace to be sampled.

What must hold:
- by default (TRUST_CLIENT_TRACE_IDS=false) a caller's trace id never becomes ours: each
  request starts its own trace; the caller's id is logged as `client_trace_id` and its
  X-Request-ID is still echoed;
- malformed trace headers are never used, even from a trusted gateway;
- whatever the mode, `rampart trace ID` never merges two tenants' events silently: events
  found through a client-chosen id are marked as such, every event carries its tenant,
  and a timeline with more than one tenant says so and groups them per tenant.

(The shared test app plays a trusted gateway, TRUST_CLIENT_TRACE_IDS=true in
tests/support/stack.py, so other tests can pin trace ids; the default runs here through
`serving`.)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from tests.support.cli import rampart
from tests.support.db import app_session
from tests.support.server import serving
from tests.support.users import Account, answers, signup
from tests.support.wait import wait_until

from rampart.kit import tracing
from rampart.kit.db.transaction import Claims


@pytest.fixture
def untrusted(stack) -> Iterator[httpx.Client]:
    """The app as it runs by default: every caller untrusted."""
    with serving(TRUST_CLIENT_TRACE_IDS="false") as client:
        yield client


def trace_of(response: httpx.Response) -> str:
    return response.headers["traceparent"].split("-")[1]


def post_assessment(client: httpx.Client, account: Account, **headers: str) -> httpx.Response:
    response = client.post(
        "/api/v1/assessments",
        json={"answers": answers(2)},
        headers={**account.headers, **headers},
    )
    assert response.status_code == 202, response.text
    return response


def job_trace_ids(tenant_id: str) -> set[str]:
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        # The pipeline's jobs: the signup's mail job carries the signup's trace.
        found = "SELECT trace_id FROM jobs WHERE type <> 'send_mail'"
        return set(session.execute(text(found)).scalars())


def forged(trace_id: str) -> str:
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def log_file(capsys, tmp_path: Path) -> Path:
    """The API's real log lines (in-process: on stdout), as `rampart up` writes them."""
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    path = tmp_path / "api.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def trace_json(trace_id: str, logs: Path) -> list[dict]:
    out = rampart("trace", trace_id, "--logs", str(logs), "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_an_untrusted_callers_trace_id_never_becomes_ours(untrusted):
    alice, mallory = signup(untrusted, "Alice"), signup(untrusted, "Mallory")
    theirs = trace_of(post_assessment(untrusted, alice))

    response = post_assessment(untrusted, mallory, traceparent=forged(theirs))
    ours = trace_of(response)
    assert ours != theirs and len(ours) == 32
    assert response.headers["x-request-id"] == ours
    assert job_trace_ids(mallory.tenant_id) == {ours}
    assert job_trace_ids(alice.tenant_id) == {theirs}

    # A 32-hex or UUID X-Request-ID is echoed back, and is not the trace id either.
    response = post_assessment(untrusted, mallory, **{"X-Request-ID": theirs})
    assert response.headers["x-request-id"] == theirs and trace_of(response) != theirs
    error = untrusted.get("/api/v1/me", headers={"traceparent": forged(theirs)}).json()
    assert error["error"]["trace_id"] not in (None, theirs)


def test_an_untrusted_callers_span_is_linked_not_continued(untrusted):
    exporter = InMemorySpanExporter()
    processor = tracing.add_exporter(exporter, batch=False)
    try:
        caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        response = untrusted.get(
            "/health", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
        )
        ours = trace_of(response)

        def server_span() -> list:
            return [
                s
                for s in exporter.get_finished_spans()
                if s.kind == SpanKind.SERVER and format(s.context.trace_id, "032x") == ours
            ]

        [server] = wait_until(server_span, 5)
    finally:
        processor.shutdown()
        tracing.stop_exporting()
    assert server.parent is None  # a root of our own
    [link] = server.links
    assert format(link.context.trace_id, "032x") == caller_trace
    assert format(link.context.span_id, "016x") == caller_span


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
        {"traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"},
        {"x-request-id": "4bf92f35-77b3-4da6-a3ce-929d0e0e473"},
        {"x-request-id": "4bf92f3577b34da6a3ce929d0e0e4736x"},
    ],
    ids=["upper-case", "zero-parent", "version-ff", "extra-field", "short-uuid", "33-chars"],
)
def test_a_malformed_trace_header_is_never_the_trace_id_even_from_a_trusted_gateway(
    client, headers
):
    response = client.get("/health", headers=headers)
    trace_id = trace_of(response)
    assert len(trace_id) == 32 and trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"
    # With a well-formed header the trusted gateway's id is used (the control).
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    good = client.get("/health", headers={"traceparent": valid})
    assert trace_of(good) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_rampart_trace_keeps_a_forged_client_id_apart_and_names_both_tenants(
    untrusted, capsys, tmp_path
):
    alice, mallory = signup(untrusted, "Alice"), signup(untrusted, "Mallory")
    theirs = trace_of(post_assessment(untrusted, alice))
    mallorys = trace_of(
        post_assessment(
            untrusted, mallory, traceparent=forged(theirs), **{"X-Request-ID": theirs}
        )
    )
    logs = log_file(capsys, tmp_path)

    entries = trace_json(theirs, logs)
    alices = [e for e in entries if e["tenant_id"] == alice.tenant_id]
    others = [e for e in entries if e["tenant_id"] != alice.tenant_id]
    assert alices and {e["matched_by"] for e in alices} == {"trace_id"}
    assert {e.get("trace_id", theirs) for e in alices} == {theirs}
    # Mallory's events are found through the ids she chose, and say so, each with her tenant.
    assert others and {e["tenant_id"] for e in others} == {mallory.tenant_id}
    assert {e["matched_by"] for e in others} <= {"request_id", "client_trace_id", "trace_of_match"}
    assert all(e["cross_tenant"] for e in entries)

    shown = rampart("trace", theirs, "--logs", str(logs)).stdout
    print(shown)
    [warning] = [line for line in shown.splitlines() if "2 tenants" in line]
    assert alice.tenant_id in warning and mallory.tenant_id in warning
    sections = [line for line in shown.splitlines() if line.startswith("── tenant")]
    assert len(sections) == 2, shown
    assert alice.tenant_id in sections[0] and mallory.tenant_id in sections[1]
    assert "client-chosen" in sections[1] and mallorys in sections[1]


def test_a_forged_traceparent_through_a_trusted_gateway_is_shown_per_tenant(
    client, capsys, tmp_path
):
    alice, mallory = signup(client, "Alice"), signup(client, "Mallory")
    theirs = trace_of(post_assessment(client, alice))
    # A gateway that passes the header through: Mallory's request joins Alice's trace.
    assert trace_of(post_assessment(client, mallory, traceparent=forged(theirs))) == theirs
    logs = log_file(capsys, tmp_path)

    entries = trace_json(theirs, logs)
    tenants = {e["tenant_id"] for e in entries}
    assert {alice.tenant_id, mallory.tenant_id} <= tenants
    assert all(e["cross_tenant"] for e in entries)
    assert any(e["source"] == "db" and e["tenant_id"] == mallory.tenant_id for e in entries)

    shown = rampart("trace", theirs, "--logs", str(logs)).stdout
    print(shown)
    assert any("2 tenants" in line for line in shown.splitlines()), shown
    sections = [line for line in shown.splitlines() if line.startswith("── tenant")]
    assert len(sections) >= 2 and any(mallory.tenant_id in s for s in sections), shown
