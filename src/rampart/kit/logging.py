"""structlog: one JSON object per line, on stdout and optionally a rotating file.

Every line carries timestamp, level, event, service, env, version and whatever the
context holds (trace_id, span_id, tenant_id, user_id, assessment_id, roadmap_id, job_id).
Values under keys that look secret are masked and emails are hashed, so a careless log
call cannot leak a password, token or address.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import re
import sys
from typing import Any, Protocol

import structlog

_SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|signature|dsn", re.I
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def mask_email(text: str) -> str:
    """Replace each email address with a short stable hash (correlatable, not readable)."""
    return _EMAIL.sub(
        lambda m: "email:" + hashlib.sha256(m.group(0).lower().encode()).hexdigest()[:12], text
    )


def _scrub(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEYS.search(key):
        return "[redacted]"
    if isinstance(value, str):
        return mask_email(value)
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def scrub_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {k: _scrub(v, k) if k not in ("exception",) else v for k, v in event.items()}


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time of the call, not at configuration."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stdout

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class LogSettings(Protocol):
    """What logging reads of the settings (config.Settings has it all)."""

    env: str
    version: str
    log_level: str
    log_file: str | None


def configure_service_logging(service: str, settings: LogSettings) -> None:
    """`configure_logging` for one of our services (api, worker, relay) from its settings."""
    configure_logging(
        service=service,
        env=settings.env,
        version=settings.version,
        level=settings.log_level,
        log_file=settings.log_file,
    )


def configure_logging(
    *, service: str, env: str, version: str, level: str = "INFO", log_file: str | None = None
) -> None:
    handlers: list[logging.Handler] = [_StdoutHandler()]
    if log_file:
        handlers.append(
            logging.handlers.RotatingFileHandler(log_file, maxBytes=20_000_000, backupCount=5)
        )
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warnings.warn() is a log line, not stderr text
    # Library chatter through the same JSON pipeline, at a sane level. Stripe's SDK logs
    # every API request and response at info (URL with ids, status), beside our own lines.
    for noisy in ("uvicorn.access", "httpx", "celery.worker.strategy", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    static = {"service": service, "env": env, "version": version}

    def add_static(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in static.items():
            event.setdefault(key, value)
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        add_static,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_processor,
            structlog.processors.JSONRenderer(),
        ],
    )
    for handler in handlers:
        handler.setFormatter(formatter)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
