"""The plans, as data: one place that says what each plan allows and what it costs.

Every rule that depends on the plan reads it from here: the assessment quota (metered in
`usage_counters`, billing/service.py), the members and evidence limits, the LLM providers
a plan may use, the Stripe Price a checkout sells and the price MRR is computed from.
The quota numbers and the Price id are settings (operators tune them without a release);
everything else is here.

    plan = plans.get("free")
    plan.limit("assessments")        # per calendar month (UTC), None: unlimited
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from rampart.config import get_settings

PlanName = Literal["free", "pro"]
Metric = Literal["assessments"]

# What each metered metric counts, for the API and docs.
METRICS: dict[str, str] = {"assessments": "assessments created per calendar month (UTC)"}

# A warning (header + event) at this share of a limit; 402 at 100 %.
WARNING_RATIO = 0.8


@dataclass(frozen=True)
class Plan:
    name: PlanName
    title: str
    # Per calendar month, counted per tenant; None = unlimited.
    assessments_per_month: int | None
    # Live users in the tenant; None = unlimited.
    members: int | None
    # Bytes of evidence a tenant may store.
    evidence_bytes: int
    # LLM providers the plan may use, in LLM_PROVIDERS order; the offline scorer always.
    llm_providers: frozenset[str] = field(default_factory=frozenset)
    # The Stripe Price a checkout for this plan sells (None: not for sale, e.g. free).
    price_id: str | None = None
    # What the price is, for MRR (minor units per month).
    monthly_price_cents: int = 0
    currency: str = "usd"
    # Per-user creation rate (`limits` notation), applied by assessments/limits.py.
    assessments_rate_limit: str = "10/hour"

    def limit(self, metric: str) -> int | None:
        if metric == "assessments":
            return self.assessments_per_month
        raise KeyError(metric)

    def allows_provider(self, provider: str) -> bool:
        return provider == "offline" or provider in self.llm_providers


def all_plans() -> dict[str, Plan]:
    """Every plan, by name (read from the settings each call: tests change them)."""
    settings = get_settings()
    return {
        "free": Plan(
            name="free",
            title="Free",
            assessments_per_month=settings.plan_free_assessments_per_month,
            members=3,
            evidence_bytes=100 * 1024 * 1024,
            llm_providers=frozenset({"openai"}),
            assessments_rate_limit=settings.rate_limit_assessments_free,
        ),
        "pro": Plan(
            name="pro",
            title="Pro",
            assessments_per_month=settings.plan_pro_assessments_per_month,
            members=50,
            evidence_bytes=20 * 1024 * 1024 * 1024,
            llm_providers=frozenset({"openai", "anthropic"}),
            price_id=settings.stripe_price_pro,
            monthly_price_cents=4900,
            assessments_rate_limit=settings.rate_limit_assessments_pro,
        ),
    }


def get(name: str | None) -> Plan:
    """The plan called `name`; an unknown or missing name is the free plan (fail closed)."""
    plans = all_plans()
    return plans.get(name or "free", plans["free"])


def for_price(price_id: str | None) -> Plan | None:
    return next((p for p in all_plans().values() if price_id and p.price_id == price_id), None)


# --- periods: calendar months in UTC ------------------------------------------------------


def period_start(now: datetime | None = None) -> date:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).date().replace(day=1)


def period_end(start: date) -> datetime:
    """The instant the period after `start` begins (the quota's reset time)."""
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)
