"""Liveness, readiness and the error envelope on the real stack."""

from __future__ import annotations

import json
import time

import jsonschema_rs
from prometheus_client import REGISTRY
from tests.support import httpclient
from tests.support.server import serve_app
from tests.support.users import signup

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_health_is_ok(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_checks_postgres_and_redis(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok", "capacity": "ok"}


def test_every_response_returns_the_callers_trace_id(client):
    response = client.get("/health", headers={"traceparent": TRACEPARENT})
    assert response.headers["x-request-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert response.headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    response = client.get("/health", headers={"x-request-id": "client-req-0001"})
    assert response.headers["x-request-id"] == "client-req-0001"


def test_error_envelope_carries_the_trace_id(client):
    response = client.get("/api/v1/me", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_unknown_route_is_404_in_the_envelope(client):
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_redis_down_makes_ready_503_naming_redis(client, stack):
    stack.redis.stop()
    try:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["postgres"] == "ok"
        assert response.json()["checks"]["redis"].startswith("failed")
        assert "redis" in response.json()["error"]["message"]
    finally:
        stack.redis.start()
    assert client.get("/ready").status_code == 200


def test_postgres_down_gives_503_not_500_and_recovers_by_itself(client, stack):
    account = signup(client)
    stack.postgres.stop()
    try:
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"].startswith("failed")
        me = client.get("/api/v1/me", headers=account.headers)
        assert me.status_code == 503
        assert me.json()["error"]["code"] == "db_unavailable"
        assert me.headers["retry-after"]
    finally:
        stack.postgres.start()
    deadline = time.monotonic() + 15
    while client.get("/api/v1/me", headers=account.headers).status_code != 200:
        assert time.monotonic() < deadline, "API did not recover after Postgres came back"
        time.sleep(0.2)
    assert client.get("/ready").status_code == 200


def test_unhandled_exception_is_a_500_envelope_and_the_traceback_is_logged(stack, capsys):
    from rampart.app import create_app

    app = create_app()

    def explode() -> None:
        raise RuntimeError("kaboom")

    app.add_api_route("/explode", explode)  # the real middleware stack, one failing route
    counted = REGISTRY.get_sample_value(
        "rampart_http_errors_total", {"status": "500", "code": "internal_error"}
    )
    with serve_app(app) as url:
        response = httpclient.get(f"{url}/explode", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert (
        REGISTRY.get_sample_value(
            "rampart_http_errors_total", {"status": "500", "code": "internal_error"}
        )
        == (counted or 0) + 1
    )
    assert "kaboom" not in response.text  # no internals leak to the client
    assert body["error"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    logged = [line for line in lines if line["event"] == "unhandled_exception"]
    assert logged, "the traceback was not logged"
    assert logged[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "RuntimeError: kaboom" in logged[0]["exception"]


def test_openapi_documents_422_as_the_envelope_a_real_422_has(client):
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec)
    documented = [
        response["content"]["application/json"]["schema"]
        for path in spec["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and (response := operation.get("responses", {}).get("422"))
    ]
    assert documented and all(
        schema == {"$ref": "#/components/schemas/ErrorEnvelope"} for schema in documented
    )
    account = signup(client, "OpenAPI 422")
    bad = client.post("/api/v1/assessments", json={"answers": {}}, headers=account.headers)
    assert bad.status_code == 422
    jsonschema_rs.validate(spec["components"]["schemas"]["ErrorEnvelope"], bad.json())
