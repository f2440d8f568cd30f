"""`python -m bench.loadtest load|soak` (`make load`, `make soak`): against the running
`rampart up` stack of RAMPART_HOME (default .rampart/). Writes
<RAMPART_HOME>/reports/load/<kind>-<UTC stamp>.json and prints a table; exit code 0 only
when every scenario passed, 1 when one failed, 2 when there is no usable stack.

Defaults are issue 17's numbers; every figure can be lowered for a quick run, by flag or by
environment (LOAD_WEBHOOK_RATES=10,20 LOAD_WEBHOOK_DURATION=5 ... ; SOAK_DURATION=120).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from bench.loadtest import report
from bench.loadtest.scenarios import LoadConfig, mixed, queue_flood, webhooks
from bench.loadtest.soak import SoakConfig, run_soak
from bench.loadtest.target import NoStack, find, home_dir, preflight

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("webhooks", "mixed", "flood")


def _env(name: str, default: object) -> str:
    return os.environ.get(name) or str(default)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None,
                        help="RAMPART_HOME of the stack (default: $RAMPART_HOME or .rampart)")
    sub = parser.add_subparsers(dest="kind", required=True)
    d = LoadConfig()
    lo = sub.add_parser("load", help="webhooks at stepped rates, mixed workload, queue flood")
    add = lo.add_argument
    add("--only", default=_env("LOAD_ONLY", ",".join(SCENARIOS)),
        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    add("--webhook-rates", type=_floats,
        default=_floats(_env("LOAD_WEBHOOK_RATES", ",".join(f"{r:g}" for r in d.webhook_rates))))
    add("--webhook-duration", type=float,
        default=float(_env("LOAD_WEBHOOK_DURATION", d.webhook_duration_s)))
    add("--webhook-connections", type=int, default=d.webhook_connections)
    add("--webhook-tenants", type=int, default=int(_env("LOAD_WEBHOOK_TENANTS",
                                                          d.webhook_tenants)))
    add("--mixed-rate", type=float, default=float(_env("LOAD_MIXED_RATE", d.mixed_rate)))
    add("--mixed-duration", type=float,
        default=float(_env("LOAD_MIXED_DURATION", d.mixed_duration_s)))
    add("--mixed-connections", type=int, default=d.mixed_connections)
    add("--flood-jobs", type=int, default=int(_env("LOAD_FLOOD_JOBS", d.flood_jobs)))
    add("--flood-rate", type=float, default=float(_env("LOAD_FLOOD_RATE", d.flood_rate)))
    add("--flood-timeout", type=float, default=float(_env("LOAD_FLOOD_TIMEOUT",
                                                            d.flood_timeout_s)))
    add("--sample-every", type=float, default=float(_env("LOAD_SAMPLE_EVERY",
                                                          d.sample_every_s)),
        help="seconds between samples of the relay's queue metrics (queue flood)")
    add("--alert-threshold", type=float,
        default=float(os.environ["LOAD_ALERT_THRESHOLD"])
        if os.environ.get("LOAD_ALERT_THRESHOLD") else None,
        help="seconds; default: the rule's own (ops/prometheus/rules/workers.yml); a "
        "lowered threshold lowers the rule's `for` to the same (quick runs)")
    s = SoakConfig()
    so = sub.add_parser("soak", help="steady rate for a long window; memory and connections")
    add = so.add_argument
    add("--duration", type=float, default=float(_env("SOAK_DURATION", s.duration_s)),
        help="measured seconds, after the warm-up")
    add("--rate", type=float, default=float(_env("SOAK_RATE", s.rate)))
    add("--warmup", type=float, default=float(_env("SOAK_WARMUP", s.warmup_s)))
    add("--slice", type=float, default=float(_env("SOAK_SLICE", s.slice_s)))
    add("--sample-every", type=float, default=float(_env("SOAK_SAMPLE_EVERY",
                                                          s.sample_every_s)))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    args = parse(argv)
    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    try:
        stack = find(args.home or home_dir())
        preflight(stack)
    except NoStack as exc:
        console.print(f"make {args.kind}: {exc}", style="red", markup=False, highlight=False,
                      soft_wrap=True)
        return 2

    def say(line: str) -> None:
        console.print(f"[dim]{report.iso(report.utc_now())}[/dim] {line}", highlight=False)

    started = report.utc_now()
    commit = report.git_commit(ROOT)  # the code that runs, read before a long run
    extra_ok = True
    processes = connections = None
    if args.kind == "load":
        config = LoadConfig(
            webhook_rates=args.webhook_rates, webhook_duration_s=args.webhook_duration,
            webhook_connections=args.webhook_connections, webhook_tenants=args.webhook_tenants,
            mixed_rate=args.mixed_rate, mixed_duration_s=args.mixed_duration,
            mixed_connections=args.mixed_connections, flood_jobs=args.flood_jobs,
            flood_rate=args.flood_rate, flood_timeout_s=args.flood_timeout,
            alert_threshold_s=args.alert_threshold, sample_every_s=args.sample_every,
        )
        only = {v.strip() for v in args.only.split(",") if v.strip()}
        unknown = only - set(SCENARIOS)
        if unknown:
            console.print(f"make load: unknown scenario(s) {', '.join(sorted(unknown))}",
                          style="red", markup=False)
            return 2
        scenarios = []
        if "webhooks" in only:
            scenarios += webhooks(stack, config, say)
        if "mixed" in only:
            scenarios.append(mixed(stack, config, say))
        if "flood" in only:
            scenarios.append(queue_flood(stack, config, say))
    else:
        config = SoakConfig(duration_s=args.duration, rate=args.rate, warmup_s=args.warmup,
                            slice_s=args.slice, sample_every_s=args.sample_every)
        scenario, processes, connections, extra_ok, _ = run_soak(stack, config, say)
        scenarios = [scenario]
    finished = report.utc_now()
    doc = report.build(args.kind, started, finished, scenarios, commit=commit,
                       processes=processes, db_connections=connections, extra_checks=extra_ok)
    path = report.write(stack.home, doc, finished)
    report.show(doc, path, console)
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
