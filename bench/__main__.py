"""`make bench` / `python -m bench`: start a private stack, measure every row of the
performance goals (docs/performance.md) in one run against ceilings measured on this
machine (a bare FastAPI app, no-op Celery tasks), print the goal table and the details,
and write bench-results/latest.json."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from bench import load, report, webhooks
from bench.accounts import signup
from bench.celery_ceiling import measure_noop
from bench.http_rows import assessment_body, measure_http
from bench.llm_pipeline import measure_llm_pipeline
from bench.pipeline import measure_pipeline
from bench.procs import ROOT, Procs, wait_http

MEASURES = ("pipeline", "noop", "llm", "http", "webhooks")
LOG_LEVEL = "WARNING"
UVICORN_FLAGS = "1 process, uvloop + httptools, access log off, no proxy/server headers"
# One client IP sends everything: per-IP limits would measure themselves, not Rampart.
BENCH_SETTINGS = {
    "RATE_LIMIT_ENABLED": "false",
    "MAX_PENDING_BODIES_PER_CLIENT": "100000",
    "LLM_PROVIDERS": "offline",
}


def _rates(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = parser.add_argument
    add("--only", default=",".join(MEASURES),
        help=f"comma-separated subset of {','.join(MEASURES)}")
    add("--duration", type=float, default=6.0, help="seconds measured per HTTP target")
    add("--warmup", type=float, default=1.0, help="warm-up seconds per HTTP target")
    add("--connections", type=int, default=50, help="HTTP connections (closed loop)")
    add("--webhook-rates", type=_rates, default=[100, 500, 1000],
        help="webhook arrival rates per second (open loop)")
    add("--webhook-duration", type=float, default=5.0, help="seconds per webhook rate")
    add("--webhook-connections", type=int, default=100, help="webhook connections")
    add("--webhook-tenants", type=int, default=20, help="tenants with a bound Stripe customer")
    add("--assessments", type=int, default=200, help="pipeline batch size (offline LLM)")
    add("--worker-concurrency", type=int, default=None,
        help="rampart worker --concurrency, and the no-op threads pool's (default: "
        "WORKER_CONCURRENCY's default)")
    add("--tasks", type=int, default=1000, help="no-op Celery tasks per pool")
    add("--prefork-concurrency", type=int, default=os.cpu_count() or 2,
        help="no-op prefork pool processes (reference row)")
    add("--llm-assessments", type=int, default=300, help="pipeline batch size (fake LLM)")
    add("--llm-concurrency", type=int, default=256, help="the fake-LLM worker's concurrency")
    add("--llm-latency", type=float, default=2.0, help="fake LLM seconds per call")
    add("--llm-stage", action="store_true",
        help="also time one assessment's LLM stage (offline, hanging primary, breaker open) "
        "and 200 LLM stages at once on one loop, in-process (about 45 s more)")
    add("--overload", type=int, default=0, metavar="N",
        help="also GET at N connections, past the API's DB connections (0: skip)")
    add("--fast-db", action="store_true",
        help="Postgres with fsync/synchronous_commit off (the test suite's mode); "
        "default: durable, as `make up` runs it")
    add("--json", type=Path, default=ROOT / "bench-results" / "latest.json", help="JSON output")
    add("--keep", action="store_true", help="keep the temp dir (data, logs)")
    args = parser.parse_args(argv)
    args.only = {m.strip() for m in args.only.split(",") if m.strip()}
    unknown = args.only - set(MEASURES)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}")
    return args


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


def _admin_url(stack) -> str:
    """A role that reads every tenant's rows (for the observers): the embedded stack's
    superuser, or BENCH_ADMIN_DATABASE_URL with an external DATABASE_URL."""
    from rampart.devstack.stack import DATABASE

    if stack.postgres is None:
        if not os.environ.get("BENCH_ADMIN_DATABASE_URL"):
            raise RuntimeError("external DATABASE_URL: set BENCH_ADMIN_DATABASE_URL too "
                               "(a role that bypasses RLS, to check the results)")
        return os.environ["BENCH_ADMIN_DATABASE_URL"]
    return stack.postgres.superuser_url.rsplit("/", 1)[0] + "/" + DATABASE


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - the run, in order
    args = _parse(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)
    home = Path(tempfile.mkdtemp(prefix="rampart-bench-", dir="/tmp"))  # nobody must traverse it
    os.chmod(home, 0o755)  # noqa: S103 - Postgres runs as nobody when we are root
    stack = None
    procs: Procs | None = None
    loadavg = " ".join(f"{v:.2f}" for v in os.getloadavg())
    results: dict = {}

    def attempt(key: str, measure: Callable[[], dict]) -> None:
        """Run one measure; a failure is reported in its rows and the run goes on."""
        try:
            results[key] = measure()
        except Exception as exc:  # noqa: BLE001 - reported, the other rows still count
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            results[key] = {"error": f"{type(exc).__name__}: {first}"}
            console.print(f"[red]{key} failed:[/red]\n{traceback.format_exc()}")

    try:
        from rampart.config import get_settings
        from rampart.devstack.ports import free_port
        from rampart.devstack.stack import LocalStack

        with console.status("starting Postgres and Redis, applying migrations..."):
            stack = LocalStack(home, fast=args.fast_db)
            stack_env = stack.start()
        secret = webhooks.new_secret()
        os.environ.update({
            **stack_env, "ENV": "test", "RAMPART_HOME": str(home), "LOG_LEVEL": LOG_LEVEL,
            "STRIPE_WEBHOOK_SECRET": secret, **BENCH_SETTINGS,
        })  # this process reads Rampart's settings too (the no-op Celery app)
        os.environ.pop("LOG_FILE", None)
        get_settings.cache_clear()
        concurrency = args.worker_concurrency or get_settings().worker_concurrency
        pythonpath = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
        logs = home / "logs"
        logs.mkdir()
        procs = Procs(env, logs)
        admin_url = _admin_url(stack)

        api_port, bare_port = free_port(), free_port()
        base_url = f"http://127.0.0.1:{api_port}"
        with console.status("starting the API and the bare app..."):
            api = procs.start(
                "api", ["-m", "bench.api_app", "--host", "127.0.0.1", "--port", str(api_port)]
            )
            bare = procs.start(
                "bare",
                [
                    "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1",
                    "--port", str(bare_port), "--workers", "1", "--no-access-log",
                    "--no-proxy-headers", "--no-server-header", "--log-level", "warning",
                ],
            )
            wait_http(api, f"{base_url}/health")
            wait_http(bare, f"http://127.0.0.1:{bare_port}/get")
            account = signup(base_url, admin_url)

        pid_files = {
            "postgres": stack.postgres.data_dir / "postmaster.pid" if stack.postgres else None,
            "redis": stack.redis.pid_file if stack.redis else None,
        }
        watch = {
            name: [pid] if path and (pid := load.pid_from_file(path)) else []
            for name, path in pid_files.items()
        }
        body = assessment_body()

        # The pipelines first: the HTTP POST window leaves thousands of jobs unpublished.
        if "pipeline" in args.only:
            with console.status(f"pipeline: {args.assessments} assessments, offline LLM..."):
                attempt("pipeline", lambda: measure_pipeline(
                    procs, watch={**watch, "api": [api.pid]}, base_url=base_url,
                    admin_url=admin_url, account=account, body=body, count=args.assessments,
                    concurrency=concurrency,
                ))
        if "noop" in args.only:
            for key, pool, n in (("noop_threads", "threads", concurrency),
                                 ("noop_prefork", "prefork", args.prefork_concurrency)):
                with console.status(f"Celery ceiling: {args.tasks} no-op tasks, {pool}..."):
                    attempt(key, lambda pool=pool, n=n: measure_noop(
                        procs, watch=watch, redis_url=stack_env["REDIS_URL"], count=args.tasks,
                        pool=pool, concurrency=n,
                    ))
        if "llm" in args.only:
            with console.status(f"pipeline: {args.llm_assessments} assessments, fake LLM at "
                                f"{args.llm_latency:g} s per call..."):
                attempt("llm_pipeline", lambda: measure_llm_pipeline(
                    procs, watch={**watch, "api": [api.pid]}, base_url=base_url,
                    admin_url=admin_url, account=account, body=body, count=args.llm_assessments,
                    concurrency=args.llm_concurrency, latency_s=args.llm_latency,
                    fake_port=free_port(),
                ))
        if args.llm_stage:
            from bench.llm_stage import measure_llm_concurrency, measure_llm_stage

            with console.status("LLM stage: offline, hanging primary, breaker open..."):
                attempt("llm_stage", lambda: {"rows": measure_llm_stage()})
            with console.status("LLM concurrency: 200 assessments' LLM stages on one loop..."):
                attempt("llm_concurrency", lambda: measure_llm_concurrency(
                    procs, port=free_port()))

        if "http" in args.only:
            pipe = results.get("pipeline", {})
            sample = pipe.get("sample_assessment_id") if pipe.get("failed") == 0 else None
            if sample is None:  # no completed assessment: any accepted one will do
                sample = httpx.post(
                    f"{base_url}/api/v1/assessments", content=body, timeout=30,
                    headers={**account.headers, "Content-Type": "application/json"},
                ).json()["id"]
            attempt("http", lambda: measure_http(
                servers={"ours": api, "bare": bare}, api_port=api_port, bare_port=bare_port,
                watch=watch, account=account, assessment_id=sample,
                connections=args.connections, warmup_s=args.warmup, duration_s=args.duration,
                status=console.status,
            ))
            if args.overload:
                attempt("overload", lambda: load.run(load.run_load(
                    load.Target("GET at overload", "127.0.0.1", api_port, load.build_request(
                        "GET", "127.0.0.1", api_port, f"/api/v1/assessments/{sample}",
                        headers=account.headers)),
                    connections=args.overload, warmup_s=args.warmup, duration_s=args.duration,
                    watch_pids={"server": [api.pid], **watch},
                )).as_dict())
        if "webhooks" in args.only:
            attempt("webhooks", lambda: webhooks.measure_webhooks(
                api=api, api_port=api_port, admin_url=admin_url, secret=secret, watch=watch,
                rates=args.webhook_rates, duration_s=args.webhook_duration,
                connections=args.webhook_connections, tenants=args.webhook_tenants,
                status=console.status,
            ))

        results["meta"] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _git_commit(),
            "cpu_count": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "loadavg_at_start": loadavg,
            "python": platform.python_version(),
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "api": f"python -m bench.api_app (rampart.app.create_app() + GET /bench/ping, "
            f"served as `rampart api` serves it: {UVICORN_FLAGS}); ENV=test, "
            f"LOG_LEVEL={LOG_LEVEL}",
            "bare": f"python -m uvicorn bench.bare_app:app ({UVICORN_FLAGS}); async routes",
            "postgres": "embedded 18, "
            + ("fsync and synchronous_commit OFF (--fast-db)" if args.fast_db
               else "durable (fsync on, synchronous_commit on)")
            if stack.postgres is not None else "external DATABASE_URL",
            "settings": ", ".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items())
            + f"; rampart worker --concurrency {concurrency}",
        }
        results["goals"] = report.goals(results)
        results["total_s"] = round(time.monotonic() - started, 1)
        report.render(console, results)
        if "rows" in results.get("llm_stage", {}):
            report.render_llm_stage(console, results["llm_stage"]["rows"])
        if "error" not in results.get("llm_concurrency", {"error": None}):
            report.render_llm_concurrency(console, results["llm_concurrency"])
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
