"""HTTP for LLM providers: one JSON POST with a hard deadline, and the error classification.

Every outcome becomes either a parsed JSON body or an ``LLMError`` that says whether to retry:

| outcome                                         | error                          |
| ----------------------------------------------- | ------------------------------ |
| timeout (connect, read, or the total deadline)  | ``LLMTimeoutError`` (transient) |
| connection refused/reset, protocol error        | ``TransientLLMError``          |
| bad base URL, undecodable body                  | ``DefinitiveLLMError``         |
| HTTP 429 (``Retry-After`` kept as seconds)      | ``LLMRateLimitedError`` (transient) |
| HTTP 408, 5xx (incl. Anthropic's 529)           | ``LLMHTTPError`` (transient)   |
| HTTP 400, 401, 403, 404, other 4xx, 3xx         | ``LLMHTTPStatusError`` (definitive) |
| body not JSON, too large; model output not JSON | ``DefinitiveLLMError``         |
| model output not matching the strict schema     | ``DefinitiveLLMError``         |

Error messages carry the status and the vendor's error type and (scrubbed, truncated)
message, never request content or model output (either may echo the tenant's context)
and never an API key.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from rampart.llm import prompts
from rampart.llm.base import DefinitiveLLMError, TransientLLMError
from rampart.llm.schemas import RoadmapResult, ScoreResult

__all__ = [
    "HTTPProvider",
    "LLMHTTPError",
    "LLMHTTPStatusError",
    "LLMRateLimitedError",
    "LLMTimeoutError",
    "parse_retry_after",
    "parse_model_json",
    "post_json",
    "shape_error",
]

M = TypeVar("M", bound=BaseModel)
MAX_RESPONSE_BYTES = 2_000_000
_KEYISH = re.compile(r"\b(sk|key|pk|rk)-[A-Za-z0-9_\-*.]{6,}")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.S)


class LLMTimeoutError(TransientLLMError):
    """The provider did not answer within the deadline."""


class LLMHTTPError(TransientLLMError):
    """The provider answered with a retryable HTTP status (408, 5xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class LLMRateLimitedError(LLMHTTPError):
    """HTTP 429. ``retry_after`` holds the server's requested delay in seconds, if any."""

    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class LLMHTTPStatusError(DefinitiveLLMError):
    """The provider refused the request (4xx other than 408/429, or an unexpected 3xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def post_json(
    client: httpx.Client,
    url: str,
    *,
    provider: str,
    headers: dict[str, str],
    payload: dict[str, Any],
    timeout: float,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """POST ``payload`` as JSON and return the JSON object answered, or raise an LLMError.

    ``timeout`` bounds the whole exchange (connect to last byte), not only each socket
    operation: the body is streamed and the deadline checked between chunks. ``secrets``
    (API keys) are masked out of any error message.
    """
    deadline = time.monotonic() + timeout
    try:
        with client.stream(
            "POST", url, headers=headers, json=payload, timeout=httpx.Timeout(timeout)
        ) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise LLMTimeoutError(f"{provider}: no complete answer within {timeout:g}s")
                if len(body) > MAX_RESPONSE_BYTES:
                    raise DefinitiveLLMError(
                        f"{provider}: response larger than {MAX_RESPONSE_BYTES} bytes"
                    )
    except httpx.TimeoutException as exc:
        raise LLMTimeoutError(
            f"{provider}: timed out after {timeout:g}s ({type(exc).__name__})"
        ) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # a bad *_BASE_URL
        raise DefinitiveLLMError(f"{provider}: {type(exc).__name__}: {exc}") from None
    except httpx.TransportError as exc:  # connect/read/write errors, protocol errors
        raise TransientLLMError(f"{provider}: {type(exc).__name__}: {exc}") from None
    except httpx.HTTPError as exc:  # e.g. a body that cannot be decoded
        raise DefinitiveLLMError(f"{provider}: {type(exc).__name__}: {exc}") from None

    status = response.status_code
    if status >= 300:
        detail = _scrub(_error_detail(bytes(body)), secrets)
        message = f"{provider}: HTTP {status}" + (f" ({detail})" if detail else "")
        if status == 429:
            raise LLMRateLimitedError(message, status, parse_retry_after(response.headers))
        if status == 408 or status >= 500:
            raise LLMHTTPError(message, status)
        raise LLMHTTPStatusError(message, status)
    try:
        data = json.loads(bytes(body))
    except ValueError:
        raise DefinitiveLLMError(
            f"{provider}: HTTP {status} with a body that is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise DefinitiveLLMError(
            f"{provider}: HTTP {status} with a JSON body that is not an object"
        )
    return data


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or an
    HTTP date). None when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def parse_model_json(provider: str, text: str | None, schema: type[M]) -> M:
    """Validate the model's text answer against a strict schema, or raise DefinitiveLLMError.

    Accepts the JSON object alone or inside one Markdown code fence (models add them even
    when told not to). The error names what was wrong, never the output itself."""
    if not text or not text.strip():
        raise DefinitiveLLMError(f"{provider}: empty answer")
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        raise DefinitiveLLMError(f"{provider}: answer is not valid JSON") from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise DefinitiveLLMError(
            f"{provider}: answer does not match {schema.__name__} "
            f"({exc.error_count()} problem(s): {problems})"
        ) from None


def _error_detail(body: bytes) -> str:
    """The vendor's error type and message (OpenAI and Anthropic shapes), truncated."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return error[:200]
    if not isinstance(error, dict):
        return ""
    kind = error.get("type") or error.get("code") or ""
    message = str(error.get("message") or "")[:200]
    return ": ".join(str(part) for part in (kind, message) if part)


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEYISH.sub("[redacted]", text)


class HTTPProvider:
    """Shared plumbing of the HTTP providers: a pooled client per process, the deadline,
    the key kept out of messages. Subclasses build the request and read the text answer in
    ``_complete``; the prompts and answer checks come from ``prompts``.

    The client is created lazily and again after a fork (a Celery prefork child must not
    share its parent's sockets). ``transport`` is injectable for tests.
    """

    name: str = "http"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key or ""
        self._transport = transport
        self._client: httpx.Client | None = None
        self._client_pid = 0

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r})"

    def score(self, answers: dict[str, int], context: str | None) -> ScoreResult:
        return self._run(prompts.score_task(answers, context))

    def roadmap(
        self, answers: dict[str, int], score: ScoreResult, context: str | None
    ) -> RoadmapResult:
        return self._run(prompts.roadmap_task(answers, score, context))

    def _run(self, task: prompts.Task[M]) -> M:
        result = parse_model_json(self.name, self._complete(task.system, task.user), task.schema)
        try:
            task.check(result)
        except ValueError as exc:
            raise DefinitiveLLMError(f"{self.name}: {task.kind} answer rejected: {exc}") from None
        return result

    def _complete(self, system: str, user: str) -> str | None:
        raise NotImplementedError

    def _post(self, url: str, headers: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
        return post_json(
            self._http(),
            url,
            provider=self.name,
            headers=headers,
            payload=payload,
            timeout=self.timeout,
            secrets=(self._api_key,),
        )

    def _http(self) -> httpx.Client:
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            self._client = httpx.Client(
                transport=self._transport,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                headers={"user-agent": "rampart"},
            )
            self._client_pid = pid
        return self._client

    def close(self) -> None:
        if self._client is not None and self._client_pid == os.getpid():
            self._client.close()
        self._client = None


def shape_error(provider: str, what: str) -> DefinitiveLLMError:
    """The provider answered 2xx JSON, but not in its documented shape."""
    return DefinitiveLLMError(f"{provider}: unexpected response shape ({what})")
