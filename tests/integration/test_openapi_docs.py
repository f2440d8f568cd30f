"""The OpenAPI the app serves tells a client what to send and what can come back: the
answers' keys and scale (made from the questionnaire), an example for every request body,
and every error status an operation can answer, each as the error envelope."""

from __future__ import annotations

import httpx
import pytest
from tests.support.users import answers, signup

from rampart.questionnaire import QUESTIONNAIRE

ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}
WRITES = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def spec(http: httpx.Client) -> dict:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(spec: dict):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_answers_schema_is_the_questionnaire_every_id_on_the_0_to_5_scale(spec):
    schema = spec["components"]["schemas"]["AssessmentIn"]["properties"]["answers"]
    ids = [q.id for q in QUESTIONNAIRE.questions]
    assert list(schema["properties"]) == ids
    assert schema["required"] == ids and schema["additionalProperties"] is False
    for question in schema["properties"].values():
        assert question["type"] == "integer"
        assert (question["minimum"], question["maximum"]) == (0, 5)
    assert f"{len(ids)} questions" in schema["description"]


def test_the_documented_answers_example_is_accepted_and_a_wrong_one_is_an_envelope_422(spec, http):
    example = spec["components"]["schemas"]["AssessmentIn"]["examples"][0]
    account = signup(http, "OpenAPI example")
    accepted = http.post("/api/v1/assessments", json=example, headers=account.headers)
    assert accepted.status_code == 202, accepted.text
    wrong = {"answers": {**answers(), QUESTIONNAIRE.questions[0].id: 6}}
    refused = http.post("/api/v1/assessments", json=wrong, headers=account.headers)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == f"answers.{QUESTIONNAIRE.questions[0].id}"


def test_every_request_body_has_an_example(spec):
    schemas = spec["components"]["schemas"]
    missing = []
    for path, method, operation in operations(spec):
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            ref = content.get("schema", {}).get("$ref", "")
            referenced = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
            if not ({"example", "examples"} & (set(content) | set(referenced))):
                missing.append(f"{method.upper()} {path} ({media})")
    assert not missing, missing


def test_every_operation_lists_the_errors_it_can_answer_as_the_envelope(spec):
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        errors = {status for status in responses if status[0] in "45"}
        for status in errors:
            assert responses[status]["description"], (where, status)
            assert responses[status]["content"]["application/json"]["schema"] == ENVELOPE, (
                where,
                status,
            )
        if path in ("/health", "/ready"):
            continue
        expected = {"429"}
        if "requestBody" in operation:
            expected |= {"413", "422"}
        if operation.get("security"):
            expected |= {"401", "403", "503"}
        if method in WRITES:
            expected.add("503")
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            expected |= {"404", "422"}
        assert expected <= errors, (where, sorted(expected - errors))
    create = spec["paths"]["/api/v1/assessments"]["post"]["responses"]
    assert {"400", "401", "403", "413", "422", "429", "503"} <= set(create)
