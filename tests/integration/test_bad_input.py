"""Bad input over real HTTP: a 4xx in the one envelope, never a 500, and nothing written.

Every response is checked for the envelope `{"error": {"code", "message", "details"?,
"trace_id"}}`, a 4xx status and a body trace_id equal to the X-Request-ID header. Every
rejected write is checked against the database before and after:

- assessment writes are counted *as the tenant* (app_rw with its claims): RLS scopes the
  count to exactly the rows this tenant's request could have written, whatever other tests
  do; the outbox, which app_rw may not read, is counted as superuser filtered by tenant.
- signup writes are counted *as superuser*: a rejected signup has no tenant yet, and without
  claims app_rw sees no rows at all, so a count as app_rw would be 0 whatever happened and
  the test could never fail. The superuser bypasses RLS and sees any row that was written.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from tests.support.db import app_session, su_value
from tests.support.users import PASSWORD, Account, answers, signup

from rampart.kit.db.transaction import Claims
from rampart.questionnaire import QUESTIONNAIRE

MAX_BODY = 1_048_576
Q = QUESTIONNAIRE.questions[0].id  # a real question id
ENVELOPE_KEYS = {"code", "message", "details", "trace_id"}


@dataclass(frozen=True)
class Bad:
    """One bad request body and the error it must get."""

    request: dict[str, Any]  # httpx keyword arguments: json=..., or content=... + headers
    status: int
    code: str
    field: str | None = None  # a field the details must name


def body(obj: Any) -> dict[str, Any]:
    return {"json": obj}


def raw(content: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    headers = {"content-type": content_type} if content_type else {}
    return {"content": content, "headers": headers}


def with_answer(value: Any, key: str = Q) -> dict[str, Any]:
    return {"answers": {**answers(), key: value}}


def invalid(field_name: str | None, request: dict[str, Any]) -> Bad:
    return Bad(request, 422, "validation_error", field_name)


def assert_error_envelope(response: httpx.Response, bad: Bad) -> dict:
    assert response.status_code != 500, response.text
    assert response.status_code == bad.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"error"}
    error = payload["error"]
    assert {"code", "message", "trace_id"} <= set(error) <= ENVELOPE_KEYS
    assert error["code"] == bad.code
    assert isinstance(error["message"], str) and error["message"]
    assert error["trace_id"] and error["trace_id"] == response.headers["x-request-id"]
    if bad.field is not None:
        named = {d["field"] for d in error.get("details") or []}
        accepted = {bad.field, f"query.{bad.field}", f"path.{bad.field}"}
        assert named & accepted, f"details {named} do not name {bad.field}"
    return error


# --- fixtures and row counts ------------------------------------------------------------


@pytest.fixture(scope="module")
def account(http: httpx.Client) -> Account:
    return signup(http, "Bad Input")


def tenant_writes(account: Account, superuser: str) -> dict[str, int]:
    claims = Claims(tenant_id=account.tenant_id, sub=account.user_id)
    with app_session(claims) as session:
        counts = {
            table: session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("assessments", "jobs")
        }
    counts["outbox"] = su_value(
        superuser, "SELECT count(*) FROM outbox WHERE tenant_id = %s", account.tenant_id
    )
    return counts


def account_rows(superuser: str) -> dict[str, int]:
    return {
        table: su_value(superuser, f"SELECT count(*) FROM {table}")  # noqa: S608
        for table in ("tenants", "users", "audit_events")
    }


def users_with_email(superuser: str, email: str) -> int:
    return su_value(
        superuser,
        "SELECT count(*) FROM users WHERE lower(email) = lower(%s) OR email = %s",
        email,
        email,
    )


# --- POST /api/v1/assessments -----------------------------------------------------------

ANSWERS_JSON = json.dumps(answers())[1:-1]  # the answers object's members, for raw bodies

ASSESSMENT_CASES = [
    pytest.param(Bad(raw(b'{"answers": {'), 400, "malformed_json"), id="malformed-json"),
    pytest.param(Bad(raw(b'{"answers": {},}'), 400, "malformed_json"), id="trailing-comma"),
    pytest.param(Bad(raw(b"{'answers': {}}"), 400, "malformed_json"), id="single-quotes"),
    # Unparseable before JSON decoding proper: FastAPI's own 400 (not malformed_json).
    pytest.param(Bad(raw(b'{"answers": "\xff"}'), 400, "bad_request"), id="not-utf8"),
    pytest.param(Bad(raw(b"[" * 100_000), 400, "bad_request"), id="nested-too-deep"),
    pytest.param(invalid("body", raw(b"")), id="empty-body"),
    pytest.param(invalid("body", raw(b"null")), id="json-null"),
    pytest.param(invalid("body", raw(b"[1, 2]")), id="json-array"),
    pytest.param(invalid(f"answers.{Q}", body(with_answer("3"))), id="string-answer"),
    pytest.param(invalid(f"answers.{Q}", body(with_answer(True))), id="bool-answer"),
    pytest.param(invalid(f"answers.{Q}", body(with_answer(3.0))), id="float-answer"),
    pytest.param(invalid(f"answers.{Q}", body(with_answer(3.5))), id="fraction-answer"),
    pytest.param(invalid(f"answers.{Q}", body(with_answer(None))), id="null-answer"),
    pytest.param(
        invalid(f"answers.{Q}", raw(f'{{"answers": {{{ANSWERS_JSON}, "{Q}": NaN}}}}'.encode())),
        id="nan-answer",
    ),
    pytest.param(invalid("answers", body({"answers": [3] * 20})), id="answers-as-list"),
    pytest.param(invalid("answers", body({"answers": "all threes"})), id="answers-as-string"),
    pytest.param(invalid("answers", body({})), id="missing-answers"),
    pytest.param(invalid("answers", body({"context": "no answers"})), id="only-context"),
    pytest.param(
        invalid(f"answers.{Q}", body({"answers": {k: v for k, v in answers().items() if k != Q}})),
        id="one-question-unanswered",
    ),
    pytest.param(
        invalid("answers.no.such_question", body(with_answer(3, "no.such_question"))),
        id="unknown-question-id",
    ),
    pytest.param(invalid(f"answers.{Q}", body(with_answer(-1))), id="below-range"),
    pytest.param(invalid(f"answers.{Q}", body(with_answer(6))), id="above-range"),
    pytest.param(invalid(f"answers.{Q}", body(with_answer(10**30))), id="huge-integer"),
    pytest.param(
        invalid("answers", body({"answers": {f"q{i}": 3 for i in range(201)}})),
        id="too-many-answers",
    ),
    pytest.param(
        invalid("tenant_id", body({**with_answer(3), "tenant_id": str(uuid.uuid4())})),
        id="unknown-top-level-field",
    ),
    pytest.param(
        invalid("context", body({"answers": answers(), "context": "x" * 2001})),
        id="context-too-long",
    ),
    pytest.param(
        invalid("context", body({"answers": answers(), "context": 42})), id="context-not-a-string"
    ),
    # Postgres text cannot hold NUL: must be a 422, not a 500 at the INSERT.
    pytest.param(
        invalid("context", body({"answers": answers(), "context": "a\x00b"})), id="context-with-nul"
    ),
    # A lone surrogate in an answer key is echoed in the details: it must still render.
    pytest.param(
        invalid(None, raw(f'{{"answers": {{{ANSWERS_JSON}, "\\ud800": 3}}}}'.encode())),
        id="answer-key-lone-surrogate",
    ),
    pytest.param(
        invalid(
            "context", raw(f'{{"answers": {{{ANSWERS_JSON}}}, "context": "\\udfff"}}'.encode())
        ),
        id="context-lone-surrogate",
    ),
]

WRONG_CONTENT_TYPES = [
    pytest.param("text/plain", id="text-plain"),
    pytest.param("application/x-www-form-urlencoded", id="form-urlencoded"),
    pytest.param("application/xml", id="xml"),
    pytest.param(None, id="no-content-type"),
]


@pytest.mark.parametrize("bad", ASSESSMENT_CASES)
def test_bad_assessment_is_rejected_and_writes_nothing(http, account, superuser, bad):
    before = tenant_writes(account, superuser)
    response = http.post(
        "/api/v1/assessments",
        headers=account.headers | bad.request.get("headers", {}),
        **{k: v for k, v in bad.request.items() if k != "headers"},
    )
    assert_error_envelope(response, bad)
    assert tenant_writes(account, superuser) == before


@pytest.mark.parametrize("content_type", WRONG_CONTENT_TYPES)
def test_valid_json_under_a_wrong_content_type_is_rejected_and_writes_nothing(
    http, account, superuser, content_type
):
    """The body is a valid assessment: only the content type is wrong. (Today FastAPI
    answers 422 "valid dictionary" at field `body`; a 415 would be the more precise status.)"""
    before = tenant_writes(account, superuser)
    request = raw(json.dumps({"answers": answers()}).encode(), content_type)
    response = http.post(
        "/api/v1/assessments",
        content=request["content"],
        headers=account.headers | request["headers"],
    )
    assert response.status_code in (415, 422), response.text
    expected = "unsupported_media_type" if response.status_code == 415 else "validation_error"
    assert_error_envelope(response, Bad(request, response.status_code, expected))
    assert tenant_writes(account, superuser) == before


def test_control_a_valid_assessment_is_counted(http, account, superuser):
    """Control for the counts above: a good request does show up in them."""
    before = tenant_writes(account, superuser)
    response = http.post(
        "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
    )
    assert response.status_code == 202, response.text
    after = tenant_writes(account, superuser)
    assert after == {table: count + 1 for table, count in before.items()}


# --- POST /api/v1/auth/signup -----------------------------------------------------------


def signup_body(**overrides: Any) -> dict[str, Any]:
    fields = {
        "email": f"bad-input-{uuid.uuid4().hex[:12]}@example.com",
        "password": PASSWORD,
        "tenant_name": "Bad Input Co",
    }
    return {**fields, **overrides}


SIGNUP_CASES = [
    pytest.param(
        Bad(raw(b'{"email": "x@example.com", '), 400, "malformed_json"), id="malformed-json"
    ),
    pytest.param(
        invalid("tenant_name", body(signup_body(tenant_name="t" * 201))), id="tenant-name-too-long"
    ),
    pytest.param(invalid("tenant_name", body(signup_body(tenant_name=""))), id="tenant-name-empty"),
    pytest.param(
        invalid("tenant_name", body(signup_body(tenant_name="Acme\x00"))), id="tenant-name-with-nul"
    ),
    pytest.param(
        invalid("tenant_name", body(signup_body(tenant_name=7))), id="tenant-name-not-a-string"
    ),
    pytest.param(
        invalid("email", body(signup_body(email="a" * 64 + "@" + "b" * 260 + ".com"))),
        id="email-too-long",
    ),
    pytest.param(invalid("email", body(signup_body(email="not-an-email"))), id="email-invalid"),
    pytest.param(
        invalid("email", body(signup_body(email="two@@example.com"))), id="email-double-at"
    ),
    pytest.param(
        invalid("password", body(signup_body(password="p" * 257))), id="password-too-long"
    ),
    pytest.param(invalid("password", body(signup_body(password="short"))), id="password-too-short"),
    # A lone surrogate cannot be encoded for the hash: a 422, not a 500 in argon2.
    pytest.param(
        invalid(
            "password",
            raw(json.dumps(signup_body(password="\ud800" + "p" * 12), ensure_ascii=True).encode()),
        ),
        id="password-lone-surrogate",
    ),
    pytest.param(invalid("role", body(signup_body(role="admin"))), id="unknown-field-role"),
    pytest.param(invalid("plan", body(signup_body(plan="pro"))), id="unknown-field-plan"),
    pytest.param(
        invalid("email", body({"password": PASSWORD, "tenant_name": "T"})), id="missing-email"
    ),
]


@pytest.mark.parametrize("bad", SIGNUP_CASES)
def test_bad_signup_is_rejected_and_writes_nothing(http, superuser, bad):
    before = account_rows(superuser)
    response = http.post("/api/v1/auth/signup", **bad.request)
    assert_error_envelope(response, bad)
    assert account_rows(superuser) == before
    email = bad.request.get("json", {}).get("email")
    if isinstance(email, str):
        assert users_with_email(superuser, email) == 0


def test_control_a_valid_signup_is_counted(http, superuser):
    before = account_rows(superuser)
    payload = signup_body()
    assert http.post("/api/v1/auth/signup", json=payload).status_code == 202
    after = account_rows(superuser)
    assert after == {
        "tenants": before["tenants"] + 1,
        "users": before["users"] + 1,
        "audit_events": before["audit_events"] + 1,
    }
    assert users_with_email(superuser, payload["email"]) == 1


def test_login_with_a_lone_surrogate_password_is_a_4xx_not_a_500(http, account):
    payload = {"email": account.email, "password": "\ud800" + "p" * 12}
    response = http.post(
        "/api/v1/auth/login",
        content=json.dumps(payload, ensure_ascii=True).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (401, 422), response.text
    assert "trace_id" in response.json()["error"]


# --- bodies over the limit: 413 ---------------------------------------------------------


def _oversized(path: str) -> bytes:
    """Valid JSON over 1 MiB; under the limit it would get a 422 (context or name too long),
    so a 413 can only come from the size limit."""
    filler = "x" * (MAX_BODY + 1)
    if path == "/api/v1/assessments":
        return json.dumps({"answers": answers(), "context": filler}).encode()
    return json.dumps(signup_body(tenant_name=filler)).encode()


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("path", ["/api/v1/assessments", "/api/v1/auth/signup"])
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_body_over_one_mib_is_413_and_writes_nothing(http, account, superuser, path, streamed):
    data = _oversized(path)
    before = (tenant_writes(account, superuser), account_rows(superuser))
    response = http.post(
        path,
        content=_chunks(data) if streamed else data,
        headers=account.headers | {"content-type": "application/json"},
    )
    if streamed:
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
    else:
        assert int(response.request.headers["content-length"]) > MAX_BODY
    assert_error_envelope(response, Bad({}, 413, "payload_too_large"))
    assert (tenant_writes(account, superuser), account_rows(superuser)) == before


# --- query parameters and path ids ------------------------------------------------------


def cursor_of(raw_text: bytes) -> str:
    return base64.urlsafe_b64encode(raw_text).decode()


BAD_LIST_PARAMS = [
    pytest.param({"limit": "0"}, "limit", id="limit-zero"),
    pytest.param({"limit": "-1"}, "limit", id="limit-negative"),
    pytest.param({"limit": "101"}, "limit", id="limit-over-max"),
    pytest.param({"limit": "abc"}, "limit", id="limit-not-a-number"),
    pytest.param({"limit": "1.5"}, "limit", id="limit-fraction"),
    pytest.param({"limit": ""}, "limit", id="limit-empty"),
    pytest.param({"limit": "9" * 40}, "limit", id="limit-huge"),
    pytest.param({"cursor": "!!!"}, "cursor", id="cursor-not-base64"),
    pytest.param({"cursor": "abc"}, "cursor", id="cursor-bad-padding"),
    pytest.param({"cursor": "a" * 201}, "cursor", id="cursor-too-long"),
    pytest.param({"cursor": cursor_of(b"no separator")}, "cursor", id="cursor-no-separator"),
    pytest.param({"cursor": cursor_of(b"a|b|c")}, "cursor", id="cursor-three-parts"),
    pytest.param(
        {"cursor": cursor_of(b"not-a-date|" + str(uuid.uuid4()).encode())},
        "cursor",
        id="cursor-bad-date",
    ),
    pytest.param(
        {"cursor": cursor_of(b"2024-01-01T00:00:00+00:00|not-a-uuid")},
        "cursor",
        id="cursor-bad-uuid",
    ),
    pytest.param({"cursor": cursor_of(b"\xff\xfe|\x00")}, "cursor", id="cursor-not-utf8"),
    pytest.param({"cursor": "\x00"}, "cursor", id="cursor-nul"),
]


@pytest.mark.parametrize("params, field_name", BAD_LIST_PARAMS)
def test_bad_list_parameters_are_422(http, account, params, field_name):
    response = http.get("/api/v1/assessments", params=params, headers=account.headers)
    assert_error_envelope(response, Bad({}, 422, "validation_error", field_name))


BAD_PATH_IDS = [
    pytest.param("/api/v1/assessments/not-a-uuid", "assessment_id", id="assessment-word"),
    pytest.param("/api/v1/assessments/123", "assessment_id", id="assessment-number"),
    pytest.param("/api/v1/assessments/%00", "assessment_id", id="assessment-nul"),
    pytest.param(
        f"/api/v1/assessments/{uuid.uuid4()}x", "assessment_id", id="assessment-uuid-plus"
    ),
    pytest.param("/api/v1/roadmaps/not-a-uuid", "roadmap_id", id="roadmap-word"),
    pytest.param("/api/v1/roadmaps/" + "f" * 1000, "roadmap_id", id="roadmap-long"),
    pytest.param("/api/v1/roadmaps/%27%20OR%201%3D1--", "roadmap_id", id="roadmap-sql-ish"),
]


@pytest.mark.parametrize("path, field_name", BAD_PATH_IDS)
def test_non_uuid_path_id_is_422(http, account, path, field_name):
    response = http.get(path, headers=account.headers)
    assert_error_envelope(response, Bad({}, 422, "validation_error", field_name))
