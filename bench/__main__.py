"""`make bench` / `python -m bench`: start a private stack, measure Rampart's HTTP API and
background pipeline against ceilings (a bare FastAPI app, no-op Celery tasks) on this
machine, print a table and write bench-results/latest.json. See docs/performance.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from bench import load, report
from bench.llm_stage import measure_llm_concurrency, measure_llm_stage
from bench.pipeline import Account, measure_noop, measure_pipeline
from bench.procs import ROOT, Procs, wait_http

LOG_LEVEL = "WARNING"
BODY_BYTES = 1024
UVICORN_FLAGS = "1 worker process, uvloop + httptools, access log off, no proxy/server headers"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per HTTP target")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per target")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections")
    parser.add_argument("--assessments", type=int, default=200, help="pipeline batch size")
    parser.add_argument("--tasks", type=int, default=1000, help="no-op Celery tasks")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument(
        "--overload", type=int, default=60, metavar="N",
        help="also GET at N connections, past the API's 15 DB connections (requests queue) "
        "(0: skip)",
    )
    parser.add_argument(
        "--fast-db", action="store_true",
        help="Postgres with fsync/synchronous_commit off (the test suite's mode); "
        "default: durable, as `make up` runs it",
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench-results" / "latest.json", help="JSON output"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    return parser.parse_args(argv)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(  # noqa: S603 - read-only query
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=ROOT, capture_output=True, text=True,
            timeout=5, check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def assessment_body() -> bytes:
    """Valid answers to every question, padded with context to ~1 KB of JSON."""
    from rampart.assessments.questionnaire import QUESTIONNAIRE

    answers = {q.id: i % 6 for i, q in enumerate(QUESTIONNAIRE.questions)}
    empty = json.dumps({"answers": answers, "context": ""}, separators=(",", ":"))
    filler = "A six-person team runs a FastAPI and Celery product on Postgres and Redis. "
    context = (filler * 40)[: max(0, BODY_BYTES - len(empty.encode()))]
    return json.dumps({"answers": answers, "context": context}, separators=(",", ":")).encode()


def _signup(base_url: str) -> Account:
    email = f"bench-{os.getpid()}-{int(time.time())}@example.com"
    response = httpx.post(
        f"{base_url}/api/v1/auth/signup",
        json={"email": email, "password": "correct horse battery staple", "tenant_name": "Bench"},
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"signup failed: {response.status_code} {response.text}")
    body = response.json()
    return Account(
        user_id=body["user"]["id"],
        tenant_id=body["tenant"]["id"],
        token=body["token"]["access_token"],
    )


def _run_async(coro):
    with asyncio.Runner(loop_factory=load.new_event_loop) as runner:
        return runner.run(coro)


def _http_pairs(api_port: int, bare_port: int, account: Account, assessment_id: str) -> list:
    host = "127.0.0.1"
    body = assessment_body()
    auth = {"Authorization": f"Bearer {account.token}"}
    json_headers = {"Content-Type": "application/json"}
    return [
        (
            "GET /api/v1/assessments/{id}",
            load.Target(
                "rampart GET", host, api_port,
                load.build_request("GET", host, api_port, f"/api/v1/assessments/{assessment_id}",
                                   headers=auth),
                expect_status=200,
            ),
            "GET /get",
            load.Target("bare GET", host, bare_port,
                        load.build_request("GET", host, bare_port, "/get"), expect_status=200),
        ),
        (
            "POST /api/v1/assessments",
            load.Target(
                "rampart POST", host, api_port,
                load.build_request("POST", host, api_port, "/api/v1/assessments",
                                   headers={**auth, **json_headers}, body=body),
                expect_status=202,
            ),
            f"POST /post ({len(body)} B)",
            load.Target(
                "bare POST", host, bare_port,
                load.build_request("POST", host, bare_port, "/post", headers=json_headers,
                                   body=body),
                expect_status=202,
            ),
        ),
    ]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    console = Console(width=None if sys.stdout.isatty() else 180)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)
    home = Path(tempfile.mkdtemp(prefix="rampart-bench-", dir="/tmp"))  # nobody must traverse it
    os.chmod(home, 0o755)  # noqa: S103 - Postgres runs as nobody when we are root
    stack = None
    procs: Procs | None = None
    loadavg = " ".join(f"{v:.2f}" for v in os.getloadavg())
    try:
        from rampart.devstack.ports import free_port
        from rampart.devstack.stack import LocalStack

        with console.status("starting Postgres and Redis, applying migrations..."):
            stack = LocalStack(home, fast=args.fast_db)
            stack_env = stack.start()
        extra = {
            **stack_env, "ENV": "test", "RAMPART_HOME": str(home), "LOG_LEVEL": LOG_LEVEL,
            "RATE_LIMIT_ENABLED": "false",
            "LLM_PROVIDERS": "offline",
        }
        os.environ.update(extra)  # this process reads Rampart's settings too (noop Celery app)
        os.environ.pop("LOG_FILE", None)
        pythonpath = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
        logs = home / "logs"
        logs.mkdir()
        procs = Procs(env, logs)

        api_port, bare_port = free_port(), free_port()
        with console.status("starting the API and the bare app..."):
            api = procs.start(
                "api", ["-m", "rampart.cli", "api", "--host", "127.0.0.1", "--port", str(api_port)]
            )
            bare = procs.start(
                "bare",
                [
                    "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1",
                    "--port", str(bare_port), "--workers", "1", "--no-access-log",
                    "--no-proxy-headers", "--no-server-header", "--log-level", "warning",
                ],
            )
            wait_http(api, f"http://127.0.0.1:{api_port}/health")
            wait_http(bare, f"http://127.0.0.1:{bare_port}/get")
            account = _signup(f"http://127.0.0.1:{api_port}")

        status = f"pipeline: {args.assessments} assessments through relay and worker..."
        pid_files = {
            "postgres": stack.postgres.data_dir / "postmaster.pid" if stack.postgres else None,
            "redis": stack.redis.pid_file if stack.redis else None,
        }
        watch = {
            name: [pid] if path and (pid := load.pid_from_file(path)) else []
            for name, path in pid_files.items()
        }
        with console.status(status):
            pipeline = measure_pipeline(
                procs, watch={**watch, "api": [api.pid]}, base_url=f"http://127.0.0.1:{api_port}",
                database_url=stack_env["DATABASE_URL"], account=account,
                body=assessment_body(), count=args.assessments, concurrency=args.concurrency,
            )
        with console.status(f"Celery ceiling: {args.tasks} no-op tasks..."):
            noop = measure_noop(
                procs, watch=watch, redis_url=stack_env["REDIS_URL"], count=args.tasks,
                concurrency=args.concurrency,
            )

        with console.status("LLM stage: offline, hanging primary, breaker open..."):
            llm_stage = measure_llm_stage()
        with console.status("LLM concurrency: 200 assessments' LLM stages on one loop..."):
            llm_concurrency = measure_llm_concurrency(procs, port=free_port())

        http = []
        pairs = _http_pairs(api_port, bare_port, account, pipeline["sample_assessment_id"])
        for endpoint, ours_target, bare_endpoint, bare_target in pairs:
            measured = {}
            for key, target, proc in (("ours", ours_target, api), ("bare", bare_target, bare)):
                with console.status(f"HTTP: {target.name}, {args.connections} connections, "
                                    f"{args.warmup:g}+{args.duration:g} s..."):
                    result = _run_async(
                        load.run_load(
                            target, connections=args.connections, warmup_s=args.warmup,
                            duration_s=args.duration,
                            watch_pids={"server": [proc.pid], **watch},
                        )
                    )
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} died under load:\n{proc.tail()}")
                measured[key] = result.as_dict()
            http.append({"endpoint": endpoint, "bare_endpoint": bare_endpoint, **measured})

        overload = None
        if args.overload:
            target = pairs[0][1]  # Rampart's GET
            with console.status(f"HTTP: {target.name} at {args.overload} connections..."):
                overload = _run_async(
                    load.run_load(
                        target, connections=args.overload, warmup_s=args.warmup,
                        duration_s=args.duration, watch_pids={"server": [api.pid], **watch},
                    )
                ).as_dict()

        results = {
            "meta": {
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "commit": _git_commit(),
                "cpu_count": os.cpu_count(),
                "cpu_model": _cpu_model(),
                "loadavg_at_start": loadavg,
                "python": platform.python_version(),
                "connections": args.connections,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "load_generator": "bench.load: asyncio/uvloop raw sockets, keep-alive, "
                "one request in flight per connection",
                "log_level": LOG_LEVEL,
                "api": f"python -m rampart.cli api ({UVICORN_FLAGS}); ENV=test, "
                f"LOG_LEVEL={LOG_LEVEL} (JSON logs, nothing logged per request at this level)",
                "bare": f"python -m uvicorn bench.bare_app:app ({UVICORN_FLAGS}); async routes",
                "postgres": "embedded 18, "
                + ("fsync and synchronous_commit OFF (--fast-db)" if args.fast_db
                   else "durable (fsync on, synchronous_commit on)")
                if stack.postgres is not None else "external DATABASE_URL",
            },
            "http": http,
            "overload": overload,
            "pipeline": pipeline,
            "celery_noop": noop,
            "llm_stage": llm_stage,
            "llm_concurrency": llm_concurrency,
        }
        results["goals"] = report.goals(results)
        results["pipeline_vs_noop_ratio"] = round(
            pipeline["assessments_per_s"] / noop["tasks_per_s"], 4
        )
        results["total_s"] = round(time.monotonic() - started, 1)
        report.render(console, results)
        report.render_llm_stage(console, llm_stage)
        report.render_llm_concurrency(console, llm_concurrency)
        report.write_json(args.json, results)
        console.print(f"Wrote {args.json}")
        return 0
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping everything the benchmark started[/yellow]")
        return 130
    except Exception:
        console.print(f"[red]benchmark failed:[/red]\n{traceback.format_exc()}")
        for proc in procs.running if procs else []:
            console.print(f"[bold]--- {proc.name} log (last lines) ---[/bold]\n{proc.tail()}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if procs is not None:
            procs.stop_all()
        if stack is not None:
            try:
                stack.stop()
            except Exception as exc:  # noqa: BLE001 - report, keep cleaning
                console.print(f"[red]stopping the stack failed: {exc}[/red]")
        if args.keep:
            console.print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    raise SystemExit(main())
