"""Grafana dashboards as Prometheus sees them: every panel's PromQL, Grafana's template
variables replaced, and the metric names an expression selects.

`metric_names_in` is a small scanner rather than a PromQL parser (none is on PyPI for
Python that we trust to follow Prometheus): it skips string literals, label matchers,
ranges, numbers, function and aggregation names, operator words and grouping label lists;
what is left are the selected metric names. tests/unit/test_ops_files.py pins its cases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.support.metric_names import code_metrics, recording_rules
from tests.support.prometheus_stack import REPO

DASHBOARDS = REPO / "ops" / "grafana" / "dashboards"

# Grafana's built-in variables, as a 1 s-scrape Prometheus can answer them.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "15000",
}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_MODIFIER = re.compile(r"(by|without)\s*\(", re.IGNORECASE)
_NUMBER = re.compile(r"(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?)([smhdwy]|ms)?")


def _skip_string(expr: str, i: int) -> int:
    """Index just past the string literal that starts at `expr[i]`."""
    quote, end = expr[i], i + 1
    while end < len(expr) and expr[end] != quote:
        end += 2 if expr[end] == "\\" and quote != "`" else 1
    return end + 1


def _skip_block(expr: str, i: int, close: str) -> int:
    """Index just past the `close` that ends the block opened at `expr[i]` (label matchers
    or a range), skipping string literals, which may contain it."""
    i += 1
    while i < len(expr) and expr[i] != close:
        i = _skip_string(expr, i) if expr[i] in "\"'`" else i + 1
    return i + 1


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a small scanner: strings, label matchers,
    ranges, numbers, function names and grouping label lists are not metric names)."""
    names: set[str] = set()
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "\"'`":
            i = _skip_string(expr, i)
        elif ch == "{":
            i = _skip_block(expr, i, "}")
        elif ch == "[":
            i = _skip_block(expr, i, "]")
        elif ch == "#":
            newline = expr.find("\n", i)
            i = n if newline < 0 else newline
        elif ch.isdigit() or (ch == "." and i + 1 < n and expr[i + 1].isdigit()):
            match = _NUMBER.match(expr, i)
            assert match is not None
            i = match.end()
        elif match := _IDENT.match(expr, i):
            word = match.group()
            rest = expr[match.end() :].lstrip()
            i = match.end()
            if word.lower() in GROUPING and rest.startswith("("):
                i = expr.index(")", i) + 1
            elif (
                not rest.startswith("(")
                and not _MODIFIER.match(rest)  # `sum by (job) (...)`
                and word.lower() not in KEYWORDS
            ):
                names.add(word)  # else a function or aggregation, or an operator word
        else:
            i += 1
    return names


def defined_metric_names() -> set[str]:
    """Every series name Rampart's code can expose and every recording rule, plus the
    series Prometheus makes itself."""
    return {"up", "ALERTS", "ALERTS_FOR_STATE"} | code_metrics() | recording_rules()


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every Prometheus target of every panel, rows included."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])

    for panel in panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                yield panel.get("title", "?"), target["expr"]


def substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """Grafana's template variables replaced as Grafana would for "All" (or the default)."""
    values = dict(BUILTIN_VARIABLES)
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("allValue"):
            values[variable["name"]] = variable["allValue"]
        else:
            current = (variable.get("current") or {}).get("value")
            if isinstance(current, list):
                current = current[0] if current else None
            values[variable["name"]] = ".*" if current in (None, "", "$__all") else current

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"unknown template variable ${name} in {expr!r}"
        return str(values[name])

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)


def load_dashboards() -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON of every ops/grafana/dashboards/*.json."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}
