"""Local receivers that speak the real wire protocols of Sentry and OpenTelemetry.

One HTTP server on a free port, in a background thread:

- Sentry: `POST /api/<project>/envelope/` (gzip or brotli bodies), parsed with
  `sentry_sdk.envelope.Envelope`; DSN `receiver.sentry_dsn`.
- OTLP/HTTP traces: `POST /v1/traces` (protobuf `ExportTraceServiceRequest`); endpoint
  `receiver.otlp_endpoint` (what OTEL_EXPORTER_OTLP_ENDPOINT takes).

    with Receiver() as receiver:
        ... point SENTRY_DSN / OTEL_EXPORTER_OTLP_ENDPOINT at it ...
        receiver.events()  receiver.spans()  receiver.sentry_bodies()
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rampart.devstack.ports import free_port

_ENVELOPE_PATH = re.compile(r"^/api/(\d+)/envelope/?$")


@dataclass
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _attribute(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._sentry_bodies: list[bytes] = []
        self._spans: list[Span] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def sentry_dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        """Sentry error events received so far."""
        with self._lock:
            return list(self._events)

    def sentry_bodies(self) -> bytes:
        """Every decompressed Sentry request body, for "this never left the process" checks."""
        with self._lock:
            return b"\n".join(self._sentry_bodies)

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._sentry_bodies.clear()
            self._spans.clear()

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- protocol ----------------------------------------------------------------------

    def _sentry(self, body: bytes) -> None:
        from sentry_sdk.envelope import Envelope

        envelope = Envelope.deserialize(body)
        events = []
        for item in envelope.items:
            if item.type == "event":
                events.append(item.get_event() or json.loads(item.get_bytes()))
        with self._lock:
            self._sentry_bodies.append(body)
            self._events.extend(events)

    def _otlp(self, body: bytes) -> bytes:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _attribute(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _attribute(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self._spans.extend(spans)
        return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                elif encoding == "br":
                    import brotli  # only if the SDK found brotli installed

                    body = brotli.decompress(body)
                if self.path == "/v1/traces":
                    answer, content_type = receiver._otlp(body), "application/x-protobuf"
                elif _ENVELOPE_PATH.match(self.path):
                    receiver._sentry(body)
                    answer, content_type = b"{}", "application/json"
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler
