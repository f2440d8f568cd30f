"""HTTP for LLM providers: one async JSON POST with a hard deadline, the pooled clients, and
the error classification.

Calls go through ``httpx.AsyncClient``, one per event loop (``shared_client``): an asyncio
client's connections belong to the loop that opened them, and the tests run several loops
in one process. Each client opens up to ``LLM_MAX_CONNECTIONS`` connections at once, so as
many calls can be in flight. A call beyond that waits for a free connection, within its
deadline; keep the limit above the calls a process runs at once so none waits: besides the
wasted time, httpcore 1.0.9 can leak a pool slot when a call is cancelled (here: by its
deadline) just as it is handed a new connection while queued (encode/httpcore#1093).

Keep-alive: ``KEEPALIVE_CONNECTIONS`` (20, httpx's default) idle connections, expiring after
5 s. While no more than 20 connections are open, calls reuse them; past that (high
concurrency) httpcore 1.0.9 closes each connection when its call ends, so each call opens
its own (a TCP and TLS handshake). Keeping more alive costs more: httpcore's pool rescans
all its connections for each idle one on every request (quadratic; encode/httpcore#1035,
unmerged), which measured ~20 ms of CPU per call with 200 connections kept alive against
~5 ms for the whole call without (``bench/llm_stage.py``).

The deadline is one ``asyncio.timeout`` around the whole exchange, connect to last byte:
the body is streamed (and its size checked as it arrives), and a server trickling a slow
answer is cut off at the deadline, not after a per-read timeout restarted by each chunk.
httpx's own per-operation timeouts are off: the deadline alone decides.

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

import asyncio
import email.utils
import json
import re
import weakref
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
    "aclose_clients",
    "parse_model_json",
    "parse_retry_after",
    "post_json",
    "shape_error",
    "shared_client",
]

M = TypeVar("M", bound=BaseModel)
MAX_RESPONSE_BYTES = 2_000_000
KEEPALIVE_CONNECTIONS = 20  # httpx's default; more is slower (see above)
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


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, httpx.AsyncClient]]
_clients = weakref.WeakKeyDictionary()


def shared_client(max_connections: int) -> httpx.AsyncClient:
    """The running loop's pooled client with this connection limit (made on first use)."""
    for loop in [loop for loop in list(_clients) if loop.is_closed()]:
        # A client's connections refer to their loop, so its entry would outlive the loop:
        # drop what a finished loop left behind (its sockets close when collected).
        _clients.pop(loop, None)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(max_connections)
    if client is None:
        client = per_loop[max_connections] = httpx.AsyncClient(
            timeout=None,  # noqa: S113 - post_json bounds each exchange with asyncio.timeout
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=KEEPALIVE_CONNECTIONS
            ),
            follow_redirects=False,
            headers={"user-agent": "rampart"},
        )
    return client


async def aclose_clients() -> None:
    """Close the running loop's clients and their pooled connections (before the loop ends:
    a worker's shutdown, a test's teardown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    headers: dict[str, str],
    payload: dict[str, Any],
    timeout: float,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """POST ``payload`` as JSON and return the JSON object answered, or raise an LLMError.

    ``timeout`` bounds the whole exchange (connect to last byte), not each socket
    operation: the body is streamed, its size checked as it arrives, and the exchange is
    cancelled at the deadline. ``secrets`` (API keys) are masked out of any error message.
    """
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", url, headers=headers, json=payload) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise DefinitiveLLMError(
                            f"{provider}: response larger than {MAX_RESPONSE_BYTES} bytes"
                        )
    except (TimeoutError, httpx.TimeoutException):
        raise LLMTimeoutError(f"{provider}: no complete answer within {timeout:g}s") from None
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
    """Shared plumbing of the HTTP providers: the running loop's pooled client, the deadline,
    the key kept out of messages. Subclasses build the request and read the text answer in
    ``_complete``; the prompts and answer checks come from ``prompts``.

    A provider holds no connection itself (``shared_client`` does, per event loop), so one
    instance serves every loop of the process.
    """

    name: str = "http"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float,
        max_connections: int = 512,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_connections = max_connections
        self._api_key = api_key or ""

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r})"

    async def score(self, answers: dict[str, int], context: str | None) -> ScoreResult:
        return await self._run(prompts.score_task(answers, context))

    async def roadmap(
        self, answers: dict[str, int], score: ScoreResult, context: str | None
    ) -> RoadmapResult:
        return await self._run(prompts.roadmap_task(answers, score, context))

    async def _run(self, task: prompts.Task[M]) -> M:
        text = await self._complete(task.system, task.user)
        result = parse_model_json(self.name, text, task.schema)
        try:
            task.check(result)
        except ValueError as exc:
            raise DefinitiveLLMError(f"{self.name}: {task.kind} answer rejected: {exc}") from None
        return result

    async def _complete(self, system: str, user: str) -> str | None:
        raise NotImplementedError

    async def _post(
        self, url: str, headers: dict[str, str], payload: dict[str, Any]
    ) -> dict[str, Any]:
        return await post_json(
            shared_client(self.max_connections),
            url,
            provider=self.name,
            headers=headers,
            payload=payload,
            timeout=self.timeout,
            secrets=(self._api_key,),
        )


def shape_error(provider: str, what: str) -> DefinitiveLLMError:
    """The provider answered 2xx JSON, but not in its documented shape."""
    return DefinitiveLLMError(f"{provider}: unexpected response shape ({what})")
