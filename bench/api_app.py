"""Rampart's API for the benchmark: `rampart.app.create_app()` unchanged, plus one route
that exists only here, `GET /bench/ping`, which authenticates the bearer token
(`CurrentPrincipal`: JWT decode, no database) and answers a tiny JSON. Against the bare
app's GET it prices Rampart's middleware stack and auth alone.

Served the way `rampart api` serves the product (src/rampart/cli.py `api`, mirrored here:
keep the two in step): its own metrics directory first, the metrics listener (off unless
METRICS_PORT is set), then uvicorn with the same arguments (one process, access log off,
no proxy or server headers, the same graceful shutdown; loop and HTTP "auto", which pick
uvloop and httptools, both installed by uvicorn[standard]).

    python -m bench.api_app --host 127.0.0.1 --port PORT
"""

# No `from __future__ import annotations`: FastAPI must see the route's annotation itself
# (CurrentPrincipal is imported inside create_app, after the metrics directory is set up).
import argparse

from fastapi import FastAPI

PING_PATH = "/bench/ping"


def create_app() -> FastAPI:
    from rampart.app import create_app as create_rampart_app
    from rampart.kit.security.auth import CurrentPrincipal

    app = create_rampart_app()

    @app.get(PING_PATH, include_in_schema=False)
    async def ping(principal: CurrentPrincipal) -> dict[str, str]:
        return {"tenant_id": principal.tenant_id}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    from rampart.kit.metrics.exposition import prepare_multiprocess_dir

    prepare_multiprocess_dir("api")  # before anything imports prometheus_client
    import uvicorn

    from rampart.config import get_settings
    from rampart.kit.metrics import exposition

    settings = get_settings()
    exposition.serve(settings.metrics_port, settings.metrics_host)  # METRICS_PORT 0: off
    uvicorn.run(
        "bench.api_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=None,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_drain_seconds)),
    )

if __name__ == "__main__":
    main()
