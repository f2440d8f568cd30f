"""A local fake LLM server speaking the OpenAI and Anthropic wire formats, with fault injection.

For tests, benchmarks and demos (``rampart fake-llm``): no network, no key, deterministic
answers. It reads the input document our prompts embed (``prompts.read_input``) and answers
what the offline provider would, so results are valid and realistic; a prompt it cannot
read gets the offline answer for an empty questionnaire (still valid JSON of the schema).

Endpoints
    POST /v1/chat/completions, /chat/completions   OpenAI chat completions
    POST /v1/messages                              Anthropic Messages
    POST /_faults   set a fault:   {"mode": "...", "status": 500, "retry_after": 1,
                                    "latency": 2.0, "times": N, "target": "openai"}
    GET  /_faults   the faults in force
    GET  /_stats    calls so far: {"total", "providers": {...}, "paths": {...}, "in_flight",
                    "max_in_flight"} (LLM calls being answered now, and the most at once)
    POST /_reset    no faults, counters to zero (calls still answered are cut off)

Fault modes (``times`` = apply to the next N calls, then back to ok; omitted = until
changed; ``target`` = only ``openai`` or ``anthropic`` calls, omitted = both):
    ok              answer normally
    error           HTTP ``status`` (default 500) with the vendor's error body
    status          HTTP ``status`` (default 400), e.g. 401, 404, 529
    rate_limit      HTTP 429, with ``Retry-After: <retry_after>`` when given
    latency         wait ``latency`` seconds, then answer normally
    hang            accept the request and never answer (until ``hang`` seconds, default
                    600, or the server stops)
    malformed_json  HTTP 200, the model's text is not JSON
    wrong_schema    HTTP 200, valid JSON that does not match the schema
    drip            HTTP 200 with a valid answer trickled out in 20 pieces, ``latency``
                    seconds apart (each piece on time, the whole answer late)

Each connection is served by its own thread, so slow answers (``latency``, ``hang``,
``drip``) overlap: hundreds of calls can be in flight at once (``max_in_flight`` says how
many were). The listen backlog is deep enough for a burst of that many connections.

Like the real APIs, requests without ``model``/``messages`` (and, for Anthropic,
``max_tokens`` and the ``anthropic-version`` header) get a 400; when the server is given an
``api_key``, a request without it gets a 401. Every call is counted, faulted or not.

    with FakeLLMServer() as fake:       # background thread on a free port
        fake.set_fault("error", status=500, times=2)
        ... OPENAI_BASE_URL=f"{fake.url}/v1", ANTHROPIC_BASE_URL=fake.url ...
        fake.stats()["providers"]["openai"]
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rampart.llm import prompts
from rampart.llm.offline import plan_roadmap, score_answers
from rampart.llm.schemas import ScoreResult

__all__ = ["MODES", "Fault", "FakeLLMServer", "serve"]

# `rampart fake-llm --help` describes each mode too (tests/unit/test_cli_help.py: all of them).
MODES = (
    "ok",
    "error",
    "status",
    "rate_limit",
    "latency",
    "hang",
    "malformed_json",
    "wrong_schema",
    "drip",
)
TARGETS = ("openai", "anthropic")
_PATHS = {
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
    "/v1/messages": "anthropic",
}
_MAX_BODY = 5_000_000
_BACKLOG = 1024  # socketserver's default of 5 drops a burst of connects (SYN retried after 1 s)
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    529: "overloaded_error",
}


@dataclass
class Fault:
    mode: str = "ok"
    status: int | None = None
    retry_after: float | None = None
    latency: float = 0.0
    hang: float = 600.0
    times: int | None = None  # None: until changed
    target: str | None = None  # None: both providers

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        fault = cls(**data)
        if fault.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if fault.target is not None and fault.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS} or null")
        if fault.times is not None and (not isinstance(fault.times, int) or fault.times < 1):
            raise ValueError("times must be a positive integer or null")
        if fault.status is not None and not (
            isinstance(fault.status, int) and 100 <= fault.status <= 599
        ):
            raise ValueError("status must be an HTTP status code")
        return fault


class FakeLLMServer:
    """The server and its state; runs in a background thread (``start``/context manager) or
    in the foreground (``serve_forever``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        self.api_key = api_key
        self._lock = threading.Lock()
        self._faults: dict[str | None, Fault] = {}
        self._calls: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._in_flight = 0
        self._max_in_flight = 0
        # Set to end the waits (hang, latency, drip) of the calls being answered: by `stop`,
        # and by `reset`, which then starts a new one for the calls after it.
        self._cut = threading.Event()
        self._thread: threading.Thread | None = None
        # The last requests (path, lower-cased headers, JSON body), for tests to inspect;
        # bounded so a long benchmark run does not grow without limit.
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self.httpd = _Server((host, port), _handler_for(self))

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._cut.set()
            self.httpd.server_close()

    def stop(self) -> None:
        self._cut.set()  # wakes hanging and slow handlers
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- control (also over HTTP) ----------------------------------------------------------

    def set_fault(self, mode: str = "ok", **options: Any) -> Fault:
        fault = Fault.from_json({"mode": mode, **options})
        with self._lock:
            if fault.mode == "ok" and fault.times is None:
                self._faults.pop(fault.target, None)
                if fault.target is None:
                    self._faults.clear()
            else:
                self._faults[fault.target] = fault
        return fault

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults.values()]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            paths = dict(self._calls)
            in_flight, max_in_flight = self._in_flight, self._max_in_flight
        providers = dict.fromkeys(TARGETS, 0)
        for path, count in paths.items():
            providers[_PATHS[path]] += count
        return {
            "total": sum(paths.values()),
            "providers": providers,
            "paths": paths,
            "in_flight": in_flight,
            "max_in_flight": max_in_flight,
        }

    def calls(self, provider: str | None = None) -> int:
        stats = self.stats()
        return stats["total"] if provider is None else stats["providers"][provider]

    def max_in_flight(self) -> int:
        """The most LLM calls this server was answering at once (since the last reset)."""
        return self.stats()["max_in_flight"]

    def reset(self) -> None:
        """No faults, counters to zero. The calls still being answered under an earlier
        fault (a hang lasts 600 s) are cut off first, so none of them counts after it."""
        with self._lock:
            cut, self._cut = self._cut, threading.Event()
            self._faults.clear()
        cut.set()
        deadline = time.monotonic() + 5
        while self.stats()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self._calls.clear()
            self.requests.clear()
            self._max_in_flight = self._in_flight

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """Count one LLM call in flight while it is being answered."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _take_fault(self, provider: str, path: str, record: dict[str, Any]) -> Fault:
        """Count the call and pick (and use up) the fault that applies to it."""
        with self._lock:
            self._calls[path] += 1
            self.requests.append(record)
            for key in (provider, None):
                fault = self._faults.get(key)
                if fault is None:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[key]
                return Fault(**{**asdict(fault), "times": None})
        return Fault()

    def _wait(self, seconds: float) -> bool:
        """Sleep unless the server stops or is reset first; True if it did."""
        return self._cut.wait(max(0.0, seconds))


def _answer_text(document: dict[str, Any] | None) -> str:
    """What a well-behaved model answers: the offline provider's result as JSON."""
    document = document or {}
    questions = document.get("questions")
    answers: dict[str, int] = {}
    if isinstance(questions, list):
        for q in questions:
            if isinstance(q, dict) and isinstance(q.get("id"), str):
                answers[q["id"]] = q.get("answer")  # type: ignore[assignment]
    if document.get("task") == "roadmap":
        try:
            scored = ScoreResult.model_validate(document.get("score"))
        except ValueError:
            scored = score_answers(answers)
        return plan_roadmap(answers, scored).model_dump_json()
    return score_answers(answers).model_dump_json()


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection; ``stop`` does not wait for idle keep-alive ones."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = _BACKLOG


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "rampart-fake-llm"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        # --- plumbing ----------------------------------------------------------------------

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            if length > _MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(length) if length else b""

        def _send(
            self, status: int, body: Any, headers: dict[str, str] | None = None, raw=False
        ) -> None:
            data = body if raw else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        # --- control -----------------------------------------------------------------------

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/_stats":
                self._send(200, server.stats())
            elif self.path == "/_faults":
                self._send(200, {"faults": server.faults()})
            elif self.path in ("/", "/health"):
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"type": "not_found", "message": "no such path"}})

        def do_POST(self) -> None:  # noqa: N802
            try:
                raw = self._body()
            except ValueError:
                self._send(413, {"error": {"type": "too_large", "message": "body too large"}})
                self.close_connection = True
                return
            if self.path == "/_faults":
                try:
                    fault = server.set_fault(**json.loads(raw or b"{}"))
                except (ValueError, TypeError) as exc:
                    self._send(400, {"error": {"type": "bad_fault", "message": str(exc)}})
                    return
                self._send(200, {"fault": asdict(fault)})
            elif self.path == "/_reset":
                server.reset()
                self._send(200, {"reset": True})
            elif self.path in _PATHS:
                with server._answering():
                    self._llm(_PATHS[self.path], raw)
            else:
                self._send(404, {"error": {"type": "not_found", "message": "no such path"}})

        # --- the LLM endpoints -------------------------------------------------------------

        def _llm(self, provider: str, raw: bytes) -> None:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            fault = server._take_fault(
                provider, self.path, {"path": self.path, "headers": headers, "json": body}
            )

            problem = _request_problem(provider, body, headers, server.api_key)
            if problem is not None:
                status, kind, message = problem
                self._send(status, _error_body(provider, kind, message))
                return

            mode = fault.mode
            if mode == "hang":
                server._wait(fault.hang)
                self.close_connection = True
                return
            if mode == "latency" and server._wait(fault.latency):
                self.close_connection = True
                return
            if mode in ("error", "status"):
                status = fault.status or (500 if mode == "error" else 400)
                kind = _ERROR_TYPES.get(
                    status, "server_error" if status >= 500 else "invalid_request_error"
                )
                self._send(status, _error_body(provider, kind, f"injected HTTP {status}"))
                return
            if mode == "rate_limit":
                extra = {}
                if fault.retry_after is not None:
                    extra["retry-after"] = f"{fault.retry_after:g}"
                self._send(
                    429,
                    _error_body(provider, "rate_limit_error", "injected rate limit"),
                    extra,
                )
                return

            document = _input_document(provider, body)
            if mode == "malformed_json":
                text = '{"overall": 42, "dimensions": {"observability": {"score": '
            elif mode == "wrong_schema":
                text = json.dumps({"overall": "excellent", "verdict": "ship it", "items": "many"})
            else:
                text = _answer_text(document)
            model = str(body.get("model")) if isinstance(body, dict) else "fake"
            answer = _success_body(provider, model, text, next(server._ids))
            if mode == "drip":
                self._drip(json.dumps(answer).encode(), fault.latency)
            else:
                self._send(200, answer)

        def _drip(self, data: bytes, pause: float, pieces: int = 20) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            size = -(-len(data) // pieces)
            try:
                for start in range(0, len(data), size):
                    if server._wait(pause):
                        break
                    self.wfile.write(data[start : start + size])
                    self.wfile.flush()
            except OSError:  # the client gave up
                pass
            self.close_connection = True

    return Handler


def _request_problem(
    provider: str, body: Any, headers: dict[str, str], api_key: str | None
) -> tuple[int, str, str] | None:
    if api_key is not None:
        sent = (
            headers.get("authorization", "").removeprefix("Bearer ")
            if provider == "openai"
            else headers.get("x-api-key", "")
        )
        if sent != api_key:
            return 401, "authentication_error", "invalid api key"
    if not isinstance(body, dict):
        return 400, "invalid_request_error", "body must be a JSON object"
    if not body.get("model") or not isinstance(body.get("messages"), list):
        return 400, "invalid_request_error", "model and messages are required"
    if provider == "anthropic":
        if not headers.get("anthropic-version"):
            return 400, "invalid_request_error", "anthropic-version header is required"
        if not isinstance(body.get("max_tokens"), int):
            return 400, "invalid_request_error", "max_tokens is required"
    return None


def _input_document(provider: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Our input document from the last user message that has one."""
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):  # content blocks
            content = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        if isinstance(content, str):
            document = prompts.read_input(content)
            if document is not None:
                return document
    return None


def _error_body(provider: str, kind: str, message: str) -> dict[str, Any]:
    if provider == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _success_body(provider: str, model: str, text: str, n: int) -> dict[str, Any]:
    usage_in, usage_out = 1000, max(1, len(text) // 4)
    if provider == "anthropic":
        return {
            "id": f"msg_fake_{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
        }
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage_in,
            "completion_tokens": usage_out,
            "total_tokens": usage_in + usage_out,
        },
    }


def serve(host: str = "127.0.0.1", port: int = 8089, api_key: str | None = None) -> None:
    """Run in the foreground until interrupted (the ``rampart fake-llm`` command)."""
    fake = FakeLLMServer(host, port, api_key=api_key)
    print(
        f"fake LLM on {fake.url}: OPENAI_BASE_URL={fake.url}/v1 ANTHROPIC_BASE_URL={fake.url}\n"
        f'faults: curl -X POST {fake.url}/_faults -d \'{{"mode": "error", "times": 3}}\'',
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        fake.serve_forever()
