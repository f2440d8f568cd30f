"""create_app(): composes middleware and routers, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rampart.accounts.routes import router as accounts_router
from rampart.accounts.service import actor_check_sql, load_actor
from rampart.assessments.routes import router as assessments_router
from rampart.billing.routes import account_router as billing_account_router
from rampart.billing.routes import audit_router
from rampart.billing.routes import router as billing_router
from rampart.config import get_settings
from rampart.evidence.routes import UPLOAD_ROUTE
from rampart.evidence.routes import router as evidence_router
from rampart.incidents.routes import ALERT_WEBHOOK_PATH
from rampart.incidents.routes import router as incidents_router
from rampart.kit.api_docs import install_api_docs
from rampart.kit.db.pool import close_pool
from rampart.kit.health import router as health_router
from rampart.kit.http_errors import document_error_envelope, install_error_handlers
from rampart.kit.logging import configure_service_logging
from rampart.kit.metrics.process_setup import setup_process
from rampart.kit.middleware import BodyGuardMiddleware, RequestContextMiddleware
from rampart.kit.read_only import ReadOnlyGate
from rampart.kit.redis_clients import aclose_clients
from rampart.kit.security.auth import ActorHooks, set_actor_hooks
from rampart.kit.security.client_ip import TrustedProxyMiddleware
from rampart.kit.security.cors import CorsMiddleware
from rampart.kit.security.headers import SecurityHeadersMiddleware
from rampart.kit.security.ratelimit import EXEMPT_PATHS, RateLimitMiddleware
from rampart.roadmaps.routes import router as roadmaps_router


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    await close_pool()  # this process's (this event loop's) connections
    await aclose_clients()


def create_app() -> FastAPI:
    settings = get_settings()
    configure_service_logging("api", settings)
    setup_process("api")  # OpenTelemetry, Sentry, rampart_build_info
    # Who a token or session is now: the accounts domain's check and loader.
    set_actor_hooks(ActorHooks(check_sql=actor_check_sql, load=load_actor))
    # telemetry: FastAPI's native OpenTelemetry server span is off; RequestContextMiddleware
    # opens the one server span, whose trace id is also the log trace_id (kit/tracing.py).
    app = FastAPI(
        title="Rampart",
        version=settings.version,
        docs_url=None,  # kit/api_docs.py serves the docs with their assets
        redoc_url=None,
        telemetry={"tracing": False},
        lifespan=_lifespan,
    )
    install_error_handlers(app)
    document_error_envelope(app, unlimited_paths=EXEMPT_PATHS)
    install_api_docs(app)
    # Added last = outermost: the request context wraps everything, including 413s.
    # Outermost first: security headers (on every response, even the request context's
    # last-resort 500) → request context (trace_id) → client IP (trusted proxies) → CORS
    # (so 429s reach the browser) → rate limit → read-only gate → body guard. Database
    # connections are taken later, by the request's transaction (kit/security/request_tx.py).
    app.add_middleware(
        BodyGuardMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout=settings.body_timeout_seconds,
        per_client=settings.max_pending_bodies_per_client,
        # The upload streams and enforces EVIDENCE_MAX_BYTES itself.
        own_limits={UPLOAD_ROUTE: (None, settings.evidence_upload_timeout_seconds)},
    )
    # The incident webhook (Alertmanager) is exempt from read-only mode (alerts matter most
    # during maintenance) and from the per-IP limit (it counts failed tokens instead).
    machine_paths = frozenset({ALERT_WEBHOOK_PATH})
    app.add_middleware(ReadOnlyGate, exempt_paths=machine_paths)
    app.add_middleware(RateLimitMiddleware, exempt=machine_paths)
    app.add_middleware(
        CorsMiddleware,
        origins=settings.cors_origin_list,
        allow_credentials=settings.cors_allow_credentials,
    )
    app.add_middleware(TrustedProxyMiddleware, trusted_proxies=settings.trusted_proxy_list)
    app.add_middleware(
        RequestContextMiddleware, trust_client_trace_ids=settings.trust_client_trace_ids
    )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.env not in ("dev", "test"))
    for router in (
        health_router,
        accounts_router,
        assessments_router,
        evidence_router,
        roadmaps_router,
        billing_router,
        billing_account_router,
        audit_router,
        incidents_router,
    ):
        app.include_router(router)
    # No /metrics here: anyone who reaches the API would see build and business counters.
    # `rampart api` serves them on METRICS_HOST:METRICS_PORT (kit/metrics/exposition.py).
    return app
