"""The `rampart` command: up, api, worker, relay, migrate, config-docs, trace, mail, the
operator commands of ops_cli.py (dlq, maintenance, incidents, alertmanager-config), and the
go-live gate (readiness/cli.py)."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rampart.cli_help import Typer
from rampart.kit import gc_startup

app = Typer(
    help="""Rampart: a production-hardened multi-tenant SaaS backend.

    Every setting comes from the environment (docs/configuration.md); `rampart COMMAND --help`
    says what each command does.

    **Examples**

    ```
    $ rampart up
    $ rampart trace 4bf92f3577b34da6a3ce929d0e0e4736
    $ rampart dlq list
    ```
    """,
    no_args_is_help=True,
)
# soft_wrap: never break lines ourselves (a wrapped curl example or error is broken when
# not on a terminal, where rich assumes 80 columns); the terminal wraps for display.
console = Console(stderr=True, soft_wrap=True)


# Long-running services get their URLs from the environment (`up` passes them); every
# other command may use the running `rampart up`'s (devstack/running.py).
SERVICES = frozenset({"up", "api", "worker", "relay", "fake-llm", "fake-stripe"})
# These start often (`up`, its restarts, the tests) and turn the cycle collector back on
# once set up (setup_process); every other command turns it on before it runs.
COLLECTOR_PAUSED_UNTIL_SET_UP = frozenset({"api", "worker", "relay"})


@app.callback()
def _before_the_command(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand not in COLLECTOR_PAUSED_UNTIL_SET_UP:
        gc_startup.resume()
    if ctx.invoked_subcommand in SERVICES:
        return
    from rampart.config import fall_back_to
    from rampart.devstack.running import StackFallback

    fall_back_to(
        StackFallback(
            lambda: Path(_settings().rampart_home),
            lambda line: console.print(line, markup=False, highlight=False),
        )
    )


def main() -> None:
    """The `rampart` command. A setting it needs and cannot find, or one of our typed
    errors (the database or a provider unavailable, ...), is one line, not a traceback."""
    from rampart.config import MissingSetting

    gc_startup.pause()  # until the command has imported what it runs (kit/gc_startup.py)
    try:
        app()
    except MissingSetting as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise SystemExit(1) from None
    except Exception as exc:
        # Not imported up front: the errors module loads the metrics, which a service sets
        # up first (multiprocess directory); an AppError means it was imported by now.
        errors = sys.modules.get("rampart.kit.errors")
        if errors is None or not isinstance(exc, errors.AppError):
            raise
        console.print(f"{exc.message} ({exc.code})", style="red", markup=False, highlight=False)
        raise SystemExit(1) from None
    finally:
        gc_startup.resume()  # also after --help or a usage error, which end before it runs


def _settings():
    from rampart.config import get_settings

    return get_settings()


def _fresh_settings_from(env: dict[str, str]) -> None:
    from rampart.config import get_settings

    os.environ.update(env)
    get_settings.cache_clear()


def _prepare_metrics(service: str) -> None:
    """First thing in each service: its own prometheus-client multiprocess directory,
    exported before anything imports prometheus_client (kit/metrics/exposition.py)."""
    from rampart.kit.metrics.exposition import prepare_multiprocess_dir

    prepare_multiprocess_dir(service)


@app.command()
def api(
    host: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Bind address (default: HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(metavar="PORT", help="Port (default: PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="uvicorn worker processes (default: WEB_CONCURRENCY, else 1)."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn; its metrics on METRICS_HOST:METRICS_PORT.

    **Examples**

    ```
    $ rampart api
    $ rampart api --host 0.0.0.0 --port 8000 --workers 4
    ```
    """
    _prepare_metrics("api")
    import uvicorn

    from rampart.kit.metrics import exposition

    settings = _settings()
    # One metrics listener for all uvicorn workers: here, in the main process, before
    # uvicorn starts any (they write to this service's multiprocess directory and never
    # bind the port themselves). The public port has no /metrics.
    try:
        exposition.serve(settings.metrics_port, settings.metrics_host)
    except OSError as exc:
        console.print(
            f"[red]cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
            f"(METRICS_HOST, METRICS_PORT): {exc.strerror or exc}[/red]"
        )
        raise typer.Exit(1) from None
    uvicorn.run(
        "rampart.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # SIGTERM: stop accepting, finish the requests in flight, at most this long.
        timeout_graceful_shutdown=max(1, int(settings.shutdown_drain_seconds)),
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(metavar="N", help="Jobs at once (default: WORKER_CONCURRENCY)."),
    ] = None,
) -> None:
    """Run a Celery worker for the background jobs: a threads pool whose jobs share one
    event loop (kit/jobs/loop.py), so one process holds many LLM calls in flight.

    **Examples**

    ```
    $ rampart worker
    $ rampart worker --concurrency 32
    $ WORKER_METRICS_PORT=9101 rampart worker
    ```
    """
    _prepare_metrics("worker")
    from celery.utils.log import mlevel

    from rampart.worker import celery_app

    settings = _settings()
    # Celery's worker program itself, as `celery worker` builds it, without going through
    # Celery's command line (importing it, an interactive shell included, made a worker's
    # start cost 0.4 s more CPU).
    celery_app.Worker(
        quiet=True,  # no banner: every line on stdout is JSON (worker.py)
        loglevel=mlevel(settings.log_level),
        concurrency=concurrency or settings.worker_concurrency,
        pool_cls="threads",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    ).start()


@app.command()
def relay() -> None:
    """Publish committed outbox rows to the broker, until SIGTERM.

    With RELAY_METRICS_PORT set, its metrics also carry the system-wide gauges (jobs,
    queues, database connections).

    **Examples**

    ```
    $ rampart relay
    $ RELAY_METRICS_PORT=9102 rampart relay
    ```
    """
    _prepare_metrics("relay")
    from rampart.kit.db.pool import close_pool
    from rampart.kit.jobs.celery_app import get_celery
    from rampart.kit.jobs.relay import run_relay
    from rampart.kit.jobs.relay_gauges import OpsCollector
    from rampart.kit.logging import configure_service_logging, get_logger
    from rampart.kit.metrics import exposition
    from rampart.kit.metrics.process_setup import setup_process

    settings = _settings()
    configure_service_logging("relay", settings)
    setup_process("relay")
    # The relay alone also reports the system-wide gauges (jobs, queues, DB connections).
    port = settings.relay_metrics_port
    from rampart.backups.metrics import BackupCollector
    from rampart.backups.tools import repository
    from rampart.billing.metrics import BillingCollector

    collectors = [OpsCollector(), BillingCollector(), BackupCollector(repository())]
    if exposition.serve(port, settings.metrics_host, collectors) is not None:
        get_logger("rampart.metrics").info("metrics_serving", host=settings.metrics_host, port=port)
    import asyncio

    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_relay(get_celery(), stop)
        finally:
            await close_pool()

    uvloop.run(main())


@app.command("release-deliveries")
def release_deliveries() -> None:
    """Hand the deliveries of dead workers back to the job queue now, instead of after
    CELERY_VISIBILITY_TIMEOUT_SECONDS.

    Refuses while any worker answers a ping: its running tasks would be delivered twice.

    **Examples**

    ```
    $ rampart release-deliveries
    ```
    """
    from rampart.kit.jobs.celery_app import get_celery
    from rampart.kit.jobs.redelivery import release_unacked

    url = _settings().require("redis_url")
    replies = get_celery().control.ping(timeout=2.0)
    if replies:
        names = ", ".join(sorted(name for reply in replies for name in reply))
        console.print(
            f"[red]refusing: {len(replies)} worker(s) answer ({names}). Stop every worker "
            "of this broker first, or wait for the visibility timeout.[/red]"
        )
        raise typer.Exit(1)
    released = release_unacked(url)
    console.print(f"released {released} deliver{'y' if released == 1 else 'ies'}")


@app.command()
def migrate() -> None:
    """Apply database migrations as the migration role (MIGRATION_DATABASE_URL).

    When DATABASE_URL (user app_rw) or OPERATOR_DATABASE_URL (user rampart_operator) is
    set, the role's login password is set to the one in that URL.

    **Examples**

    ```
    $ MIGRATION_DATABASE_URL=postgresql://migration_admin@db/rampart rampart migrate
    ```
    """
    from rampart.kit.db.migrate import current_revision
    from rampart.kit.db.migrate import migrate as run_migrations

    settings = _settings()
    url = settings.require("migration_database_url")
    runtime = settings.database_url.get_secret_value() if settings.database_url else None
    operator = (
        settings.operator_database_url.get_secret_value()
        if settings.operator_database_url
        else None
    )
    run_migrations(url, runtime, operator)
    console.print(f"[green]migrated[/green] to revision {current_revision(url)}")


@app.command("config-docs")
def config_docs(
    check: Annotated[bool, typer.Option(help="Fail if docs/configuration.md is stale.")] = False,
) -> None:
    """Write docs/configuration.md from the Settings model.

    **Examples**

    ```
    $ rampart config-docs
    $ rampart config-docs --check
    ```
    """
    from rampart.config_docs import DOC_PATH, render

    text = render()
    if check:
        if not DOC_PATH.exists() or DOC_PATH.read_text() != text:
            console.print("docs/configuration.md is stale: run `rampart config-docs`")
            raise typer.Exit(1)
        return
    DOC_PATH.write_text(text)
    console.print(f"wrote {DOC_PATH}")


@app.command()
def trace(
    trace_id: Annotated[
        str, typer.Argument(metavar="TRACE_ID", help="A trace_id (or a client's X-Request-ID).")
    ],
    logs: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="PATH",
            help="Log directory or file; repeatable (default: <RAMPART_HOME>/logs).",
        ),
    ] = None,
    database: Annotated[bool, typer.Option(help="Also search the database.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False,
) -> None:
    """Everything that happened under one trace id, in time order: the API, relay and
    worker log lines and the database rows (jobs, outbox, dead letters, audit events).

    Exits 1 when nothing is found.

    **Examples**

    ```
    $ rampart trace 4bf92f3577b34da6a3ce929d0e0e4736
    $ rampart trace 4bf92f3577b34da6a3ce929d0e0e4736 --logs /var/log/rampart --no-database
    $ rampart trace 4bf92f3577b34da6a3ce929d0e0e4736 --json
    ```
    """
    import json

    from rampart.kit.trace_lookup import gather, render

    settings = _settings()
    locations = logs or [Path(settings.rampart_home) / "logs"]
    timeline = gather(trace_id, locations, database=database)
    out = Console(soft_wrap=True, highlight=False)
    if as_json:
        for entry in timeline.entries:
            out.print_json(json.dumps(entry.as_json(), default=str), indent=None)
    else:
        render(timeline, out)
    if not timeline.entries:
        console.print(
            f"nothing found under {trace_id} in {', '.join(map(str, locations))}"
            + ("" if database else " (database not searched)")
        )
        raise typer.Exit(1)


@app.command()
def mail(
    to: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Only mails to this address (any spelling of it)."),
    ] = None,
    last: Annotated[
        int, typer.Option(metavar="N", help="How many of the newest mails to print.")
    ] = 5,
) -> None:
    """Print the mails the local capture server kept (`rampart up` sends every mail there,
    into <RAMPART_HOME>/mail/): verification links, invitations, notices.

    **Examples**

    ```
    $ rampart mail
    $ rampart mail --to you@example.com --last 1
    ```
    """
    from email.utils import parseaddr

    from rampart.devstack.mailbox import captured
    from rampart.kit.security.emails import canonical_email

    directory = Path(_settings().rampart_home).resolve() / "mail"
    mails = captured(directory)
    if to is not None:
        wanted = canonical_email(to)
        mails = [m for m in mails if canonical_email(parseaddr(m.to)[1] or m.to) == wanted]
    out = Console(soft_wrap=True, highlight=False)
    for found in mails[-last:] if last > 0 else []:
        out.print(f"To: {found.to}\nSubject: {found.subject}\n({found.path})\n", markup=False)
        out.print(f"{found.text}\n{'-' * 72}", markup=False)
    if not mails:
        console.print(f"no mail in {directory}")


@app.command("fake-llm")
def fake_llm(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port.")] = 8089,
) -> None:
    """Serve a fake LLM (OpenAI and Anthropic wire formats) with fault injection.

    Point OPENAI_BASE_URL at `http://HOST:PORT/v1` or ANTHROPIC_BASE_URL at
    `http://HOST:PORT`. Set a fault with `POST /_faults` and a JSON body: `mode`, and as the
    mode needs `status`, `retry_after`, `latency` or `hang` (seconds), `times` (the next N
    calls only) and `target` (`openai` or `anthropic` only). `GET /_stats` counts the calls,
    `POST /_reset` clears the faults and the counts, and cuts off the calls still waiting
    (a hang, a latency). The fault modes:

    - `ok`: answer normally
    - `error`: HTTP `status` (default 500) with the vendor's error body
    - `status`: HTTP `status` (default 400), e.g. 401, 404, 529
    - `rate_limit`: HTTP 429, with `Retry-After: retry_after` when given
    - `latency`: wait `latency` seconds, then answer normally
    - `hang`: accept the request and answer nothing for `hang` seconds (default 600)
    - `malformed_json`: HTTP 200, the model's text is not JSON
    - `wrong_schema`: HTTP 200, valid JSON that does not match the schema
    - `drip`: HTTP 200, the answer in 20 pieces `latency` seconds apart

    **Examples**

    ```
    $ rampart fake-llm --port 8089
    $ LLM_PROVIDERS=openai,offline OPENAI_BASE_URL=http://127.0.0.1:8089/v1 rampart up
    $ curl -X POST 127.0.0.1:8089/_faults -d '{"mode": "error", "status": 503, "times": 3}'
    $ curl -X POST 127.0.0.1:8089/_faults -d '{"mode": "hang", "target": "openai"}'
    ```
    """
    from rampart.llm.fake_server import serve

    serve(host, port)


@app.command("fake-stripe")
def fake_stripe(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port.")] = 12111,
    webhook_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Where to POST the signed webhooks (our endpoint)."),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            metavar="SECRET",
            help="The whsec_ secret to sign webhooks with (default: STRIPE_WEBHOOK_SECRET).",
        ),
    ] = None,
) -> None:
    """Serve a fake Stripe API (the REST shapes Rampart uses) that signs and sends webhooks.

    Point STRIPE_API_BASE at `http://HOST:PORT`; any `sk_` key is accepted. It serves
    customers, Checkout Sessions, Customer Portal sessions, subscriptions and the events
    list (with `delivery_success`), honours `Idempotency-Key`, and sends each event to
    the webhook URL signed with Stripe's scheme. What a customer or Stripe would do is a
    control call: `POST /_checkout/SESSION/complete` (pays: subscription created, checkout
    completed, invoice paid), `POST /_subscriptions/SUB/payment_failed`, `.../pay`,
    `.../status` with a JSON `status`, `POST /_drop` with `times` (lose the next webhooks),
    `GET /_events`.

    **Examples**

    ```
    $ rampart fake-stripe --port 12111 --webhook-url http://127.0.0.1:8000/api/v1/webhooks/stripe
    $ STRIPE_API_BASE=http://127.0.0.1:12111 rampart up
    $ curl -X POST 127.0.0.1:12111/_checkout/cs_test_123/complete -d '{"status": "active"}'
    ```
    """
    from rampart.billing.fake_stripe import serve

    secret = webhook_secret or _settings().stripe_webhook_secret.get_secret_value()
    serve(host, port, webhook_url, secret)


@app.command("billing-reconcile")
def billing_reconcile(
    every: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Run again every SECONDS (default: run once)."),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            metavar="SECONDS",
            help="How far back to list Stripe events (default: BILLING_RECONCILE_WINDOW_SECONDS).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            help="Serve /metrics for Prometheus on this port (with --every, default: "
            "BILLING_METRICS_PORT).",
        ),
    ] = None,
) -> None:
    """Reconcile billing with Stripe: apply missed webhooks, report drift, end grace periods.

    Lists Stripe's undelivered events of the window and applies them through the webhook's
    own idempotent path, compares each customer's subscription status with ours (drift is
    logged and counted, not guessed at), and downgrades tenants whose grace period after
    a failed payment is over. Runbook: docs/runbooks/billing-reconciliation-drift.md.

    **Examples**

    ```
    $ rampart billing-reconcile
    $ rampart billing-reconcile --every 900 --metrics-port 9103
    $ rampart billing-reconcile --window 86400
    ```
    """
    import asyncio
    import time

    from rampart.billing import stripe_api
    from rampart.billing.reconcile import reconcile
    from rampart.kit.db.pool import close_pool
    from rampart.kit.logging import configure_service_logging

    settings = _settings()
    settings.require("database_url")  # no database: refuse in one line before calling Stripe
    if settings.stripe_api_key is None and not settings.stripe_api_base:
        # no Stripe configured: the fake Stripe of the running `rampart up`, or one line
        _fresh_settings_from({"STRIPE_API_BASE": settings.require("stripe_api_base")})
        settings = _settings()
    configure_service_logging("billing-reconcile", settings)
    if every is not None:  # the scheduled one serves metrics; a one-off run never binds them
        metrics_port = metrics_port or settings.billing_metrics_port
    if metrics_port:
        from rampart.kit.metrics import exposition

        exposition.serve(metrics_port, settings.metrics_host)

    async def once():
        try:
            return await reconcile(window)
        finally:
            await close_pool()
            stripe_api.forget_clients()  # they belong to this run's event loop

    from rampart.billing.stripe_api import BillingNotConfigured
    from rampart.kit.errors import ServiceUnavailable

    while True:
        try:
            report = asyncio.run(once())
        except ServiceUnavailable as exc:
            # Stripe or the database down: one round lost (logged, counted as failed);
            # a scheduled run tries again, a single run says why and fails.
            if every is None or isinstance(exc, BillingNotConfigured):
                raise
            time.sleep(every)
            continue
        console.print(
            f"events {report.events_seen}, repaired {len(report.repaired)}, "
            f"drift {len(report.drift)}, downgraded {report.downgraded}",
            markup=False,
        )
        if every is None:
            raise typer.Exit(1 if report.drift else 0)
        time.sleep(every)


def _acquire_up_lock(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    handle = open(home / "up.lock", "a+")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        console.print(
            f"[red]rampart up is already running (pid {pid}) for {home}; stop it first.[/red]"
        )
        raise typer.Exit(1) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _metrics_ports(settings) -> dict[str, str]:
    """The API's, worker's, relay's and billing reconciliation's metrics ports for `up`: as
    configured, else 9100-9103 when free (stable for a local Prometheus), else any free
    port."""
    from rampart.devstack.ports import free_port, port_free

    chosen = {}
    for service, configured, default in (
        ("api", settings.metrics_port, 9100),
        ("worker", settings.worker_metrics_port, 9101),
        ("relay", settings.relay_metrics_port, 9102),
        ("billing", settings.billing_metrics_port, 9103),
    ):
        usable = port_free(settings.metrics_host, default)
        chosen[service] = str(configured or (default if usable else free_port()))
    return chosen


def _service_bindings(settings, metrics: dict[str, str]):
    """The ports the API, worker and relay will listen on (the metrics ports `up` chose
    itself were free a moment ago)."""
    from rampart.devstack.ports import Binding

    found = [Binding("API", settings.host, settings.port, "set PORT to another port")]
    if settings.web_port:
        change = "set WEB_PORT to another port (0: no web app)"
        found.append(Binding("web app", "127.0.0.1", settings.web_port, change))
    for service, variable, configured in (
        ("api", "METRICS_PORT", settings.metrics_port),
        ("worker", "WORKER_METRICS_PORT", settings.worker_metrics_port),
        ("relay", "RELAY_METRICS_PORT", settings.relay_metrics_port),
        ("billing", "BILLING_METRICS_PORT", settings.billing_metrics_port),
    ):
        if configured:
            host, port = settings.metrics_host, int(metrics[service])
            change = f"set {variable} to another port"
            found.append(Binding(f"{service} metrics", host, port, change))
    return found


def _stop_leftovers(home: Path, drain: float, force_now) -> None:
    """Stop what an earlier `up` for `home` left running (it was killed): the children it
    recorded, if each is still the very process it started (pid and start time), and any
    process carrying its marker (a service's orphaned children). They hold the ports, and
    their deliveries must not be released while they still run."""
    from rampart.devstack.running import leftover_groups
    from rampart.devstack.supervisor import leftovers, stop_groups

    recorded = leftover_groups(home)
    groups = set(recorded) | set(leftovers(home))
    if groups:
        console.print(f"stopping {len(groups)} process group(s) an earlier `up` left running")
        stop_groups(groups, drain, force_now, signals=recorded)


def _release_stale_deliveries(redis_url: str, why: str) -> None:
    """Hand the unacknowledged deliveries of our dead worker back to the queue."""
    from rampart.kit.jobs.redelivery import release_unacked

    try:
        released = release_unacked(redis_url)
    except Exception as exc:  # Redis down: they come back after the visibility timeout
        console.print(f"[yellow]could not release stale deliveries ({why}): {exc}[/yellow]")
        return
    if released:
        noun = "delivery" if released == 1 else "deliveries"
        console.print(f"released {released} stale {noun} {why}")


def _archive_settings(settings) -> dict[str, str]:
    """Server settings that archive the embedded Postgres' WAL into BACKUP_DIR/wal."""
    from rampart.backups.tools import repository
    from rampart.backups.wal import archive_settings, server_owner

    return archive_settings(
        repository() / "wal", settings.backup_archive_timeout_seconds, server_owner()
    )


def _build_web(web_port: int) -> bool:
    """Build web/ for `up` (once: later runs reuse the build); False, said why, when the
    web app is left out (WEB_PORT=0, or its build failed: the API still comes up)."""
    if not web_port:
        return False
    from rampart.webapp.build import WebBuildError, build

    try:
        with console.status("building the web app (once; later runs reuse the build)..."):
            build()
    except (WebBuildError, OSError) as exc:
        console.print(f"web app left out: {exc}", style="red", markup=False, highlight=False)
        return False
    return True


@app.command()
def up() -> None:
    """Start everything locally: Postgres, Redis, migrations, API, worker, relay; restart
    whatever crashes; on Ctrl-C or SIGTERM let running work finish, then stop.

    Data and logs live in RAMPART_HOME (default `.rampart/`). DATABASE_URL or REDIS_URL,
    when set, are used instead of the embedded servers.

    **Examples**

    ```
    $ rampart up
    $ RAMPART_HOME=/tmp/rampart-demo PORT=8001 rampart up
    ```
    """
    from rampart.devstack import running
    from rampart.devstack.ports import first_busy
    from rampart.devstack.stack import LocalStack
    from rampart.devstack.supervisor import (
        CrashLoop,
        Service,
        Supervisor,
        rampart_command,
        stop_services,
    )
    from rampart.kit.processes import start_time

    os.umask(0o077)  # logs, Redis files, secrets: readable by their owner only
    settings = _settings()
    home = Path(settings.rampart_home).resolve()
    lock = _acquire_up_lock(home)
    # Its Postgres and Redis die with it, like its services (PR_SET_PDEATHSIG).
    # WAL archiving and the backup schedule for the embedded Postgres, on by default
    # (docs/backups.md).
    archiving = settings.backups_enabled and not os.environ.get("DATABASE_URL")
    stack = LocalStack(
        home, supervised=True, postgres_settings=_archive_settings(settings) if archiving else {}
    )
    services: dict[str, Service] = {}
    signals = 0

    def request_stop(*_: object) -> None:
        nonlocal signals
        signals += 1
        if signals == 2:
            console.print("[yellow]second signal: not waiting for running work[/yellow]")

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    drain = settings.shutdown_drain_seconds
    _stop_leftovers(home, drain, lambda: signals > 0)
    # Every port is checked before anything starts: a busy one is one line, not a crash
    # loop after the banner.
    metrics = _metrics_ports(settings)
    busy = first_busy(stack.bindings() + _service_bindings(settings, metrics))
    if busy is not None or signals:
        if busy is not None:
            console.print(busy.busy_message(), style="red", markup=False, highlight=False)
        lock.close()
        raise typer.Exit(1)
    record = running.UpRecord(os.getpid(), start_time(os.getpid()), urls={})

    def children() -> dict[str, running.Child]:
        """The children running now, as up.json records them."""
        found = {}
        if stack.postgres is not None and stack.postgres.pid is not None:
            found["postgres"] = running.child(stack.postgres.pid, signal.SIGINT)
        if stack.redis is not None and stack.redis.pid is not None:
            found["redis"] = running.child(stack.redis.pid)
        for name, service in services.items():
            if service.popen is not None and service.popen.poll() is None:
                found[name] = running.child(service.popen.pid)
        return found

    def keep_record() -> None:
        now = children()
        if {n: c.pid for n, c in now.items()} != {n: c.pid for n, c in record.children.items()}:
            record.children = now
            running.write(home, record)

    web_built = _build_web(settings.web_port)
    try:
        with console.status("starting Postgres and Redis, applying migrations..."):
            env = stack.start()
        record.urls = {name: env[name] for name in running.URL_VARIABLES if name in env}
        keep_record()
        # The superuser URL goes to the backup schedule only (and to operator commands,
        # through up.json), never into the API's, worker's or relay's environment.
        backup_url = env.pop("BACKUP_DATABASE_URL", None)
        _fresh_settings_from(env)
        logs = home / "logs"
        logs.mkdir(mode=0o700, exist_ok=True)
        port = str(settings.port)
        env = {
            **env,
            "RAMPART_HOME": str(home),
            "METRICS_PORT": metrics["api"],
            "WORKER_METRICS_PORT": metrics["worker"],
            "RELAY_METRICS_PORT": metrics["relay"],
            "BILLING_METRICS_PORT": metrics["billing"],
        }
        commands = [("api", ["api", "--port", port]), ("worker", ["worker"]), ("relay", ["relay"])]
        if stack.postgres is not None and archiving:
            commands.append(("backups", ["backup", "schedule"]))
        if stack.stripe is not None or settings.stripe_api_key or settings.stripe_api_base:
            every = str(settings.billing_reconcile_interval_seconds)
            commands.append(("billing", ["billing-reconcile", "--every", every]))
        web_url = f"http://127.0.0.1:{settings.web_port}"
        if web_built:
            # Links in mails open the web app (unless EMAIL_LINK_BASE_URL says otherwise).
            env.setdefault("EMAIL_LINK_BASE_URL", os.environ.get("EMAIL_LINK_BASE_URL", web_url))
            api_local = f"http://127.0.0.1:{port}"
            web_args = ["web", "serve", "--port", str(settings.web_port), "--api-url", api_local]
            commands.append(("web", web_args))
        for name, args in commands:
            log_env = {**env, "LOG_FILE": str(logs / f"{name}.log")}
            if name == "backups" and backup_url:
                log_env["BACKUP_DATABASE_URL"] = backup_url
            services[name] = Service(name, rampart_command(*args), log_env, home)
        # Our Redis serves no other worker: whatever it holds unacknowledged belongs to a
        # worker of ours that is gone (killed with an earlier `up`, or crashed just now).
        own_broker = stack.redis.url if stack.redis is not None else None

        def before_worker_start(why: str) -> None:
            services["worker"].clear_group()
            if own_broker is not None:
                _release_stale_deliveries(own_broker, why)

        before_worker_start("of a worker that is gone")
        for service in services.values():
            service.start()
        local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)  # noqa: S104
        record.urls[running.API_URL] = (
            f"http://[{local}]:{port}" if ":" in local else f"http://{local}:{port}"
        )
        if web_built:
            record.urls[running.WEB_URL] = web_url
        if stack.stripe is not None:  # the fake Stripe sends its webhooks to this API
            stack.stripe.fake.webhook_url = f"{record.urls[running.API_URL]}/api/v1/webhooks/stripe"
        running.write(home, record)
        keep_record()

        supervisor = Supervisor(lambda line: console.print(line, highlight=False))
        if stack.postgres is not None:
            supervisor.watch("postgres", stack.postgres.start, stack.postgres.ended)
        if stack.redis is not None:
            supervisor.watch("redis", stack.redis.start, stack.redis.ended)
        for name, service in services.items():
            supervisor.watch(
                name,
                service.start,
                service.ended,
                before_restart=(
                    (lambda: before_worker_start("of the worker that crashed"))
                    if name == "worker"
                    else service.clear_group
                ),
            )

        base = f"http://{settings.host}:{port}"
        mhost = settings.metrics_host
        console.print(
            f"\n[bold green]Rampart is up[/bold green]  (data in {home}, logs in {logs})\n"
            + (f"  web app   {web_url}   (the API under /api/, one origin)\n" if web_built else "")
            + f"  API docs  {base}/docs\n"
            f"  metrics   http://{mhost}:{metrics['api']}/metrics (api)\n"
            f"            http://{mhost}:{metrics['worker']}/metrics (worker)\n"
            f"            http://{mhost}:{metrics['relay']}/metrics (relay: also jobs, queues, "
            "DB connections)\n"
            f"            http://{mhost}:{metrics['billing']}/metrics (billing reconciliation)\n"
            f"  ready     {base}/ready\n"
            f"  trace     rampart trace <trace_id>   (the X-Request-ID of any response)\n"
            + (
                f"  mail      rampart mail   (mails are kept, not sent: {stack.mail.directory})\n"
                if stack.mail is not None
                else ""
            )
            + (
                f"  stripe    fake Stripe at {stack.stripe.url} (`rampart fake-stripe --help`)\n"
                if stack.stripe is not None
                else ""
            )
            + f"  try:  curl -s -X POST {base}/api/v1/auth/signup"
            " -H 'content-type: application/json'"
            ' -d \'{"email":"you@example.com","password":"correct horse battery",'
            '"tenant_name":"Acme"}\'\n'
            "        then follow the link in `rampart mail` (confirms the address) and log in\n"
            "A process that crashes is restarted. Ctrl-C stops everything (running jobs "
            f"finish first, up to {drain:g}s; Ctrl-C again to not wait).\n"
        )
        while not signals:
            try:
                supervisor.check()
            except CrashLoop as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(1) from None
            keep_record()
            time.sleep(0.2)
    finally:
        console.print("stopping... (running jobs finish first)" if services else "stopping...")
        started = time.monotonic()
        clean = stop_services(services.values(), drain, lambda: signals > 1)
        if services:
            how = "" if clean else f"; what still ran after {drain:g}s was killed"
            console.print(f"services stopped in {time.monotonic() - started:.1f}s{how}")
        stack.stop()
        running.remove(home)
        lock.close()
        console.print("stopped.")


from rampart.backups.cli import backup_app, drill, restore  # noqa: E402 - sub-commands
from rampart.db_cli import db_app  # noqa: E402 - sub-commands
from rampart.ops_cli import (  # noqa: E402 - sub-commands
    alertmanager_config,
    dlq_app,
    incidents,
    maintenance_app,
)
from rampart.readiness.cli import readiness  # noqa: E402 - the go-live gate

app.add_typer(backup_app, name="backup")
app.command("restore")(restore)
app.command("drill")(drill)
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")
app.add_typer(maintenance_app, name="maintenance")
app.command("incidents")(incidents)
app.command("alertmanager-config")(alertmanager_config)
app.command("readiness")(readiness)

from rampart.demo import demo  # noqa: E402 - the newcomer's tour
from rampart.webapp.cli import openapi, web_app  # noqa: E402 - sub-commands

app.add_typer(web_app, name="web")
app.command("openapi")(openapi)

app.command("demo")(demo)

if __name__ == "__main__":
    main()
