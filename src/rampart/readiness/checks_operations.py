"""Operations: error budget left in the SLOs' 30-day window (docs/slo.md), from the
Prometheus that scrapes the deployment."""

from __future__ import annotations

import httpx

from rampart.readiness.context import Context
from rampart.readiness.model import Result, Status, not_available

AREA = "operations"
WARN_BELOW = 0.25  # less than a quarter of a budget left: risky releases wait
_USER = 'job="rampart-api", route!~"/health|/ready|/metrics"'
# docs/slo.md, "Where the budget stands": share of each budget left (1 untouched, <= 0 spent).
BUDGET_LEFT = {
    "availability": (
        f'1 - ((sum(increase(rampart_http_requests_total{{{_USER}, status=~"5.."}}[30d]))'
        " or vector(0))"
        f" / sum(increase(rampart_http_requests_total{{{_USER}}}[30d]))) / 0.005"
    ),
    "latency": (
        f'1 - (1 - sum(increase(rampart_http_request_duration_seconds_bucket{{{_USER}, le="0.5"}}'
        "[30d]))"
        f" / sum(increase(rampart_http_request_duration_seconds_count{{{_USER}}}[30d]))) / 0.05"
    ),
}


def error_budget(ctx: Context) -> Result:
    """Both SLOs have budget left: no-go when one is spent (the freeze policy of
    docs/slo.md), warn under a quarter left, not available without Prometheus or data."""
    check, doc = "error budget left (30 days)", "docs/slo.md#freeze-policy"
    url = ctx.settings.prometheus_url
    if not url:
        return not_available(
            AREA,
            check,
            "PROMETHEUS_URL not set (`rampart up` runs none)",
            "PROMETHEUS_URL",
            "set PROMETHEUS_URL",
            doc,
        )
    source = f"{url} (docs/slo.md budget queries)"
    left: dict[str, float] = {}
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=30) as client:
            for slo, expr in BUDGET_LEFT.items():
                answer = client.get("/api/v1/query", params={"query": expr}).raise_for_status()
                result = answer.json()["data"]["result"]
                if result:
                    value = float(result[0]["value"][1])
                    if value == value:  # NaN: no traffic
                        left[slo] = value
    except (httpx.HTTPError, KeyError, ValueError, TypeError, IndexError) as exc:
        return not_available(
            AREA, check, f"Prometheus does not answer: {exc!r}", source, "check PROMETHEUS_URL", doc
        )
    missing = [slo for slo in BUDGET_LEFT if slo not in left]
    if missing:
        return not_available(
            AREA,
            check,
            f"no data for {', '.join(missing)} (no API traffic scraped)",
            source,
            "check Prometheus scrapes rampart-api",
            doc,
        )
    figure = ", ".join(f"{slo} {value:.0%} left" for slo, value in left.items())
    if min(left.values()) <= 0:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{figure}: budget spent, releases frozen",
            source,
            "only fixes ship until the freeze ends (docs/slo.md)",
            doc,
        )
    if min(left.values()) < WARN_BELOW:
        return Result(
            AREA,
            check,
            Status.WARN,
            figure,
            source,
            "no risky releases until the budget recovers",
            doc,
        )
    return Result(AREA, check, Status.GO, figure, source)
