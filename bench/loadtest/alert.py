"""The queue's oldest-age alert, as ops/prometheus/rules/workers.yml declares it, judged on
samples of the metric it reads (`rampart_queue_oldest_age_seconds{queue="rampart"}`,
served by the relay's /metrics). Prometheus would say "firing" once the condition has held
for the rule's `for`; this reads the rule file, so a changed threshold changes the test."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "rules" / "workers.yml"
ALERT = "RampartQueueOldestMessageAge"
METRIC = "rampart_queue_oldest_age_seconds"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class AgeRule:
    threshold_s: float
    for_s: float
    severity: str


def duration_s(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def oldest_age_rule(path: Path = RULES, severity: str = "warning") -> AgeRule:
    """The `RampartQueueOldestMessageAge` rule of that severity: `METRIC > N`, for: D."""
    doc = yaml.safe_load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == ALERT and rule.get("labels", {}).get("severity") == severity:
                match = re.fullmatch(rf"\s*{METRIC}\s*>\s*(\d+(?:\.\d+)?)\s*", rule["expr"])
                if not match:
                    raise ValueError(f"{ALERT}: unexpected expression {rule['expr']!r}")
                return AgeRule(float(match.group(1)), duration_s(rule.get("for", "0s")), severity)
    raise LookupError(f"no {ALERT} rule of severity {severity} in {path}")


@dataclass
class AlertTrace:
    fired_at: float | None = None  # seconds into the run when the condition had held `for`
    resolved_at: float | None = None  # when it stopped holding, after it fired
    peak_age_s: float = 0.0


def evaluate(samples: list[tuple[float, float]], rule: AgeRule) -> AlertTrace:
    """Samples (seconds into the run, age) in time order → when the alert would have fired
    and resolved."""
    trace = AlertTrace()
    holding_since: float | None = None
    for at, age in samples:
        trace.peak_age_s = max(trace.peak_age_s, age)
        if age > rule.threshold_s:
            if holding_since is None:
                holding_since = at
            if trace.fired_at is None and at - holding_since >= rule.for_s:
                trace.fired_at = at
        else:
            holding_since = None
            if trace.fired_at is not None and trace.resolved_at is None:
                trace.resolved_at = at
    return trace
