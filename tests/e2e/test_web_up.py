"""`rampart up` serves the web app beside the API: it prints the app's URL, records it in
up.json, serves its pages with a nonce CSP, proxies /api/* to the API on the same origin
(the API's __Host- cookies come back through it), restarts it when it dies, and stops it
with the rest."""

from __future__ import annotations

import json
import os
import re
import signal

import httpx
import pytest
from tests.support import httpclient
from tests.support.up import UpRunner, assert_nothing_left
from tests.support.wait import wait_until

from rampart.devstack.ports import free_port
from rampart.webapp.build import build

pytestmark = pytest.mark.slow


def test_up_serves_the_web_app_on_one_origin_with_the_api(runner: UpRunner) -> None:
    build()  # once per source change; `up` would build it too, only slower to watch
    web_port = free_port()
    runner.env["WEB_PORT"] = str(web_port)
    web = f"http://127.0.0.1:{web_port}"
    up = runner.start()
    runner.wait_up(up)
    assert f"web app   {web}" in up.stderr()
    record = json.loads((runner.home / "up.json").read_text())
    assert record["urls"]["WEB_URL"] == web
    assert "web" in record["children"]

    def serves() -> bool:
        return httpclient.get(f"{web}/login", timeout=5).status_code == 200

    wait_until(serves, 60, 0.25, ignore=(httpx.HTTPError,), message=lambda: up.describe())
    page = httpclient.get(f"{web}/login", timeout=10)
    csp = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    scripts = re.findall(r"<script\b[^>]*>", page.text)
    assert scripts and all(f'nonce="{nonce.group(1)}"' in tag for tag in scripts), scripts

    # The API through the app's origin: same answers, the trace id, the session cookies.
    proxied = httpclient.get(f"{web}/api/v1/assessments/questionnaire", timeout=10)
    assert proxied.status_code == 200 and proxied.json()["dimensions"]
    assert proxied.headers.get("x-request-id")
    refused = httpclient.post(
        f"{web}/api/v1/auth/session", json={"email": "nobody@example.com", "password": "x"}
    )
    assert refused.status_code == 401 and refused.json()["error"]["trace_id"]

    # Killed, it is started again.
    pid = record["children"]["web"]["pid"]
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        children = json.loads((runner.home / "up.json").read_text())["children"]
        return children.get("web", {}).get("pid") not in (None, pid)

    wait_until(restarted, 60, 0.25, message=lambda: up.describe())
    wait_until(serves, 60, 0.25, ignore=(httpx.HTTPError,), message=lambda: up.describe())

    assert runner.terminate(up) == 0
    assert_nothing_left(runner)
