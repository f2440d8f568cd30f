"""Sentry: unexpected errors of the API, workers and relay, tagged and scrubbed.

Errors only; traces are OpenTelemetry's (kit/tracing.py). `init_sentry(service)` does
nothing without SENTRY_DSN. Events are sent from exactly these places, so each error
arrives once:

- API: `report_exception` in RequestContextMiddleware (the one global handler of
  unhandled exceptions) and the FastAPI/Starlette integration for 5xx HTTPExceptions;
- worker: `report_exception` when the job runner quarantines a job (the runner catches
  every job error, so Celery's integration only sees what escapes it, e.g. the database
  being down even for the quarantine write; Celery's Retry/Ignore/Reject never count);
- any process: uncaught exceptions (sys.excepthook, threads).

Log records never become events or breadcrumbs (LoggingIntegration off): our JSON logs
already hold the story under the trace_id (`rampart trace`), and a log record's
arguments are not scrubbed until they are formatted.

What leaves the process (send_default_pii off):
- tags `trace_id` (also the event's trace context, so Sentry links to the OTel trace),
  `request_id`, `tenant_id`, `user_id`, `job_id`, `job_type`, `service`; the user as an id;
- never: Authorization, Cookie/Set-Cookie, Stripe-Signature and other signature or key
  headers; cookies; values under secret-looking keys anywhere (EventScrubber with an
  extended denylist, recursive, then our own pass for keys that merely contain such a
  word); email addresses (hashed like in the logs), bearer tokens, JWTs, Stripe secrets
  and signatures inside any string: messages, request bodies, local variables.
"""

from __future__ import annotations

import re
from typing import Any

from rampart.kit import context
from rampart.kit.logging import mask_email

FILTERED = "[Filtered]"
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|authori[sz]ation|cookie|api[_-]?key|signature|dsn|"
    r"session|csrf|credential|private[_-]?key|jwt",
    re.I,
)
# Values recognisable by their shape wherever they appear inside a string.
_SECRET_VALUES = [
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # JWT
    re.compile(r"\b(?:whsec|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9]+"),  # Stripe
    re.compile(r"\bt=\d{9,},v1=[0-9a-f]+(?:,v\d=[0-9a-f]+)*"),  # a Stripe-Signature value
    # `"password": "x"`, `password=x`, `'api_key': 'x'` written into a string (reprs, bodies)
    re.compile(
        r"(?i)([\"']?[\w-]*(?:pass(?:word|wd)?|secret|token|api[_-]?key|authorization|cookie"
        r"|signature)[\w-]*[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}\]]+)"
    ),
]
DENYLIST = [
    "stripe_signature",
    "stripe-signature",
    "x-api-key",
    "x_api_key",
    "api-key",
    "access_token",
    "refresh_token",
    "id_token",
    "password_hash",
    "new_password",
    "current_password",
    "jwt",
    "jwt_secret",
    "dsn",
    "sentry_dsn",
    "x-csrf-token",
    "webhook-signature",
    "email",
    "invitation_token",
]
_HEADERS_DROPPED = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "stripe-signature",
    "webhook-signature",
    "x-api-key",
    "x-csrf-token",
}
_started: dict[str, str] = {}
_QUOTED = re.compile(r"b?(['\"])(.*)\1", re.S)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TAG_KEYS = ("trace_id", "request_id", "tenant_id", "user_id", "job_id", "job_type")


def scrub_text(text: str) -> str:
    for pattern in _SECRET_VALUES[:-1]:
        text = pattern.sub(FILTERED, text)
    text = _SECRET_VALUES[-1].sub(lambda m: m.group(1) + FILTERED, text)
    return mask_email(text)


def _pair_name(value: Any) -> str | None:
    """The name of a (name, value) pair, as ASGI headers are (`[b'cookie', b'...']`, which
    local variables show as `["b'cookie'", "b'...'"]`)."""
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str):
        match = _QUOTED.fullmatch(value[0])
        name = match.group(2) if match else value[0]
        return name if _NAME.fullmatch(name) else None  # a header-like name, not prose
    return None


def scrub(value: Any, key: str = "") -> Any:
    """Recursively: values under secret-looking keys (or in (name, value) pairs with such a
    name) filtered; strings scrubbed."""
    if key and _SENSITIVE_KEY.search(key):
        return FILTERED if value not in (None, "", [], {}) else value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        name = _pair_name(value)
        if name is not None and (name.lower() in _HEADERS_DROPPED or _SENSITIVE_KEY.search(name)):
            return [value[0], FILTERED]
        return [scrub(v) for v in value]
    return value


def _scrub_request(request: dict[str, Any]) -> None:
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {
            k: v for k, v in headers.items() if str(k).lower() not in _HEADERS_DROPPED
        }
    request.pop("cookies", None)
    if request.get("query_string"):
        request["query_string"] = scrub_text(str(request["query_string"]))


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any] | None:
    ids = {key: context.current(key) for key in _TAG_KEYS}
    tags = event.setdefault("tags", {})
    for key, value in ids.items():
        if value is not None:
            tags[key] = str(value)
    if ids["user_id"]:
        event["user"] = {"id": str(ids["user_id"])}
    else:
        event.pop("user", None)
    trace_id, span_id = context.current("trace_id"), context.current("span_id")
    if isinstance(trace_id, str) and re.fullmatch(r"[0-9a-f]{32}", trace_id):
        trace_context = event.setdefault("contexts", {}).setdefault("trace", {})
        trace_context["trace_id"] = trace_id
        if isinstance(span_id, str) and re.fullmatch(r"[0-9a-f]{16}", span_id):
            trace_context["span_id"] = span_id
    if isinstance(event.get("request"), dict):
        _scrub_request(event["request"])
    return scrub(event)


def init_sentry(service: str) -> bool:
    """Start reporting to Sentry if SENTRY_DSN is set; True when it is on."""
    from rampart.kit.settings import telemetry_settings

    settings = telemetry_settings()
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        return False
    import sentry_sdk

    dsn = settings.sentry_dsn.get_secret_value()
    if _started.get("dsn") == dsn and sentry_sdk.get_client().is_active():
        return True  # already on (create_app() may run more than once per process)
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        environment=settings.sentry_environment or settings.env,
        release=settings.sentry_release or settings.version,
        # send_default_pii stays off: the SDK's default. Passing it is deprecated in 2.7x in
        # favour of `data_collection`, and setting that would switch the EventScrubber off.
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + DENYLIST, recursive=True),
        before_send=before_send,
        # Errors only: no Sentry tracing, and no Sentry trace headers on outgoing calls
        # (LLM providers) or Celery messages: the W3C traceparent is the one we propagate.
        traces_sample_rate=None,
        trace_propagation_targets=[],
        integrations=[
            StarletteIntegration(),
            FastApiIntegration(),
            CeleryIntegration(propagate_traces=False),
            LoggingIntegration(level=None, event_level=None),
        ],
    )
    sentry_sdk.set_tag("service", service)
    _started["dsn"] = dsn
    return True


def report_exception(exc: BaseException) -> None:
    """Send `exc` to Sentry (if on), tagged with the current context."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        sentry_sdk.capture_exception(exc)
