"""Prometheus metrics, one module per job:

- `instruments`: how a metric is declared (`counter`, `histogram`, `gauge`: the house
  naming rules in one place) and the kit's own metrics; each domain declares its own in
  its `metrics.py`.
- `exposition`: how metrics leave a process (prometheus-client multiprocess mode, one
  /metrics endpoint per service, `rampart_build_info`).
- `process_setup`: what each process starts once: OpenTelemetry, Sentry, the build info.

The system-wide gauges the relay reads at scrape time (jobs, queues, database connections)
are kit/jobs/relay_gauges.py: they read the database and the broker, which themselves
record metrics here, so they sit above this package, not in it.

Empty on purpose: `exposition.prepare_multiprocess_dir` must run before anything imports
prometheus_client, and importing it goes through this package first.
"""
