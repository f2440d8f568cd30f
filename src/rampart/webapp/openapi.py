"""The API's OpenAPI document, produced offline from the app (no server, no database): the
web app's typed client and Zod schemas are generated from it (web/openapi-ts.config.ts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rampart.webapp.paths import WEB_DIR

OPENAPI_PATH = WEB_DIR / "openapi.json"


def document() -> dict[str, Any]:
    from rampart.app import create_app

    return create_app().openapi()


def render() -> str:
    """The document as committed: sorted keys, two-space indent, a final newline, so a
    change in the API is a readable diff."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: Path = OPENAPI_PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path


def is_stale(path: Path = OPENAPI_PATH) -> bool:
    return not path.exists() or path.read_text(encoding="utf-8") != render()
