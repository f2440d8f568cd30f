"""The web app's built output must hold no secret: a scan of `web/.next/` (server and
browser bundles, source maps, manifests) for

1. every secret the stack knows, by value: each `SecretStr` setting (JWT and session
   secrets, Stripe keys and webhook secret, database and Redis URLs and the passwords in
   them, LLM API keys, the alert tokens, Sentry's DSN), the dev-only defaults, and the
   credentials `rampart up` generated into `<RAMPART_HOME>/secrets.json`;
2. secret-shaped strings, whoever's: Stripe secret/restricted keys and webhook secrets,
   OpenAI and Anthropic keys, AWS access keys, private keys in PEM, JWTs, GitHub and
   Slack tokens, and connection URLs with a password in them.

A finding names the file and the kind (`known:SESSION_SECRET`, `shape:stripe_secret_key`),
never the value. The report `<RAMPART_HOME>/reports/bundle-scan.json` is read by the
readiness gate: `{"scanned_at", "build_dir", "files", "findings": [{"file", "kind"}],
"clean"}`. Our own module: detect-secrets finds shapes, not the values this stack holds,
and does not read minified bundles well; this is a few regular expressions and a loop.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from rampart.webapp.paths import BUILD_DIR

REPORT_NAME = "bundle-scan.json"
# Shorter known values would match by accident (and are no secret worth the name).
MIN_KNOWN_LENGTH = 8
MAX_FILE_BYTES = 64 * 1024 * 1024

# Each shape counts only where it starts a word, as a leading \b would say (`_found`):
# a pattern that starts with \b cannot jump to its literal prefix and the engine tries
# every position instead (9 s instead of 0.8 s for a 44 MB build).
SHAPES: dict[str, re.Pattern[str]] = {
    "stripe_secret_key": re.compile(r"[sr]k_(?:live|test)_[0-9A-Za-z]{10,}"),
    "stripe_webhook_secret": re.compile(r"whsec_[0-9A-Za-z_-]{10,}"),
    "openai_api_key": re.compile(r"sk-(?:proj-)?[A-Za-z0-9_-]{32,}"),
    "anthropic_api_key": re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}"),
    "aws_access_key_id": re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private_key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "github_token": re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}"),
    "slack_token": re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}"),
    "url_with_password": re.compile(
        r"(?:postgres(?:ql)?|mysql|redis|rediss|amqp|mongodb(?:\+srv)?|smtps?)"
        r"(?:\+[a-z0-9]+)?://[^\s:/@\"'`]*:[^\s@/\"'`]{3,}@"
    ),
}

# Environment variables whose values are secrets by their name, beyond the settings.
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY|DSN)", re.I)


_WORD = re.compile(r"\w")


def _found(pattern: re.Pattern[str], text: str) -> bool:
    """Whether `pattern` matches at a word boundary (\b before its first character)."""
    match = pattern.search(text)
    while match:
        start = match.start()
        if start == 0 or not _WORD.match(text, start - 1) or not _WORD.match(text, start):
            return True
        match = pattern.search(text, start + 1)
    return False


@dataclass(frozen=True)
class Finding:
    file: str
    kind: str


def _url_parts(name: str, value: str) -> dict[str, str]:
    """A URL setting: the URL itself and the password in it."""
    found = {name: value}
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    if password:
        found[f"{name}:password"] = password
    return found


def known_secrets(
    home: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every secret this stack knows, by a name to report: settings, dev defaults, the
    dev stack's generated credentials, and secret-named environment variables."""
    from pydantic import SecretStr

    from rampart import config

    environ = os.environ if environ is None else environ
    found: dict[str, str] = {
        "DEV_JWT_SECRET": config.DEV_JWT_SECRET,
        "DEV_SESSION_SECRET": config.DEV_SESSION_SECRET,
        "DEV_STRIPE_WEBHOOK_SECRET": config.DEV_STRIPE_WEBHOOK_SECRET,
    }
    try:
        settings = config.get_settings()
    except Exception:  # noqa: BLE001 - a broken environment still gets the other checks
        settings = None
    if settings is not None:
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if isinstance(value, SecretStr):
                found |= _url_parts(name.upper(), value.get_secret_value())
    if home is not None and (home / "secrets.json").exists():
        stack = json.loads((home / "secrets.json").read_text())
        for key, value in stack.items():
            if isinstance(value, str):
                found[f"stack:{key}"] = value
    for name, value in environ.items():
        if _SECRET_NAME.search(name) and not name.startswith("NEXT_PUBLIC_"):
            found |= _url_parts(name, value)
    return {name: value for name, value in found.items() if len(value) >= MIN_KNOWN_LENGTH}


def _files(build_dir: Path) -> Iterable[Path]:
    for directory, _dirs, files in os.walk(build_dir):
        for name in sorted(files):
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path


def scan(build_dir: Path, secrets: Mapping[str, str]) -> tuple[int, list[Finding]]:
    """How many files were read, and what was found in them (one finding per file and
    kind)."""
    findings: list[Finding] = []
    count = 0
    needles = {name: value.encode() for name, value in secrets.items()}
    for path in _files(build_dir):
        if path.stat().st_size > MAX_FILE_BYTES:
            findings.append(Finding(str(path.relative_to(build_dir)), "unscanned:too_large"))
            continue
        data = path.read_bytes()
        count += 1
        relative = str(path.relative_to(build_dir))
        kinds = {f"known:{name}" for name, needle in needles.items() if needle in data}
        text = data.decode("utf-8", "replace")
        kinds |= {f"shape:{kind}" for kind, pattern in SHAPES.items() if _found(pattern, text)}
        findings += [Finding(relative, kind) for kind in sorted(kinds)]
    return count, findings


def report(build_dir: Path, files: int, findings: list[Finding]) -> dict:
    return {
        "scanned_at": datetime.now(UTC).isoformat(),
        "build_dir": str(build_dir),
        "files": files,
        "findings": [{"file": f.file, "kind": f.kind} for f in findings],
        "clean": not findings and files > 0,
    }


def run(
    build_dir: Path = BUILD_DIR, home: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict:
    """Scan `build_dir` and write `<home>/reports/bundle-scan.json` (home: RAMPART_HOME);
    the report. An empty or missing build is not clean: there is nothing to vouch for."""
    build_dir = build_dir.resolve()
    home = Path(home or os.environ.get("RAMPART_HOME", ".rampart")).resolve()
    files, findings = (
        (0, []) if not build_dir.is_dir() else scan(build_dir, known_secrets(home, environ))
    )
    result = report(build_dir, files, findings)
    reports = home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    target = reports / REPORT_NAME
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(target)
    return result
