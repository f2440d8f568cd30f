"""The processes that serve no HTTP load no web framework.

`up` starts a worker, a relay and the billing reconciler beside the API, and operators run
the CLI's commands by hand; each is a fresh Python process that imports what it needs.
FastAPI alone is ~0.2 s of CPU at every such start (the test suite starts a few hundred).
The typed errors (kit/errors.py), the caller (kit/security/principal.py) and the role
table (kit/security/roles.py) are framework-free for this; the HTTP side of each lives in
kit/http_errors.py, kit/security/auth.py and kit/security/permissions.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# Never connected to: importing the worker builds its Celery app from these.
ENV = {
    **os.environ,
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
}

SERVICES = {
    "worker": "import rampart.worker as w; w.celery_app.loader.import_default_modules()",
    "relay": "from rampart.kit.jobs import relay, relay_gauges",
    "billing-reconcile": "from rampart.billing import reconcile, stripe_api",
    "operator commands": (
        "from rampart import cli, ops_cli, db_cli; from rampart.kit.jobs import redelivery;"
        " from rampart.kit.db import migrate"
    ),
}


def loaded_modules(code: str) -> set[str]:
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", f"{code}\nimport sys; print(*sys.modules)"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stdout.split())


@pytest.mark.parametrize("code", SERVICES.values(), ids=SERVICES.keys())
def test_a_process_that_serves_no_http_loads_no_fastapi(code: str) -> None:
    assert "fastapi" not in loaded_modules(code)


def test_the_api_does_load_it_so_the_probe_sees_it() -> None:
    assert "fastapi" in loaded_modules("import rampart.app")
