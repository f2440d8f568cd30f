"""The HTTP rows: Rampart's authenticated GET and POST, and the middleware stack alone
(`GET /bench/ping`, bench/api_app.py), each against the bare FastAPI app (bench/bare_app.py)
in the same run. Closed loop: N keep-alive connections, one request in flight on each."""

from __future__ import annotations

import json
from collections.abc import Callable

from bench import load
from bench.accounts import Account
from bench.api_app import PING_PATH
from bench.procs import Proc

HOST = "127.0.0.1"
BODY_BYTES = 1024


def assessment_body() -> bytes:
    """Valid answers to every question, padded with context to ~1 KB of JSON."""
    from rampart.questionnaire import QUESTIONNAIRE

    answers = {q.id: i % 6 for i, q in enumerate(QUESTIONNAIRE.questions)}
    empty = json.dumps({"answers": answers, "context": ""}, separators=(",", ":"))
    filler = "A six-person team runs a FastAPI and Celery product on Postgres and Redis. "
    context = (filler * 40)[: max(0, BODY_BYTES - len(empty.encode()))]
    return json.dumps({"answers": answers, "context": context}, separators=(",", ":")).encode()


def _targets(api_port: int, bare_port: int, account: Account, assessment_id: str) -> dict:
    """{row: (Rampart's target, the bare target it is compared with)}"""
    body = assessment_body()
    auth = account.headers
    json_headers = {"Content-Type": "application/json"}

    def ours(name: str, method: str, path: str, status: int, **kw) -> load.Target:
        request = load.build_request(method, HOST, api_port, path, **kw)
        return load.Target(name, HOST, api_port, request, expect_status=status)

    def bare(name: str, method: str, path: str, status: int, **kw) -> load.Target:
        request = load.build_request(method, HOST, bare_port, path, **kw)
        return load.Target(name, HOST, bare_port, request, expect_status=status)

    bare_get = bare("bare GET /get", "GET", "/get", 200)
    return {
        "get": (
            ours("GET /api/v1/assessments/{id}", "GET", f"/api/v1/assessments/{assessment_id}",
                 200, headers=auth),
            bare_get,
        ),
        "ping": (ours(f"GET {PING_PATH} (auth'd, no DB)", "GET", PING_PATH, 200, headers=auth),
                 bare_get),
        "post": (
            ours("POST /api/v1/assessments", "POST", "/api/v1/assessments", 202,
                 headers={**auth, **json_headers}, body=body),
            bare(f"bare POST /post ({len(body)} B)", "POST", "/post", 202,
                 headers=json_headers, body=body),
        ),
    }


def measure_http(
    *,
    api_port: int,
    bare_port: int,
    servers: dict[str, Proc],  # "ours": Rampart's API, "bare": the bare app
    watch: dict[str, list[int]],
    account: Account,
    assessment_id: str,
    connections: int,
    warmup_s: float,
    duration_s: float,
    status: Callable[[str], object],
) -> dict:
    """{row: {"ours": LoadResult dict, "bare": LoadResult dict}}; each target measured once
    (the ping row reuses the bare GET of the GET row)."""
    measured: dict[str, dict] = {}
    rows = {}
    for row, pair in _targets(api_port, bare_port, account, assessment_id).items():
        results = {}
        for side, target in zip(("ours", "bare"), pair, strict=True):
            if target.name not in measured:
                server = servers[side]
                with status(f"HTTP: {target.name}, {connections} connections, "
                            f"{warmup_s:g}+{duration_s:g} s..."):
                    measured[target.name] = load.run(
                        load.run_load(
                            target, connections=connections, warmup_s=warmup_s,
                            duration_s=duration_s, watch_pids={"server": [server.pid], **watch},
                        )
                    ).as_dict()
                if not server.alive():
                    raise RuntimeError(f"{server.name} died under load:\n{server.tail()}")
            results[side] = measured[target.name]
        rows[row] = results
    return rows
