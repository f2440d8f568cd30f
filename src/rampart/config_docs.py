"""Render docs/configuration.md from the Settings model (the one source of truth)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from rampart.config import Settings

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

HEADER = """# Configuration

Generated from `rampart.config.Settings` by `rampart config-docs`; do not edit by hand
(a test fails when this file and the model disagree).

Every setting is an environment variable (case-insensitive). Secrets can also be read
from files: set `SECRETS_DIR` to a directory (e.g. `/run/secrets`) holding one file per
variable, named in lower case (`jwt_secret`). Outside `ENV=dev|test`, startup refuses a
missing or weak `JWT_SECRET`, a missing `DATABASE_URL` or `REDIS_URL`, and a
missing API key for a provider named in `LLM_PROVIDERS`, naming each.

| Variable | Type | Default | Description |
| --- | --- | --- | --- |
"""


def _type_name(annotation: object) -> str:
    text = str(annotation).replace("typing.", "").replace("pydantic.types.", "")
    return text.replace("<class '", "").replace("'>", "").replace("|", "or")


def _default(value: object, secret: bool) -> str:
    if value is None:
        return "—"
    if secret or isinstance(value, SecretStr):
        return "(dev only; required elsewhere)"
    return f"`{value}`"


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        secret = "SecretStr" in str(field.annotation)
        rows.append(
            f"| `{name.upper()}` | {_type_name(field.annotation)} | "
            f"{_default(field.default, secret)} | {field.description or ''} |"
        )
    return HEADER + "\n".join(rows) + "\n"
