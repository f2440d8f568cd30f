"""Audit a pinned requirements file (requirements.lock) for known vulnerabilities.

`python -m rampart.dep_audit [--lock requirements.lock] [--allowlist FILE] [--strict]`;
`make test` and `make audit` run it (tests/integration/test_static_scans.py).

The data is PyPI's: every release's JSON record carries `vulnerabilities`, the OSV records
of the PyPA advisory database (PYSEC ids, with GHSA and CVE aliases). Two ways to it:

1. pip-audit's `pypi` service (the library does the work): `/pypi/NAME/VERSION/json` for
   each pin, the exact per-release record.
2. Where that endpoint is refused — a TLS-inspecting proxy in front of PyPI that passes the
   index and the project records but answers 404 for `/pypi/NAME/VERSION/json`; pip-audit
   then reports every pin as "not found on PyPI", audits nothing and still prints "No known
   vulnerabilities found" — the project record `/pypi/NAME/json` is asked instead. It
   carries the `vulnerabilities` of the project's newest release only, so it audits a pin
   exactly when the pin *is* that release. A pin behind it cannot be audited there: it is
   listed as unaudited, never counted as clean.

Our own module because no library does step 2 or the allowlist with reasons and expiry
dates; pip-audit stays the engine wherever the per-release endpoint answers.

The build fails on: a known vulnerability not in the allowlist; an allowlist entry that
has expired or lacks a reason; a pin PyPI does not know; no answer from PyPI at all (never
a silent pass). Unaudited pins fail it with `--strict`, and always when the per-release
endpoint did answer for other pins (then nothing excuses a gap).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LOCK = ROOT / "requirements.lock"
DEFAULT_ALLOWLIST = ROOT / "vulnerability-allowlist.toml"
PYPI = "https://pypi.org"
TIMEOUT_SECONDS = 20.0
PIP_AUDIT_TIMEOUT_SECONDS = 300
WORKERS = 8
# Where Debian/Ubuntu keep the system trust store (a TLS-inspecting proxy's CA goes there).
_SYSTEM_CA_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


class AuditError(RuntimeError):
    """The audit could not run (bad lock or allowlist, PyPI unreachable): never a pass."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str


@dataclass
class Finding:
    package: str
    version: str
    id: str
    aliases: list[str]
    fixed_in: list[str]
    source: str  # "release record" (pip-audit) or "newest-release record"
    summary: str = ""
    accepted: str | None = None  # the allowlist's reason, when accepted

    @property
    def ids(self) -> set[str]:
        return {self.id, *self.aliases}

    def describe(self) -> str:
        aliases = f" ({', '.join(sorted(self.aliases))})" if self.aliases else ""
        fixed = ", ".join(self.fixed_in) or "no fixed release"
        return f"{self.package}=={self.version}: {self.id}{aliases}; fixed in: {fixed}"


@dataclass(frozen=True)
class Accepted:
    id: str
    package: str
    reason: str
    expires: date


@dataclass
class Report:
    pins: list[Pin]
    exact: list[Pin] = field(default_factory=list)  # per-release record (pip-audit)
    newest: list[Pin] = field(default_factory=list)  # the pin is the newest release
    unaudited: list[tuple[Pin, str]] = field(default_factory=list)  # (pin, newest release)
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unused: list[Accepted] = field(default_factory=list)
    per_release_endpoint: bool = False  # pip-audit audited at least one pin

    @property
    def audited(self) -> int:
        return len(self.exact) + len(self.newest)

    @property
    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.accepted is None]

    def failures(self, *, strict: bool = False) -> list[str]:
        out = list(self.problems)
        out += [f"known vulnerability: {f.describe()}" for f in self.open_findings]
        if self.unaudited and (strict or self.per_release_endpoint):
            out += [
                f"not audited: {p.name}=={p.version} (newest release {newest})"
                for p, newest in self.unaudited
            ]
        if self.pins and not self.audited:
            out.append(f"none of the {len(self.pins)} pins could be audited")
        return out

    def summary(self) -> str:
        return (
            f"{self.audited} of {len(self.pins)} pins audited ({len(self.exact)} by their "
            f"release record, {len(self.newest)} as their project's newest release), "
            f"{len(self.unaudited)} not audited, {len(self.findings)} known vulnerabilities "
            f"({len(self.findings) - len(self.open_findings)} accepted in the allowlist)"
        )

    def as_json(self) -> dict:
        return {
            "summary": self.summary(),
            "pins": len(self.pins),
            "audited": self.audited,
            "audited_by_release_record": len(self.exact),
            "audited_as_newest_release": len(self.newest),
            "unaudited": [
                {"name": p.name, "version": p.version, "newest": n} for p, n in self.unaudited
            ],
            "findings": [f.__dict__ for f in self.findings],
            "problems": self.problems,
            "unused_allowlist_entries": [a.id for a in self.unused],
        }


# --- inputs ------------------------------------------------------------------------------


def read_pins(path: Path) -> list[Pin]:
    """Every `name==version` line of a pinned requirements file; anything unpinned fails."""
    pins: list[Pin] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise AuditError(f"{path.name}:{number}: not a requirement: {line!r} ({exc})") from exc
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise AuditError(f"{path.name}:{number}: {line!r} is not pinned with ==")
        pins.append(Pin(canonicalize_name(req.name), specs[0].version))
    return pins


def read_allowlist(path: Path, today: date) -> tuple[list[Accepted], list[str]]:
    """The accepted vulnerabilities, and the problems of the file (expired, no reason)."""
    if not path.exists():
        return [], []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AuditError(f"{path.name}: not valid TOML ({exc})") from exc
    accepted: list[Accepted] = []
    problems: list[str] = []
    for index, entry in enumerate(data.get("accept", []), 1):
        where = f"{path.name} entry {index}"
        vuln_id, package = str(entry.get("id", "")).strip(), str(entry.get("package", ""))
        reason, expires = str(entry.get("reason", "")).strip(), entry.get("expires")
        if not vuln_id or not package.strip():
            problems.append(f"{where}: `id` and `package` are required")
            continue
        if len(reason) < 10:
            problems.append(f"{where} ({vuln_id}): a `reason` is required (why it is safe)")
            continue
        if not isinstance(expires, date):
            problems.append(f"{where} ({vuln_id}): `expires` must be a date (YYYY-MM-DD)")
            continue
        if expires < today:
            problems.append(
                f"{where} ({vuln_id} in {package}): expired on {expires.isoformat()}: "
                "upgrade the package or review the reason and set a new date"
            )
            continue
        accepted.append(Accepted(vuln_id, canonicalize_name(package), reason, expires))
    return accepted, problems


# --- the two sources ---------------------------------------------------------------------


def _ca_file() -> str | None:
    """The trust store to use: the one the environment names, else the system's, so a
    TLS-inspecting proxy whose CA is in the system store is trusted (requests and httpx
    would otherwise use certifi's bundle, which does not hold it)."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name) and Path(os.environ[name]).is_file():
            return os.environ[name]
    default = ssl.get_default_verify_paths().cafile
    if default and Path(default).is_file():
        return default
    return next((p for p in _SYSTEM_CA_FILES if Path(p).is_file()), None)


def run_pip_audit(path: Path) -> dict[str, dict]:
    """pip-audit over the pins (`--no-deps --disable-pip`: every pin is exact, no resolver,
    no virtualenv): {canonical name: its JSON entry (vulns, or skip_reason)}."""
    env = dict(os.environ)
    ca_file = _ca_file()
    if ca_file:
        env.setdefault("REQUESTS_CA_BUNDLE", ca_file)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pip-audit.json"
        command = [
            sys.executable, "-m", "pip_audit",
            "-r", str(path),
            "--no-deps", "--disable-pip",
            "--vulnerability-service", "pypi",
            "--progress-spinner", "off",
            "--timeout", str(int(TIMEOUT_SECONDS)),
            "--format", "json", "--output", str(out),
        ]  # fmt: skip
        try:
            result = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
                command,
                capture_output=True,
                text=True,
                timeout=PIP_AUDIT_TIMEOUT_SECONDS,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AuditError(f"pip-audit: no answer within {PIP_AUDIT_TIMEOUT_SECONDS}s") from exc
        if not out.exists():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise AuditError(f"pip-audit did not finish (exit {result.returncode}): {last[:500]}")
        report = json.loads(out.read_text())
    return {canonicalize_name(d["name"]): d for d in report.get("dependencies", [])}


def _client() -> httpx.Client:
    ca_file = _ca_file()
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file)
    return httpx.Client(
        base_url=PYPI,
        timeout=TIMEOUT_SECONDS,
        verify=verify,
        headers={"User-Agent": "rampart-dep-audit", "Accept": "application/json"},
        follow_redirects=True,
    )


def _project_record(client: httpx.Client, name: str) -> dict | None:
    """PyPI's JSON record of a project (its newest release), None if PyPI has no such
    project; transport errors are retried once, then raised."""
    for attempt in (1, 2):
        try:
            response = client.get(f"/pypi/{name}/json")
        except httpx.TransportError:
            if attempt == 2:
                raise
            continue
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()
    return None  # pragma: no cover


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _findings(pin: Pin, vulns: list[dict], source: str) -> list[Finding]:
    """One finding per vulnerability: PyPI lists the PYSEC record and its GHSA twin (each
    naming the other as an alias) as two entries; they are merged."""
    found: list[Finding] = []
    for v in vulns:
        if v.get("withdrawn"):
            continue
        ids = {str(v["id"]), *(str(a) for a in v.get("aliases") or [])}
        twin = next((f for f in found if f.ids & ids), None)
        if twin is not None:
            twin.aliases = sorted((twin.ids | ids) - {twin.id})
            continue
        found.append(
            Finding(
                package=pin.name,
                version=pin.version,
                id=str(v["id"]),
                aliases=sorted(str(a) for a in v.get("aliases") or []),
                fixed_in=[str(x) for x in (v.get("fixed_in") or v.get("fix_versions") or [])],
                source=source,
                summary=str(v.get("summary") or v.get("description") or "")[:200],
            )
        )
    return found


def _from_newest_release(report: Report, pins: list[Pin]) -> None:
    """Step 2: the project record, for pins pip-audit could not audit."""

    def fetch(pin: Pin) -> tuple[Pin, dict | None | Exception]:
        try:
            return pin, _project_record(client, pin.name)
        except (httpx.HTTPError, ValueError) as exc:
            return pin, exc

    with _client() as client, ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(fetch, pins))
    errors = [(pin, r) for pin, r in results if isinstance(r, Exception)]
    if errors and len(errors) == len(results):
        pin, exc = errors[0]
        raise AuditError(
            f"PyPI's JSON API cannot be reached ({type(exc).__name__}: {str(exc)[:300]}); "
            f"none of {len(pins)} pins could be audited"
        )
    for pin, record in results:
        if isinstance(record, Exception):
            report.problems.append(
                f"{pin.name}=={pin.version}: PyPI did not answer ({type(record).__name__}: "
                f"{str(record)[:200]})"
            )
        elif record is None:
            report.problems.append(f"{pin.name}=={pin.version}: PyPI has no such project")
        elif not any(_same_version(pin.version, v) for v in record.get("releases") or {}):
            report.problems.append(f"{pin.name}=={pin.version}: PyPI has no such release")
        elif _same_version(pin.version, record["info"]["version"]):
            report.newest.append(pin)
            vulns = record.get("vulnerabilities") or []
            report.findings += _findings(pin, vulns, "newest-release record")
        else:
            report.unaudited.append((pin, str(record["info"]["version"])))


# --- the audit ---------------------------------------------------------------------------


def audit(
    lock: Path = DEFAULT_LOCK, allowlist: Path = DEFAULT_ALLOWLIST, today: date | None = None
) -> Report:
    pins = read_pins(lock)
    accepted, problems = read_allowlist(allowlist, today or date.today())
    report = Report(pins=pins, problems=problems)
    by_name = {pin.name: pin for pin in pins}
    rest: list[Pin] = []
    try:
        audited = run_pip_audit(lock) if pins else {}
    except AuditError as exc:  # still try the project records; say why
        report.problems.append(f"pip-audit: {exc}")
        audited = {}
    for name, pin in by_name.items():
        entry = audited.get(name)
        if entry is None or "skip_reason" in entry:
            rest.append(pin)
        else:
            report.exact.append(pin)
            report.findings += _findings(pin, entry.get("vulns", []), "release record")
    report.per_release_endpoint = bool(report.exact)
    if rest:
        _from_newest_release(report, rest)
    used: set[Accepted] = set()
    for finding in report.findings:
        for entry in accepted:
            if entry.package == finding.package and entry.id in finding.ids:
                finding.accepted = entry.reason
                used.add(entry)
    report.unused = [a for a in accepted if a not in used]
    report.findings.sort(key=lambda f: (f.package, f.id))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rampart.dep_audit", description=__doc__)
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    parser.add_argument("--allowlist", type=Path, default=DEFAULT_ALLOWLIST)
    parser.add_argument(
        "--strict", action="store_true", help="Fail on any pin that could not be audited."
    )
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args(argv)
    try:
        report = audit(args.lock, args.allowlist)
    except AuditError as exc:
        print(f"dependency audit could not run: {exc}", file=sys.stderr)
        return 2
    failures = report.failures(strict=args.strict)
    if args.json:
        print(json.dumps({**report.as_json(), "failures": failures}, indent=2, default=str))
    else:
        print(f"dependency audit of {args.lock.name}: {report.summary()}")
        for finding in report.findings:
            status = f"accepted: {finding.accepted}" if finding.accepted else "OPEN"
            print(f"  {finding.describe()} [{status}]")
        if report.unaudited:
            print(
                f"  not audited ({len(report.unaudited)}): PyPI's per-release records were "
                "refused on this network and these pins are behind their newest release: "
                + ", ".join(f"{p.name}=={p.version} (newest {n})" for p, n in report.unaudited)
            )
        for entry in report.unused:
            print(f"  allowlist entry {entry.id} ({entry.package}) matched no finding")
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
