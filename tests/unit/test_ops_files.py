"""The deployment files in ops/ agree with each other and with the code.

Docker is not available where the suite runs, so ops/docker-compose.yml is checked
statically: it parses, every file it mounts or builds from exists in the repository, and
the ports and host names agree with ops/prometheus/prometheus.yml, the rendered
ops/alertmanager/alertmanager.yml and Grafana's provisioning. What the containers would run
is exercised for real elsewhere: the same Prometheus configuration, rules and Alertmanager
configuration against real processes in tests/e2e/test_incident_simulation.py (which also
runs every dashboard query), the Postgres init script's statements in the dev stack.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from tests.support.dashboards import (
    BUILTIN_VARIABLES,
    dashboard_queries,
    defined_metric_names,
    load_dashboards,
    metric_names_in,
)

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
COMPOSE = OPS / "docker-compose.yml"
GRAFANA = OPS / "grafana"
DATASOURCE_UID = "prometheus"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def service_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = compose["services"][name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def bind_mounts(compose: dict[str, Any], name: str) -> dict[str, Path]:
    """Container path → host path (relative to ops/) of a service's bind mounts from the
    repository (named volumes and host paths like /:/host are not files of ours)."""
    mounts = {}
    for volume in compose["services"][name].get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (OPS / source).resolve()
    return mounts


def container_ports(compose: dict[str, Any], name: str) -> set[int]:
    service = compose["services"][name]
    ports = {int(str(p).split(":")[-1]) for p in service.get("ports") or []}
    return ports | {int(p) for p in service.get("expose") or []}


# --- docker-compose ---------------------------------------------------------------------------


def test_compose_has_the_stack_the_issue_names(compose):
    assert set(compose["services"]) >= {
        "rampart",
        "prometheus",
        "alertmanager",
        "grafana",
        "node-exporter",
        "postgres",
        "redis",
    }
    named = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} is not declared"


def test_every_file_compose_mounts_or_builds_from_exists(compose):
    for name in compose["services"]:
        for target, source in bind_mounts(compose, name).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert REPO in source.parents, f"{name}: {source} is outside the repository"
    build = compose["services"]["rampart"]["build"]
    context = (OPS / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).is_file()
    for name, secret in (compose.get("secrets") or {}).items():
        assert "environment" in secret or (OPS / secret["file"]).exists(), name


def test_compose_requires_every_secret_and_commits_none(compose):
    """Secrets come from the environment, `${VAR:?}`: compose refuses to start without
    them, and no value is written in the file."""
    text = COMPOSE.read_text()
    for variable in (
        "POSTGRES_PASSWORD",
        "MIGRATION_PASSWORD",
        "APP_DB_PASSWORD",
        "JWT_SECRET",
        "SESSION_SECRET",
        "STRIPE_WEBHOOK_SECRET",
        "ALERT_WEBHOOK_TOKEN",
        "GRAFANA_ADMIN_PASSWORD",
    ):
        assert f"${{{variable}:?" in text, variable
        assert re.search(rf"^{variable}=$", (OPS / ".env.example").read_text(), re.M), variable
    env = service_env(compose, "rampart")
    assert env["METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - the metrics ports of a container
    assert env["HOST"] == "0.0.0.0"  # noqa: S104


def test_prometheus_scrapes_the_ports_the_services_listen_on(compose):
    prometheus = load_yaml(OPS / "prometheus" / "prometheus.yml")
    rampart_env = service_env(compose, "rampart")
    listens = {
        "rampart-api": ("rampart", int(rampart_env["METRICS_PORT"])),
        "rampart-worker": ("rampart", int(rampart_env["WORKER_METRICS_PORT"])),
        "rampart-relay": ("rampart", int(rampart_env["RELAY_METRICS_PORT"])),
        "node": ("node-exporter", 9100),  # node_exporter's default
    }
    jobs = {}
    for scrape in prometheus["scrape_configs"]:
        targets = [t for static in scrape["static_configs"] for t in static["targets"]]
        jobs[scrape["job_name"]] = targets
    assert set(jobs) >= set(listens)
    for job, (service, port) in listens.items():
        assert jobs[job] == [f"{service}:{port}"], job
        assert port in container_ports(compose, service), (job, service, port)
    [alertmanager] = [
        t
        for am in prometheus["alerting"]["alertmanagers"]
        for static in am["static_configs"]
        for t in static["targets"]
    ]
    host, port = alertmanager.split(":")
    assert host in compose["services"] and int(port) in container_ports(compose, host)


def test_prometheus_finds_its_rules_in_the_container(compose):
    """rule_files are relative to the config file; the rules directory is mounted beside
    it and holds the repository's rule files."""
    prometheus = load_yaml(OPS / "prometheus" / "prometheus.yml")
    mounts = bind_mounts(compose, "prometheus")
    assert mounts["/etc/prometheus/prometheus.yml"] == OPS / "prometheus" / "prometheus.yml"
    command = compose["services"]["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    for pattern in prometheus["rule_files"]:
        in_container = Path("/etc/prometheus") / pattern
        mount = next(t for t in mounts if in_container.parent == Path(t))
        assert sorted(mounts[mount].glob(in_container.name)), pattern


def test_alertmanager_delivers_to_the_rampart_service_with_the_mounted_token(compose):
    config = load_yaml(OPS / "alertmanager" / "alertmanager.yml")
    port = int(service_env(compose, "rampart")["PORT"])
    secret_targets = {s["target"] for s in compose["services"]["alertmanager"].get("secrets") or []}
    assert bind_mounts(compose, "alertmanager")["/etc/alertmanager/alertmanager.yml"] == (
        OPS / "alertmanager" / "alertmanager.yml"
    )
    webhooks = [w for r in config["receivers"] for w in r.get("webhook_configs") or []]
    assert webhooks
    for webhook in webhooks:
        url = urlparse(webhook["url"])
        assert (url.hostname, url.port, url.path) == ("rampart", port, "/api/v1/internal/alerts")
        authorization = webhook["http_config"]["authorization"]
        assert "credentials" not in authorization, "the token must not be in the file"
        assert authorization["credentials_file"] in secret_targets


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards(compose):
    mounts = bind_mounts(compose, "grafana")
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    [datasource] = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert datasource["uid"] == DATASOURCE_UID and datasource["type"] == "prometheus"
    url = urlparse(datasource["url"])
    assert url.hostname in compose["services"]
    assert url.port in container_ports(compose, url.hostname)
    [provider] = load_yaml(GRAFANA / "provisioning" / "dashboards" / "rampart.yml")["providers"]
    assert mounts[provider["options"]["path"]] == GRAFANA / "dashboards"
    home = service_env(compose, "grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).name).is_file()


def test_the_dockerfile_builds_from_python_311_slim_and_runs_unprivileged():
    text = (OPS / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in source.split():
            assert (REPO / path).exists(), path
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    assert exposed == {8000, 9100, 9101, 9102}
    assert 'CMD ["rampart", "up"]' in text


# --- dashboards -------------------------------------------------------------------------------


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels") or [])
    return found


def datasource_uids(value: Any) -> list[str]:
    if isinstance(value, dict):
        uids = []
        source = value.get("datasource")
        if isinstance(source, dict) and "uid" in source and source.get("type") != "grafana":
            uids.append(source["uid"])
        for item in value.values():
            uids += datasource_uids(item)
        return uids
    if isinstance(value, list):
        return [uid for item in value for uid in datasource_uids(item)]
    return []


def test_the_two_dashboards_exist_with_stable_uids():
    dashboards = load_dashboards()
    assert {name: d["uid"] for name, d in dashboards.items()} == {
        "rampart-executive.json": "rampart-executive",
        "rampart-operations.json": "rampart-operations",
    }


@pytest.mark.parametrize("name", ["rampart-executive.json", "rampart-operations.json"])
def test_dashboard_panels_are_well_formed(name):
    dashboard = load_dashboards()[name]
    assert set(datasource_uids(dashboard)) == {DATASOURCE_UID}
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        targets = panel.get("targets") or []
        assert targets and all(t.get("expr") for t in targets), panel["title"]
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), panel["title"]


@pytest.mark.parametrize("name", ["rampart-executive.json", "rampart-operations.json"])
def test_dashboard_queries_use_only_defined_variables_and_metrics(name):
    """The static half of the dashboard check (the e2e test runs every query on a real
    Prometheus): each variable is Grafana's or the dashboard's own, each metric is defined
    by Rampart's code or rules, or is node_exporter's."""
    dashboard = load_dashboards()[name]
    own = {v["name"] for v in dashboard["templating"]["list"]}
    known = defined_metric_names()
    for title, expr in dashboard_queries(dashboard):
        used = set(re.findall(r"\$\{?(\w+)", expr))
        assert used <= own | set(BUILTIN_VARIABLES), (title, used)
        unknown = {m for m in metric_names_in(expr) if m not in known}
        assert all(m.startswith("node_") for m in unknown), (title, unknown)


def test_the_operations_dashboard_covers_the_alerts_runbooks_point_to():
    text = json.dumps(load_dashboards()["rampart-operations.json"])
    for metric in (
        "rampart_http_request_duration_seconds_bucket",
        "rampart_queue_length",
        "rampart_queue_oldest_age_seconds",
        "rampart_jobs_quarantined_total",
        "rampart_llm_requests_total",
        "rampart_circuit_breaker_state",
        "rampart_db_connections",
        "rampart_db_pool_in_use",
        "rampart_db_slow_queries_total",
        "rampart_assessment_score_duration_seconds_bucket",
        "rampart_roadmap_duration_seconds_bucket",
    ):
        assert metric in text, metric
    executive = json.dumps(load_dashboards()["rampart-executive.json"])
    for needle in (
        "slo:sli_error:ratio_rate1h",
        'to_plan=\\"pro\\"',
        "rampart_signups_total",
        "rampart_mrr_cents",
        "rampart_subscriptions",
    ):
        assert needle in executive, needle


# --- the PromQL scanner the dashboard checks rely on -----------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job=~"rampart-.*"} == 0', {"up"}),
        (
            "sum by (job) (rate(rampart_db_slow_queries_total[5m])) * 60 > 1",
            {"rampart_db_slow_queries_total"},
        ),
        ("sum(rate(x_total[5m])) by (a, b) / ignoring (le) group_left y", {"x_total", "y"}),
        (
            'histogram_quantile(0.9, sum by (le) (rate(h_bucket{route="/a/{id}"}[$__interval])))',
            {"h_bucket"},
        ),
        ('(sum(a{s=~"5.."}) or vector(0)) / on () b unless c offset 1h', {"a", "b", "c"}),
        ('label_replace(up, "dst", "$1", "job", "(.*)")', {"up"}),
        ("topk without (instance) (5, m) and bool 1e3", {"m"}),
        ('slo:sli_error:ratio_rate1h{slo="latency"} / 0.05', {"slo:sli_error:ratio_rate1h"}),
        ("# a comment naming not_a_metric\nreal_metric", {"real_metric"}),
    ],
)
def test_metric_names_in_finds_the_selected_metrics(expr, names):
    assert metric_names_in(expr) == names
