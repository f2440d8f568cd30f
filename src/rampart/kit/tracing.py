"""OpenTelemetry tracing: one trace from the HTTP request to the worker; the log trace_id IS
the OTel trace id.

The spans of one assessment (docs/observability.md)::

    POST /api/v1/assessments        SERVER    kit/middleware.py (RequestContextMiddleware)
      ├─ SELECT/INSERT ...          CLIENT    kit/db/transaction.py (when exporting)
    queue.publish                   PRODUCER  kit/jobs/relay.py, parent: the outbox row's
                                              traceparent (the request's span)
      queue.consume                 CONSUMER  kit/jobs/task.py, parent: the message's
                                              `traceparent` header
        ├─ SELECT ... (db)
        └─ llm.call                 CLIENT    llm/service.py, one per provider try

Why the server and queue spans are ours and not opentelemetry-instrumentation-{fastapi,
celery}'s: the request's trace id has rules of its own (kit/context.py `incoming_trace`:
an untrusted caller's trace is restarted and only linked; a trusted gateway's traceparent
or UUID/32-hex X-Request-ID is continued) that must also become the log context's
trace_id, and the
publish happens in the relay, long after the request's span ended, with the parent taken
from the outbox row. Both are a few lines on the OTel API; the instrumentations would need
their context overridden in the same places. Database spans are ours too: one per round
trip (kit/db/transaction.py), made only while spans are exported.

A trace id chosen by us (a hex X-Request-ID, or a job row's trace_id without a stored
traceparent) becomes the id of a root span through `_PresetIdGenerator`, so the sampler
still decides as for any root. Without OTEL_EXPORTER_OTLP_ENDPOINT the provider has no
exporter: spans are created (cheap, no database spans) so ids and propagation work, and
nothing is sent anywhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import re
from collections.abc import Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "SpanKind",
    "add_exporter",
    "configure",
    "current_traceparent",
    "ids",
    "exporting",
    "span",
    "start_span",
    "tracer",
]

_HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_PROPAGATOR = TraceContextTextMapPropagator()
_preset_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "rampart_preset_trace_id", default=None
)


class _PresetIdGenerator(IdGenerator):
    """Random ids, except a trace id preset for the next root span by `start_span`."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        preset = _preset_trace_id.get()
        return preset if preset else self._random.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return True  # preset ids are caller-made random ids (or ours)


class _State:
    tracer: tuple[Any, trace.Tracer] | None = None
    provider: TracerProvider | None = None
    pid: int | None = None
    exporting: bool = False


_state = _State()


def configure(service: str) -> TracerProvider:
    """Install this process's tracer provider (idempotent; once per process)."""
    if _state.provider is not None and _state.pid == os.getpid():
        return _state.provider
    from rampart.kit.settings import telemetry_settings

    settings = telemetry_settings()
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):  # set up earlier in this process (tests)
        provider = existing
    else:
        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": f"rampart-{service}",
                    "service.version": settings.version,
                    "deployment.environment.name": settings.env,
                }
            ),
            sampler=ParentBased(TraceIdRatioBased(settings.otel_traces_sample_ratio)),
            id_generator=_PresetIdGenerator(),
        )
        trace.set_tracer_provider(provider)
    _state.provider, _state.pid = provider, os.getpid()
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        add_exporter(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5))
    return provider


def add_exporter(exporter: SpanExporter, *, batch: bool = True) -> SpanProcessor:
    """Send spans to `exporter` from now on (database spans included). Returns the
    processor (shut it down to stop)."""
    provider = _state.provider or configure("rampart")
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    _state.exporting = True
    return processor


def stop_exporting() -> None:
    """Record no more database spans (tests)."""
    _state.exporting = False


def shutdown() -> None:
    """Flush and stop exporting (a process on its way out)."""
    if _state.provider is not None and _state.pid == os.getpid():
        _state.provider.shutdown()


def force_flush(timeout_ms: int = 2000) -> None:
    if _state.provider is not None and _state.pid == os.getpid():
        _state.provider.force_flush(timeout_ms)


def exporting() -> bool:
    """Whether spans leave this process (database spans are made only then)."""
    return _state.exporting


def tracer() -> trace.Tracer:
    """This process's tracer (looked up once per provider: it is asked for on every span)."""
    provider = trace.get_tracer_provider()
    cached = _state.tracer
    if cached is None or cached[0] is not provider:
        cached = _state.tracer = (provider, trace.get_tracer("rampart"))
    return cached[1]


def _parent(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    extracted = _PROPAGATOR.extract({"traceparent": traceparent.strip().lower()})
    if trace.get_current_span(extracted).get_span_context().is_valid:
        return extracted
    return None


def _links(traceparent: str | None) -> list[trace.Link] | None:
    """A link to the span `traceparent` names (an untrusted caller's: related, not parent)."""
    parent = _parent(traceparent)
    if parent is None:
        return None
    return [trace.Link(trace.get_current_span(parent).get_span_context(), _CLIENT_LINK)]


_CLIENT_LINK = {"rampart.link": "client_trace"}
_RANDOM_IDS = RandomIdGenerator()


def _id_only_span(parent: otel_context.Context | None, trace_id: str | None) -> Span:
    """A NonRecordingSpan with the ids `start_span` would give a recording one."""
    context = parent if parent is not None else otel_context.get_current()
    enclosing = trace.get_current_span(context).get_span_context()
    if parent is None and trace_id and _HEX_TRACE_ID.match(trace_id) and int(trace_id, 16):
        trace_int, sampled = int(trace_id, 16), _sampled_by_ratio()
    elif enclosing.is_valid:
        trace_int, sampled = enclosing.trace_id, enclosing.trace_flags.sampled
    else:
        trace_int, sampled = _RANDOM_IDS.generate_trace_id(), _sampled_by_ratio()
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
    return trace.NonRecordingSpan(
        trace.SpanContext(trace_int, _RANDOM_IDS.generate_span_id(), False, flags)
    )


def _sampled_by_ratio() -> bool:
    from rampart.kit.settings import telemetry_settings

    ratio = telemetry_settings().otel_traces_sample_ratio
    return ratio >= 1.0 or random.random() < ratio  # noqa: S311 - sampling, not security


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    traceparent: str | None = None,
    trace_id: str | None = None,
    link: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Span:
    """A span continuing `traceparent` if it is valid; else a root span whose trace id is
    `trace_id` when that is 32 hex characters; else the current context's child. `link`:
    a traceparent the span is linked to without continuing it (W3C Trace Context: restart
    the trace of an untrusted caller, keep the relation).

    While no exporter is installed, the span is a non-recording one that only carries its
    ids (same trace-id rules, sampled flag from the parent or the sample ratio): ids and
    propagation work as always, and a request pays nothing for a span no one will see."""
    parent = _parent(traceparent)
    if not _state.exporting:
        return _id_only_span(parent, trace_id)
    links = _links(link)
    if parent is None and trace_id and _HEX_TRACE_ID.match(trace_id) and int(trace_id, 16):
        token = _preset_trace_id.set(int(trace_id, 16))
        try:
            return tracer().start_span(
                name,
                context=otel_context.Context(),
                kind=kind,
                attributes=attributes,
                links=links,
            )
        finally:
            _preset_trace_id.reset(token)
    return tracer().start_span(
        name, context=parent, kind=kind, attributes=attributes, links=links
    )


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    traceparent: str | None = None,
    trace_id: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[Span]:
    """`start_span`, made current for the block; an exception marks it as an error."""
    current = start_span(
        name, kind=kind, traceparent=traceparent, trace_id=trace_id, attributes=attributes
    )
    token = otel_context.attach(trace.set_span_in_context(current))
    try:
        yield current
    except BaseException as exc:
        current.record_exception(exc)
        current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        otel_context.detach(token)
        current.end()


def ids(current: Span | None = None) -> tuple[str, str, bool] | None:
    """(trace id, span id, sampled) of `current` (default: the current span) in hex, or None
    when there is no valid span (no SDK installed)."""
    ctx = (current or trace.get_current_span()).get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), ctx.trace_flags.sampled


def traceparent_of(current: Span | None = None) -> str | None:
    found = ids(current)
    if found is None:
        return None
    trace_id, span_id, sampled = found
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to carry it to another process."""
    return traceparent_of(None)


def log_trace_id(current: Span, recorded: str | None) -> str | None:
    """The trace_id for log lines under `current`: its OTel trace id, unless the work was
    recorded under an id that cannot be one (a legacy non-hex id), which is kept so the
    logs still match the job rows."""
    found = ids(current)
    if recorded and not _HEX_TRACE_ID.match(recorded):
        return recorded
    return found[0] if found else recorded
