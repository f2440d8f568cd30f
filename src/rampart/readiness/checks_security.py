"""Security: the settings are strong for the environment, the database's RLS and grants
are lint-clean, the dependencies have no open advisory, the web bundle holds no secret."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from rampart.config import Settings
from rampart.readiness.context import Context
from rampart.readiness.model import Result, Status, migration_database, not_available, parse_time
from rampart.readiness.reports import ReportError, read_bundle_scan

AREA = "security"
DEPLOYED = ("staging", "production")
LOOPBACK = ("localhost", "127.0.0.1", "::1")
AUDIT_RECORD = "dep-audit.json"


def validation_problems(exc: ValidationError) -> list[str]:
    """The problems a settings validation error names, one per item (config.py joins the
    insecure-secret problems with '; ')."""
    found = []
    for error in exc.errors():
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        message = message.split(": ", 1)[1] if message.startswith("refusing to start") else message
        found += [part.strip() for part in message.split("; ") if part.strip()]
    return found


def settings_strength(ctx: Context) -> Result:
    """The deployment's settings pass the startup validation of a deployed environment
    (config.py: secrets not missing, weak or default), CORS names exact https origins, and
    HSTS is on (the app sends it outside dev/test)."""
    doc, check = "docs/configuration.md", "settings strong for the environment"
    source = "environment (config.Settings)"
    if ctx.settings_error is not None:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"settings refused: {ctx.settings_error}",
            source,
            "fix each variable named",
            doc,
        )
    settings = ctx.settings
    problems: list[str] = []
    if settings.env not in DEPLOYED:
        problems.append(f"ENV={settings.env} is not a deployment (staging or production)")
        # What these very settings would be refused for as production (every field given,
        # so nothing is read from the process environment again).
        values = {name: getattr(settings, name) for name in type(settings).model_fields}
        try:
            Settings(**{**values, "env": "production"})
        except ValidationError as exc:
            refused = [p.split(":", 1)[0] for p in validation_problems(exc)]
            problems.append(f"as production these are refused: {', '.join(refused)}")
    origins = settings.cors_origin_list
    for origin in origins:
        parts = urlsplit(origin)
        if origin == "*":
            problems.append("CORS_ORIGINS: `*` lets every site call the API")
        elif parts.scheme != "https" and parts.hostname not in LOOPBACK:
            problems.append(f"CORS_ORIGINS: {origin} is not https")
    hsts = settings.env in DEPLOYED
    if not hsts:
        problems.append("HSTS off (the app sends Strict-Transport-Security outside dev/test)")
    if problems:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            "; ".join(problems),
            source,
            "set ENV and every secret named; list exact https origins in CORS_ORIGINS",
            doc,
        )
    cors = f"{len(origins)} https origin(s)" if origins else "no cross-origin access"
    return Result(
        AREA,
        check,
        Status.GO,
        f"ENV={settings.env}: secrets accepted, CORS {cors}, HSTS on",
        source,
    )


def db_lint(ctx: Context) -> Result:
    """`rampart db lint` (RLS forced, policies, grants, definers) is clean: no error and
    no warning."""
    import psycopg
    from sqlalchemy.engine import make_url

    from rampart.kit.db.lint import LintConfig, counts, run_lints

    check, doc = "RLS and grants lint-clean (db lint)", "docs/security.md#database-hardening-lints"
    url = migration_database(ctx, AREA, check, doc)
    if isinstance(url, Result):
        return url
    app_role = "app_rw"
    if ctx.settings.database_url is not None:
        app_role = make_url(ctx.settings.database_url.get_secret_value()).username or app_role
    source = f"database {url.database} on {url.host or 'socket'} (`rampart db lint`)"
    try:
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        findings = run_lints(conninfo, LintConfig(app_role=app_role))
    except (psycopg.Error, RuntimeError, ValueError) as exc:
        return not_available(
            AREA,
            check,
            f"lint could not run: {exc}",
            source,
            "check the database is up and reachable",
            doc,
        )
    counted = counts(findings)
    bad = [f for f in findings if f.level in ("error", "warn")]
    figure = f"{counted.get('error', 0)} errors, {counted.get('warn', 0)} warnings"
    if bad:
        first = "; ".join(f"{f.lint}: {f.object}" for f in bad[:3])
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{figure} ({first})",
            source,
            "run `rampart db lint` and fix each finding",
            doc,
        )
    return Result(AREA, check, Status.GO, figure, source)


# --- dependency audit --------------------------------------------------------------------


def lock_digest(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def record_dependency_audit(ctx: Context, timeout: float) -> Path:
    """Run `python -m rampart.dep_audit --json` (PyPI's advisories; needs the network) at
    most `timeout` seconds and record its outcome in <reports>/dep-audit.json."""
    from datetime import UTC, datetime

    lock = ctx.repo / "requirements.lock"
    allowlist = ctx.repo / "vulnerability-allowlist.toml"
    cmd = [
        sys.executable,
        "-m",
        "rampart.dep_audit",
        "--json",
        "--lock",
        str(lock),
        "--allowlist",
        str(allowlist),
    ]
    record: dict[str, object] = {"lock_sha256": lock_digest(lock)}
    try:
        done = subprocess.run(  # noqa: S603 # nosec B603 - our own interpreter and module
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        )
        report = json.loads(done.stdout) if done.stdout.strip() else {}
        failures = list(report.get("failures", []))
        if done.returncode != 0 and not failures:
            failures = [f"audit could not run: {done.stderr.strip()[-300:]}"]
        record |= {
            "exit_code": done.returncode,
            "summary": report.get("summary", ""),
            "unaudited": len(report.get("unaudited") or []),
            "failures": failures,
        }
    except subprocess.TimeoutExpired:
        record |= {"exit_code": None, "summary": "", "failures": [f"timed out after {timeout:g}s"]}
    except ValueError as exc:
        record |= {"exit_code": None, "summary": "", "failures": [f"unreadable output: {exc}"]}
    record["audited_at"] = datetime.now(UTC).isoformat()
    ctx.reports.mkdir(parents=True, exist_ok=True)
    path = ctx.reports / AUDIT_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def dependency_audit(ctx: Context) -> Result:
    """The recorded audit of requirements.lock (`rampart readiness --audit`) is clean, of
    this very lock file, and younger than READINESS_AUDIT_MAX_AGE_HOURS."""
    check, doc = "dependency audit clean", "docs/security.md#dependency-audit"
    path = ctx.reports / AUDIT_RECORD
    fix = "run `rampart readiness --audit` (needs PyPI)"
    if not path.exists():
        return not_available(AREA, check, "no recorded audit", str(path), fix, doc)
    try:
        record = json.loads(path.read_text())
        audited_at = parse_time(record["audited_at"])
        failures = list(record["failures"])
        digest = str(record["lock_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Result(AREA, check, Status.NO_GO, f"unreadable record: {exc!r}", str(path), fix, doc)
    bound = timedelta(hours=ctx.settings.readiness_audit_max_age_hours)
    problems = []
    if ctx.now - audited_at > bound:
        problems.append(f"older than {ctx.settings.readiness_audit_max_age_hours:g}h")
    lock = ctx.repo / "requirements.lock"
    if not lock.exists() or lock_digest(lock) != digest:
        problems.append("requirements.lock changed since")
    problems += failures[:3] + ([f"... {len(failures) - 3} more"] if len(failures) > 3 else [])
    summary = str(record.get("summary") or "")
    unaudited = int(record.get("unaudited") or 0)
    if problems:
        return Result(
            AREA, check, Status.NO_GO, "; ".join(problems), str(path), fix, doc, audited_at
        )
    if unaudited:  # dep_audit passes them unless --strict: a gap to look at, not a finding
        return Result(
            AREA,
            check,
            Status.WARN,
            f"{unaudited} pins not audited: {summary}",
            str(path),
            "audit where PyPI's per-release records answer (docs/security.md)",
            doc,
            audited_at,
        )
    return Result(
        AREA, check, Status.GO, summary or "no open advisory", str(path), observed_at=audited_at
    )


# --- the web bundle ----------------------------------------------------------------------


# Build output and dependencies: not the web app's sources.
NOT_SOURCES = frozenset({"node_modules", ".next", "out", "build", "dist", ".turbo", ".git"})


def _newer_sources(web: Path, since: float) -> str | None:
    """A source file of the web app modified after `since` (Unix time), if any."""
    for directory, subdirs, files in os.walk(web):
        subdirs[:] = [d for d in subdirs if d not in NOT_SOURCES]
        for name in files:
            path = Path(directory) / name
            try:
                if path.stat().st_mtime > since:
                    return str(path.relative_to(web.parent))
            except OSError:
                continue
    return None


def bundle_scan(ctx: Context) -> Result:
    """With a web app (web/): its bundle secret scan is recent, newer than every source file
    of web/ (build output and node_modules aside), covered files and is clean.
    Without one: go, not applicable (there is no bundle to leak a secret)."""
    check, doc = "web bundle secret scan clean", "docs/go-live.md#evidence-files"
    path = ctx.reports / "bundle-scan.json"
    if not (ctx.repo / "web").is_dir():
        return Result(AREA, check, Status.GO, "not applicable: no web app (web/)", str(ctx.repo))
    fix = "build the web app and run its bundle secret scan"
    if not path.exists():
        return not_available(AREA, check, "no bundle scan report", str(path), fix, doc)
    try:
        scan = read_bundle_scan(path)
    except ReportError as exc:
        return Result(AREA, check, Status.NO_GO, str(exc), str(path), fix, doc)
    problems = []
    if ctx.now - scan.scanned_at > timedelta(days=ctx.settings.readiness_max_age_days):
        problems.append(f"older than {ctx.settings.readiness_max_age_days:g} days")
    changed = _newer_sources(ctx.repo / "web", scan.scanned_at.timestamp())
    if changed:
        problems.append(f"web/ changed since the scan ({changed})")
    if scan.files <= 0:
        problems.append("scanned no file")
    if scan.findings or not scan.clean:
        where = ", ".join(f"{f.get('kind')} in {f.get('file')}" for f in scan.findings[:3])
        problems.append(f"{len(scan.findings)} finding(s)" + (f": {where}" if where else ""))
    figure = f"{scan.files} files of {scan.build_dir}"
    if problems:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{figure}; " + "; ".join(problems),
            str(path),
            "remove the secret from the web app (rotate it), rebuild, scan again",
            doc,
            scan.scanned_at,
        )
    return Result(
        AREA, check, Status.GO, f"{figure}, no finding", str(path), observed_at=scan.scanned_at
    )
