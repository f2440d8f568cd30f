"""A real Prometheus and a real Alertmanager (Debian's builds, fetched by
`rampart.devstack.prometheus_tools.ensure_binary`) as subprocesses, scraping real Rampart
processes, evaluating the repository's own rule files and delivering to a real receiver.

    stack = PrometheusStack(
        workdir,
        targets={"rampart-api": "127.0.0.1:9100", "rampart-worker": "127.0.0.1:9101", ...},
        alertmanager_config=render_alertmanager_config(webhook_url, token, workdir / "am.yml"),
    )
    with stack:
        stack.wait_targets_up()
        stack.query('up{job="rampart-api"}')
        stack.alerts()          # Prometheus' view: pending and firing alerts
        stack.am_alerts()       # Alertmanager's view
    # both processes are stopped (SIGTERM, then SIGKILL) even if the block raised

What is generated here is only what a test must differ in from production: the scrape
targets (loopback ports of the processes under test) and the timings (1 s scrape and
evaluation, a few seconds of Alertmanager grouping instead of minutes, and, when a test
asks with `alert_for`, a shorter `for:` of the alerts it waits for). The rest comes from
the production ops/prometheus/prometheus.yml: its job names and its rule files (the
repository's ops/prometheus/rules/*.yml, unchanged but for `alert_for`; promtool's unit
tests in ops/prometheus/tests prove the real `for:`); the Alertmanager configuration is what
`rampart alertmanager-config` renders (routes by severity, inhibition, the incident
webhook), asked for short grouping timings and the token inline.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from rampart.devstack.ports import free_port
from rampart.devstack.prometheus_tools import ensure_binary
from tests.support import httpclient

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "ops" / "prometheus" / "rules"
PRODUCTION_CONFIG = REPO / "ops" / "prometheus" / "prometheus.yml"
JOBS = ("rampart-api", "rampart-worker", "rampart-relay")
WEBHOOK_PATH = "/api/v1/internal/alerts"

_live: set[int] = set()  # process groups still to be killed (safety net at exit)

# Debian's Alertmanager reads its default notification templates from this directory,
# compiled in (Debian strips the embedded copy; no flag or config key changes it).
_AM_SHARE = b"/usr/share/prometheus/alertmanager"
_AM_SHARE_LOCAL = b"./" * 13 + b"am-share"  # same length, relative to the working directory
assert len(_AM_SHARE_LOCAL) == len(_AM_SHARE)


def duration_seconds(text: str) -> float:
    """A Prometheus duration ("90s", "1m", "1h30m") in seconds."""
    import re

    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def production_alert_for(alertname: str) -> float:
    """The `for:` of `alertname` in the repository's rule files, in seconds (0 if none)."""
    for path in repo_rule_files():
        for group in yaml.safe_load(path.read_text()).get("groups") or []:
            for rule in group.get("rules") or []:
                if rule.get("alert") == alertname:
                    return duration_seconds(str(rule.get("for", "0s")))
    raise AssertionError(f"no alert {alertname} in {RULES_DIR}")


def repo_rule_files() -> list[Path]:
    """The repository's rule files (ops/prometheus/rules/*.yml), absolute paths."""
    return sorted(RULES_DIR.glob("*.yml")) + sorted(RULES_DIR.glob("*.yaml"))


def alertmanager_binary(workdir: Path) -> Path:
    """An Alertmanager that can start from `workdir`.

    Installed from the package, Debian's binary finds its templates in /usr/share. Unpacked
    into the tools cache (`ensure_binary`, no system install), that directory does not
    exist and Alertmanager refuses to load any configuration. Then a copy of the binary
    whose compiled-in directory is the same-length relative path `./././…/am-share` is made
    once in the cache, and `workdir/am-share` links to the unpacked templates: nothing is
    written outside the cache and the test's directory.
    """
    binary = ensure_binary("alertmanager")
    if (Path(_AM_SHARE.decode()) / "default.tmpl").exists():
        return binary
    share = binary.parents[1] / "share" / "prometheus" / "alertmanager"
    if not (share / "default.tmpl").exists():
        raise RuntimeError(f"{binary}: no default.tmpl in {Path(_AM_SHARE.decode())} or {share}")
    local = binary.with_name(binary.name + "-local-templates")
    if not local.exists():
        data = binary.read_bytes()
        assert _AM_SHARE in data, f"{binary} does not name {_AM_SHARE!r}"
        partial = local.with_suffix(f".{os.getpid()}")
        partial.write_bytes(data.replace(_AM_SHARE, _AM_SHARE_LOCAL))
        partial.chmod(0o755)
        partial.replace(local)
    link = workdir / _AM_SHARE_LOCAL.decode().rsplit("/", 1)[1]
    if not link.exists():
        link.symlink_to(share, target_is_directory=True)
    return local


def render_alertmanager_config(
    webhook_url: str,
    token: str,
    into: Path,
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1h",
) -> Path:
    """alertmanager.yml as the real `rampart alertmanager-config` renders it for this webhook
    URL and token (inline: the test has no secret file), with a test's short timings."""
    into.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "rampart.cli",
            "alertmanager-config",
            f"--webhook-url={webhook_url}",
            "--inline-token",
            f"--group-wait={group_wait}",
            f"--group-interval={group_interval}",
            f"--repeat-interval={repeat_interval}",
            f"--output={into}",
        ],
        env={**os.environ, "ALERT_WEBHOOK_TOKEN": token},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return into


class PrometheusStack:
    """Prometheus + Alertmanager for one test module (see the module docstring)."""

    def __init__(
        self,
        workdir: Path,
        targets: Mapping[str, str | list[str]],
        production_config: Path | None = PRODUCTION_CONFIG,
        alertmanager_config: Path | None = None,
        interval: str = "1s",
        alert_for: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.targets = {
            job: [value] if isinstance(value, str) else list(value)
            for job, value in targets.items()
        }
        self.production_config = production_config
        self.alertmanager_config = alertmanager_config
        self.interval = interval
        # Test-only `for:` durations of named alerts (e.g. {"RampartLLMCircuitBreakerOpen":
        # "10s"}): their rule files are loaded from copies with only those changed.
        self.alert_for = dict(alert_for or {})
        self.prometheus_port = free_port()
        self.alertmanager_port = free_port() if alertmanager_config is not None else None
        self._procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    # --- urls ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        assert self.alertmanager_port is not None, "started without Alertmanager"
        return f"http://127.0.0.1:{self.alertmanager_port}"

    # --- configuration -----------------------------------------------------------------------

    def prometheus_config(self) -> dict[str, Any]:
        """The production configuration (ops/prometheus/prometheus.yml) made local: its rule
        files (globs resolved against its directory, as Prometheus does) and its scrape
        jobs for which a target is given, each pointed at that target; shorter intervals;
        our Alertmanager. Jobs without a target here (node, prometheus) are left out."""
        if self.production_config is None:
            base: dict[str, Any] = {
                "rule_files": [],
                "scrape_configs": [{"job_name": job} for job in self.targets],
            }
            here = REPO
        else:
            base = yaml.safe_load(self.production_config.read_text())
            here = self.production_config.parent
        jobs = {scrape["job_name"]: scrape for scrape in base.get("scrape_configs") or []}
        missing = sorted(set(self.targets) - set(jobs))
        assert not missing, f"{self.production_config} has no scrape job {missing}"
        scrape_configs = []
        for job, targets in self.targets.items():
            scrape = {
                key: value
                for key, value in jobs[job].items()
                if key not in ("static_configs", "scrape_interval", "scrape_timeout")
            }
            scrape["static_configs"] = [{"targets": targets}]
            scrape_configs.append(scrape)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "rule_files": self._rule_files(
                [str(here / pattern) for pattern in base.get("rule_files") or []]
            ),
            "scrape_configs": scrape_configs,
        }
        if self.alertmanager_port is not None:
            config["alerting"] = {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}
                ]
            }
        return config

    def _rule_files(self, patterns: list[str]) -> list[str]:
        """The rule files as configured; with `alert_for`, every file is read from a copy in
        the working directory (same file name) in which only the named alerts' `for:` is
        changed. Each named alert must exist."""
        if not self.alert_for:
            return patterns
        copies = self.workdir / "rules"
        copies.mkdir(parents=True, exist_ok=True)
        changed: set[str] = set()
        names: list[str] = []
        for pattern in patterns:
            for path in sorted(Path(pattern).parent.glob(Path(pattern).name)):
                names.append(path.name)
                rules = yaml.safe_load(path.read_text())
                for group in rules.get("groups") or []:
                    for rule in group.get("rules") or []:
                        if rule.get("alert") in self.alert_for:
                            rule["for"] = self.alert_for[rule["alert"]]
                            changed.add(rule["alert"])
                (copies / path.name).write_text(yaml.safe_dump(rules, sort_keys=False))
        missing = sorted(set(self.alert_for) - changed)
        assert not missing, f"no such alert in the rule files: {missing}"
        return [str(copies / name) for name in names]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> PrometheusStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.alertmanager_config is not None:
            am_file = self.alertmanager_config
            self._spawn(
                "alertmanager",
                [
                    str(alertmanager_binary(self.workdir)),
                    f"--config.file={am_file}",
                    f"--storage.path={self.workdir / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
                    "--cluster.listen-address=",  # no gossip: one instance
                    "--log.level=info",
                ],
            )
            self._wait_ready("alertmanager", self.alertmanager_url, timeout)
        prom_file = self.workdir / "prometheus.yml"
        prom_file.write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        self._spawn(
            "prometheus",
            [
                str(ensure_binary("prometheus")),
                f"--config.file={prom_file}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ],
        )
        self._wait_ready("prometheus", self.url, timeout)
        return self

    def _spawn(self, name: str, args: list[str]) -> None:
        output = self.workdir / f"{name}.out"
        with output.open("ab") as out:
            popen = subprocess.Popen(  # noqa: S603 - Debian's binaries, our arguments
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
            )
        _live.add(popen.pid)
        self._procs.append((name, popen, output))

    def _wait_ready(self, name: str, url: str, timeout: float) -> None:
        popen = next(p for n, p, _ in self._procs if n == name)
        deadline = time.monotonic() + timeout
        while True:
            if popen.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {popen.returncode} before it was ready:\n"
                    + self.output(name)
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpclient.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {timeout:g}s:\n{self.output(name)}")
            time.sleep(0.1)

    def output(self, name: str, lines: int = 40) -> str:
        for proc_name, _popen, path in self._procs:
            if proc_name == name:
                text = path.read_text(errors="replace") if path.exists() else ""
                return "\n".join(text.splitlines()[-lines:]) or "(no output)"
        return "(not started)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (both shut down cleanly: Prometheus flushes its head block), then SIGKILL
        whatever is still there after `timeout`."""
        for _name, popen, _ in reversed(self._procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGTERM)
        for _name, popen, _ in reversed(self._procs):
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(5)
            _live.discard(popen.pid)

    def __enter__(self) -> PrometheusStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- the HTTP APIs -----------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """`GET /api/v1/<path>` of Prometheus: the `data` of a successful answer, else an
        AssertionError with Prometheus' error."""
        body = self.api_raw(path, **params)
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def api_raw(self, path: str, **params: Any) -> dict[str, Any]:
        """`GET /api/v1/<path>` of Prometheus, the whole JSON body whatever its status."""
        response = httpclient.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        try:
            return response.json()
        except ValueError:
            return {"status": "error", "error": f"HTTP {response.status_code}: {response.text}"}

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's samples, or `[scalar]`)."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query (None when the result is empty)."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, f"{expr} has {len(result)} series: {result}"
        sample = result[0]
        return float(sample["value"][1] if isinstance(sample, dict) else sample[1])

    def targets_health(self) -> dict[str, str]:
        """`job` → health of its (first) active target: up, down or unknown."""
        active = self.api("targets", state="active")["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    def wait_targets_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = self.targets_health()
            if set(health) == set(self.targets) and set(health.values()) == {"up"}:
                return
            time.sleep(0.2)
        raise AssertionError(f"targets not all up after {timeout:g}s: {health}")

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))

    def alerts(self) -> list[dict[str, Any]]:
        """Prometheus' active alerts (state pending or firing) with labels and activeAt."""
        return self.api("alerts")["alerts"]

    def rule_groups(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def am_alerts(self) -> list[dict[str, Any]]:
        """Alertmanager's current alerts (API v2)."""
        response = httpclient.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=10)
        response.raise_for_status()
        return response.json()


@atexit.register
def _kill_leftovers() -> None:  # last resort, e.g. after an interrupted session
    for pgid in list(_live):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
