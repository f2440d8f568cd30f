"""`rampart readiness`: the go-live gate (docs/go-live.md).

Each check reads fresh evidence (a database, a report file, a live service) and answers go,
no-go or warn with the figure, its age and its source, and a fix hint with a doc link. A
check whose source does not exist says "not available", which is a no-go, never a pass.

- model.py: a check's result (status, evidence) and the verdict of them all.
- context.py: what the checks run against (settings, RAMPART_HOME, the repository).
- reports.py: readers of the report files other tools write (load/soak, bundle scan).
- checks_*.py: the checks, one module per area.
- runner.py: the ordered list of checks; render.py: the table and the JSON.
"""
