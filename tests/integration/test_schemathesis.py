"""Schemathesis fuzzes the running app from its own OpenAPI, as a real signed-up user.

Every operation gets schema-valid (positive) and schema-violating (negative) requests, over
a real socket to the uvicorn serving the app. Path ids are random or, half of the time, the
user's real assessment, so the 2xx branches run too. Checked on every response:

- no 5xx (schemathesis' `not_a_server_error`): bad input is never a 500;
- 2xx and 422 bodies conform to the documented response schema
  (`response_schema_conformance`; 422 is documented as our envelope, `ErrorEnvelope`,
  not FastAPI's `HTTPValidationError`: `kit/http_errors.py::document_error_envelope`);
- 4xx bodies are our error envelope with the request's trace_id.

Failures are collected, not raised at once: no shrinking, a bounded run, and one report
of every failure with a curl line to reproduce it. Derandomized, so CI sees the same
requests on every run; at least MIN_REQUESTS of them.
"""

from __future__ import annotations

import collections
import warnings

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance
from tests.support import httpclient
from tests.support.users import answers, signup

MIN_REQUESTS = 1000
EXAMPLES_PER_MODE = 30  # per operation; operations with few inputs exhaust theirs sooner
ENVELOPE_KEYS = {"code", "message", "details", "trace_id"}


def _envelope_problem(response: schemathesis.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    error = body.get("error") if isinstance(body, dict) and set(body) == {"error"} else None
    if not isinstance(error, dict) or not {"code", "message", "trace_id"} <= set(error):
        return f"not the error envelope: {str(body)[:200]}"
    if not set(error) <= ENVELOPE_KEYS:
        return f"unexpected envelope keys {sorted(set(error) - ENVELOPE_KEYS)}"
    if [error["trace_id"]] != response.headers.get("x-request-id"):  # lowercase, list values
        return "envelope trace_id differs from X-Request-ID"
    return None


class Fuzzer:
    """Sends cases, runs the checks, counts and collects without raising."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = requests.Session()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.server_errors = 0
        self.failures: list[str] = []

    def send(self, case: schemathesis.Case) -> None:
        response = case.call(base_url=self.base_url, session=self.session, headers=self.headers)
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.server_errors += 1
        checks = [not_a_server_error]
        if 200 <= response.status_code < 300 or response.status_code == 422:
            checks.append(response_schema_conformance)
        try:
            case.validate_response(response, checks=checks, headers=self.headers)
        except (FailureGroup, AssertionError) as exc:  # one failure, or several at once
            self._fail(case, response, str(exc))
        if 400 <= response.status_code < 500 and (problem := _envelope_problem(response)):
            self._fail(case, response, problem)

    def _fail(self, case: schemathesis.Case, response: schemathesis.Response, problem: str) -> None:
        curl = case.as_curl_command(headers=self.headers)
        self.failures.append(
            f"{case.operation.label} -> {response.status_code}: {problem[:600]}\n    {curl[:600]}"
        )

    def run(self, operation, mode: GenerationMode, real_ids: dict[str, str]) -> None:
        strategy = operation.as_strategy(generation_mode=mode)
        names = {p.name for p in operation.path_parameters}
        fixed = {k: v for k, v in real_ids.items() if k in names}
        if fixed:
            strategy = st.one_of(
                strategy, operation.as_strategy(generation_mode=mode, path_parameters=fixed)
            )

        @settings(
            max_examples=EXAMPLES_PER_MODE,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            self.send(case)

        try:
            fuzz()
        except HypothesisException as exc:  # e.g. no negative value exists for this operation
            warnings.warn(f"{operation.label} [{mode}]: {type(exc).__name__}", stacklevel=1)


@pytest.mark.slow
def test_fuzzing_the_openapi_finds_no_5xx_and_conforming_responses(api: str):
    with httpclient.client(base_url=api, timeout=30) as http:
        account = signup(http, "Fuzz Co")
        created = http.post(
            "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
        )
        assert created.status_code == 202, created.text
    real_ids = {"assessment_id": created.json()["id"], "user_id": account.user_id}

    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    fuzzer = Fuzzer(api, account.token)
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzzer.run(operation, mode, real_ids)

    total = sum(fuzzer.statuses.values())
    print(  # the closing note's figures; visible with -s or on failure
        f"schemathesis: {len(operations)} operations, {total} requests, "
        f"{fuzzer.server_errors} 5xx, statuses {dict(sorted(fuzzer.statuses.items()))}"
    )
    assert fuzzer.server_errors == 0 and not fuzzer.failures, "\n".join(fuzzer.failures[:20])
    assert total >= MIN_REQUESTS, f"only {total} requests: raise EXAMPLES_PER_MODE"
    assert sum(n for s, n in fuzzer.statuses.items() if s < 300) > 0  # some inputs got through
