"""Plans as data, calendar periods, and the fake Stripe's form decoding (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from rampart.billing import plans
from rampart.billing.fake_stripe import nest


def test_every_plan_has_limits_and_only_pro_is_for_sale():
    found = plans.all_plans()
    assert set(found) == {"free", "pro"}
    free, pro = found["free"], found["pro"]
    assert free.price_id is None and free.monthly_price_cents == 0
    assert pro.price_id and pro.monthly_price_cents > 0
    assert pro.limit("assessments") > 0 and free.limit("assessments") > 0
    assert pro.members > free.members and pro.evidence_bytes > free.evidence_bytes
    assert free.allows_provider("offline") and not free.allows_provider("anthropic")
    assert plans.for_price(pro.price_id) == pro and plans.for_price("price_other") is None


def test_an_unknown_plan_name_is_the_free_plan():
    assert plans.get("enterprise").name == "free"
    assert plans.get(None).name == "free"


@pytest.mark.parametrize(
    ("now", "start", "reset"),
    [
        (datetime(2026, 3, 15, 12, tzinfo=UTC), date(2026, 3, 1), datetime(2026, 4, 1, tzinfo=UTC)),
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            date(2026, 12, 1),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (datetime(2026, 1, 1, tzinfo=UTC), date(2026, 1, 1), datetime(2026, 2, 1, tzinfo=UTC)),
    ],
)
def test_periods_are_calendar_months_in_utc(now, start, reset):
    assert plans.period_start(now) == start
    assert plans.period_end(start) == reset


def test_stripe_form_encoding_is_decoded_into_nested_objects():
    pairs = [
        ("mode", "subscription"),
        ("line_items[0][price]", "price_1"),
        ("line_items[0][quantity]", "1"),
        ("metadata[tenant_id]", "t"),
        ("created[gte]", "10"),
        ("subscription_data[metadata][tenant_id]", "t"),
    ]
    assert nest(pairs) == {
        "mode": "subscription",
        "line_items": [{"price": "price_1", "quantity": "1"}],
        "metadata": {"tenant_id": "t"},
        "created": {"gte": "10"},
        "subscription_data": {"metadata": {"tenant_id": "t"}},
    }
