"""Which series names exist, for the tests that check rules, dashboards and docs name only
real ones: every metric declared in src/rampart (with the suffixes Prometheus adds) and
every recording rule in ops/prometheus/rules."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "ops" / "prometheus" / "rules"
METRIC_CALLS = {
    "Counter": "counter",
    "CounterMetricFamily": "counter",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",
    "Info": "info",
    "Histogram": "histogram",
    "HistogramMetricFamily": "histogram",
    "Summary": "summary",
    "SummaryMetricFamily": "summary",
    # kit/metrics/instruments.py's declarations with the house naming rules
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
}


@cache
def code_metrics() -> frozenset[str]:
    """Every series name the code can expose, from the metric declarations in src/rampart
    (read, not imported: a declaration inside a collector counts too)."""
    names = set()
    for source in (ROOT / "src" / "rampart").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called not in METRIC_CALLS or not isinstance(first, ast.Constant):
                continue
            if not isinstance(first.value, str) or not first.value.startswith("rampart_"):
                continue
            name, kind = first.value, METRIC_CALLS[called]
            names.add(name)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
            if kind == "info":
                names.add(name + "_info")
            if kind in ("histogram", "summary"):
                names.update({name + "_count", name + "_sum"})
            if kind == "histogram":
                names.add(name + "_bucket")
    return frozenset(names)


@cache
def recording_rules() -> frozenset[str]:
    """Names recorded in ops/prometheus/rules/*.yml."""
    names = set()
    for path in sorted(RULES_DIR.glob("*.y*ml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            names.update(rule["record"] for rule in group.get("rules", []) if "record" in rule)
    return frozenset(names)
