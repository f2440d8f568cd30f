"""Servers on real sockets in a background thread: the app with a real uvicorn
(`serve_app`), and a stdlib `http.server` handler for the local stand-ins of services we
cannot reach (`serve_handler`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn

from rampart.devstack.ports import free_port
from tests.support import httpclient
from tests.support.stack import reset_caches
from tests.support.wait import wait_until

_metrics_url: str | None = None


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve `app` (an ASGI app) with a real uvicorn on a free port in a background thread;
    yields its base URL once it accepts connections, and stops it after. The one way tests
    run a server of ours in a thread."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(
        lambda: server.started or not thread.is_alive(),
        20,
        0.02,
        message="uvicorn to start",
    )
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` (a stdlib request handler class) on a free loopback port in a
    background thread; yields its base URL, and stops it after."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_in_thread() -> Iterator[str]:
    """The app as `create_app()` builds it with the current settings (`serve_app`)."""
    from rampart.app import create_app

    with serve_app(create_app()) as url:
        yield url


@contextmanager
def serving(**env: str) -> Iterator[httpx.Client]:
    """A fresh app on a real socket with these settings (e.g. small rate limits) and a client
    for it; the old settings are restored after, so the rest of the suite is unaffected."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    reset_caches()
    try:
        with serve_in_thread() as url, httpclient.client(base_url=url, timeout=30) as client:
            yield client
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_caches()


def api_metrics_url() -> str:
    """The in-process app's metrics listener: what `rampart api` starts on METRICS_PORT
    (`kit.metrics.exposition.serve`; the public port has no /metrics), started once per test
    process on a free port. In-process the registry is prometheus-client's default one."""
    global _metrics_url
    if _metrics_url is None:
        from rampart.kit.metrics import exposition

        port = free_port()
        exposition.serve(port, "127.0.0.1")
        _metrics_url = f"http://127.0.0.1:{port}/metrics"
    return _metrics_url


def scrape_api_metrics() -> str:
    """The text exposition of the in-process app's metrics, as Prometheus would get it."""
    response = httpclient.get(api_metrics_url(), timeout=10)
    assert response.status_code == 200, response.text
    return response.text
