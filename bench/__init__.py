"""`make bench`: Rampart's speed, measured against ceilings on the same machine in one run.

It starts everything it needs (embedded Postgres and Redis, the API, a bare FastAPI app,
the outbox relay and Celery workers), measures, prints a table and writes
bench-results/latest.json, then stops everything it started. Figures, never pass/fail:
see docs/performance.md.
"""
