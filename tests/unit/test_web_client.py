"""The web app's typed client is generated from the API, never written by hand: the
committed OpenAPI document matches the app, and the committed client (web/src/client)
matches what @hey-api/openapi-ts generates from it. Either stale: `make web-client`."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import pytest

from rampart.webapp import openapi
from rampart.webapp.paths import WEB_DIR, node, node_env

CLIENT = WEB_DIR / "src" / "client"
GENERATOR = WEB_DIR / "node_modules" / "@hey-api" / "openapi-ts" / "bin" / "run.js"


def _differences(left: Path, right: Path) -> list[str]:
    found: list[str] = []

    def walk(cmp: filecmp.dircmp, prefix: str) -> None:
        found.extend(f"{prefix}{n}" for n in cmp.left_only + cmp.right_only + cmp.diff_files)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right), "")
    return found


def test_the_committed_openapi_document_matches_the_app() -> None:
    assert not openapi.is_stale(), "web/openapi.json is stale: run `make web-client`"


@pytest.mark.slow  # runs Node and needs web/node_modules, which `make test-fast` leaves out
def test_the_committed_client_is_what_the_generator_makes_of_it(tmp_path: Path) -> None:
    if not GENERATOR.exists():
        pytest.fail("web/node_modules is missing: run `make install` (npm ci)")
    out = tmp_path / "client"
    done = subprocess.run(  # noqa: S603 - the venv's node and the pinned generator
        [node(), str(GENERATOR), "-i", "openapi.json", "-o", str(out)],
        cwd=WEB_DIR,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    stale = _differences(CLIENT, out)
    assert not stale, f"web/src/client is stale ({', '.join(stale)}): run `make web-client`"
