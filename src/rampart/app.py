"""create_app(): composes middleware and routers, nothing else."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rampart.accounts.routes import router as accounts_router
from rampart.assessments.routes import router as assessments_router
from rampart.config import get_settings
from rampart.kit.errors import install_error_handlers
from rampart.kit.health import router as health_router
from rampart.kit.logging import configure_logging
from rampart.kit.maintenance import ReadOnlyGate
from rampart.kit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from rampart.roadmaps.routes import router as roadmaps_router


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(
        service="api",
        env=settings.env,
        version=settings.version,
        level=settings.log_level,
        log_file=settings.log_file,
    )
    app = FastAPI(title="Rampart", version=settings.version, docs_url="/docs")
    install_error_handlers(app)
    # Added last = outermost: the request context wraps everything, including 413s.
    app.add_middleware(ReadOnlyGate)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    for router in (health_router, accounts_router, assessments_router, roadmaps_router):
        app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
