"""The deterministic offline provider, the provider seam and the shared result schemas."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from pydantic import ValidationError

from rampart.llm.base import DefinitiveLLMError, LLMError, LLMProvider, TransientLLMError
from rampart.llm.offline import (
    MAX_ROADMAP_ITEMS,
    MIN_ROADMAP_ITEMS,
    OfflineProvider,
    plan_roadmap,
    score_answers,
)
from rampart.llm.schemas import DimensionScore, RoadmapItem, RoadmapResult, ScoreResult
from rampart.questionnaire import QUESTION_IDS, QUESTIONNAIRE, QUESTIONS_BY_ID

pytestmark = pytest.mark.unit

# Hand-computed reference set (dimension score = sum / 4 answers / 5 * 100):
#   observability 1+3+0+2 = 6  -> 30     security   5+4+2+3 = 14 -> 70
#   resilience    0+1+1+0 = 2  -> 10     operations 5+4+2+1 = 12 -> 60
#   overall (30+70+10+60) / 4 = 42.5 -> 43 (halves round up)
MIXED = {
    "obs.structured_logs": 1,
    "obs.metrics": 3,
    "obs.tracing": 0,
    "obs.slo_alerting": 2,
    "sec.secrets_management": 5,
    "sec.tenant_isolation": 4,
    "sec.dependency_scanning": 2,
    "sec.access_control": 3,
    "res.backups_restore": 0,
    "res.timeouts_retries": 1,
    "res.graceful_degradation": 1,
    "res.failure_testing": 0,
    "ops.ci_cd": 5,
    "ops.rollback": 4,
    "ops.oncall_runbooks": 2,
    "ops.postmortems": 1,
}
ACTION_TO_ID = {q.action: q.id for q in QUESTIONNAIRE.questions}
DIMENSION_ACTIONS = {d.keep_improving: d.id for d in QUESTIONNAIRE.dimensions}


def uniform(value: int) -> dict[str, int]:
    return {qid: value for qid in QUESTION_IDS}


def expected_horizon(value: int) -> int:
    return 30 if value <= 1 else 60 if value <= 3 else 90


@pytest.fixture()
def provider() -> OfflineProvider:
    return OfflineProvider()


def scored(provider: OfflineProvider, answers: dict[str, int], context: str | None) -> ScoreResult:
    """`provider.score`, run to completion on a fresh event loop."""
    return asyncio.run(provider.score(answers, context))


def planned(
    provider: OfflineProvider, answers: dict[str, int], score: ScoreResult, context: str | None
) -> RoadmapResult:
    """`provider.roadmap`, run to completion on a fresh event loop."""
    return asyncio.run(provider.roadmap(answers, score, context))


def run(provider: OfflineProvider, answers: dict[str, int]) -> tuple[ScoreResult, RoadmapResult]:
    score = scored(provider, answers, None)
    return score, planned(provider, answers, score, None)


# --- seam -------------------------------------------------------------------------------


def test_offline_provider_satisfies_the_protocol(provider: OfflineProvider) -> None:
    assert isinstance(provider, LLMProvider)
    assert (provider.name, provider.model) == ("offline", "rules-v1")


def test_error_hierarchy() -> None:
    assert issubclass(TransientLLMError, LLMError)
    assert issubclass(DefinitiveLLMError, LLMError)
    assert not issubclass(TransientLLMError, DefinitiveLLMError)
    assert issubclass(LLMError, Exception)


# --- scoring ----------------------------------------------------------------------------


def test_mixed_answers_give_hand_computed_scores(provider: OfflineProvider) -> None:
    score = scored(provider, MIXED, None)
    assert {k: v.score for k, v in score.dimensions.items()} == {
        "observability": 30,
        "security": 70,
        "resilience": 10,
        "operations": 60,
    }
    assert score.overall == 43


def test_overall_rounds_halves_up(provider: OfflineProvider) -> None:
    # observability 4+4+4+2 = 14 -> 70; others 5s -> 100; overall 370/4 = 92.5 -> 93
    answers = uniform(5) | {
        "obs.structured_logs": 4,
        "obs.metrics": 4,
        "obs.tracing": 4,
        "obs.slo_alerting": 2,
    }
    score = scored(provider, answers, None)
    assert score.dimensions["observability"].score == 70
    assert score.overall == 93


def test_all_zeros_score_zero(provider: OfflineProvider) -> None:
    score = scored(provider, uniform(0), None)
    assert score.overall == 0
    assert all(d.score == 0 for d in score.dimensions.values())


def test_all_fives_score_hundred(provider: OfflineProvider) -> None:
    score = scored(provider, uniform(5), None)
    assert score.overall == 100
    assert all(d.score == 100 for d in score.dimensions.values())


def test_every_dimension_is_scored(provider: OfflineProvider) -> None:
    score = scored(provider, MIXED, None)
    assert list(score.dimensions) == [d.id for d in QUESTIONNAIRE.dimensions]


def test_rationale_names_weakest_and_strong_practices(provider: OfflineProvider) -> None:
    dims = scored(provider, MIXED, None).dimensions
    assert dims["security"].rationale == (
        "Security scores 70/100. Weakest: dependency scanning (2/5), "
        "production access control (3/5). Strong: secrets management (5/5), "
        "tenant isolation (4/5)."
    )
    assert dims["resilience"].rationale == (
        "Resilience scores 10/100. Weakest: tested backups (0/5), failure testing (0/5). "
        "Nothing is rated 4/5 or higher yet."
    )
    perfect = scored(provider, uniform(5), None).dimensions["operations"].rationale
    assert perfect.startswith("Operations scores 100/100. Nothing is rated below 4/5.")


def test_same_answers_give_identical_results() -> None:
    first = run(OfflineProvider(), MIXED)
    second = run(OfflineProvider(), dict(reversed(list(MIXED.items()))))
    assert first[0].model_dump() == second[0].model_dump()
    assert first[1].model_dump() == second[1].model_dump()


def test_context_is_ignored_and_never_echoed(provider: OfflineProvider) -> None:
    context = "Contact Jane Doe, jane.doe@example.com, +1 555 0100"
    plain = run(provider, MIXED)
    with_context = (
        scored(provider, MIXED, context),
        planned(provider, MIXED, plain[0], context),
    )
    assert with_context[0] == plain[0]
    assert with_context[1] == plain[1]
    dumped = with_context[0].model_dump_json() + with_context[1].model_dump_json()
    assert "jane" not in dumped.lower()


# --- roadmap ----------------------------------------------------------------------------


def test_mixed_roadmap_puts_weakest_practices_first(provider: OfflineProvider) -> None:
    _, roadmap = run(provider, MIXED)
    # answer 0 first, ties by dimension score (resilience 10 < observability 30), then id;
    # then answer 1 likewise; capped at MAX_ROADMAP_ITEMS.
    assert [ACTION_TO_ID[i.title] for i in roadmap.items] == [
        "res.backups_restore",
        "res.failure_testing",
        "obs.tracing",
        "res.graceful_degradation",
        "res.timeouts_retries",
        "obs.structured_logs",
        "ops.postmortems",
        "obs.slo_alerting",
    ]
    assert len(roadmap.items) == MAX_ROADMAP_ITEMS


def test_roadmap_priorities_horizons_and_dimensions(provider: OfflineProvider) -> None:
    _, roadmap = run(provider, MIXED)
    assert [i.priority for i in roadmap.items] == list(range(1, len(roadmap.items) + 1))
    for item in roadmap.items:
        question = QUESTIONS_BY_ID[ACTION_TO_ID[item.title]]
        assert item.dimension == question.dimension
        assert item.horizon_days == expected_horizon(MIXED[question.id])
        assert item.why.startswith(question.impact)
        assert f"rated {MIXED[question.id]}/5" in item.why
    assert [i.horizon_days for i in roadmap.items] == [30] * 7 + [60]


def test_roadmap_uses_given_dimension_scores_to_break_ties(provider: OfflineProvider) -> None:
    answers = uniform(5) | {"obs.tracing": 1, "sec.access_control": 1}
    own = scored(provider, answers, None)
    assert own.dimensions["observability"].score == own.dimensions["security"].score
    # equal answers and equal scores: question id decides (obs < sec)
    first = planned(provider, answers, own, None).items[0]
    assert ACTION_TO_ID[first.title] == "obs.tracing"
    # another provider judged security weaker: it comes first
    weaker = DimensionScore(score=10, rationale="x")
    other = own.model_copy(update={"dimensions": own.dimensions | {"security": weaker}})
    first = planned(provider, answers, other, None).items[0]
    assert ACTION_TO_ID[first.title] == "sec.access_control"


def test_all_fives_still_get_three_keep_improving_items(provider: OfflineProvider) -> None:
    _, roadmap = run(provider, uniform(5))
    assert len(roadmap.items) == MIN_ROADMAP_ITEMS == 3
    # all dimensions tie at 100: ordered by dimension id
    assert [DIMENSION_ACTIONS[i.title] for i in roadmap.items] == [
        "observability",
        "operations",
        "resilience",
    ]
    assert [i.dimension for i in roadmap.items] == ["observability", "operations", "resilience"]
    assert all(i.horizon_days == 90 for i in roadmap.items)
    assert [i.priority for i in roadmap.items] == [1, 2, 3]


def test_short_roadmap_is_padded_with_lowest_scored_dimensions(
    provider: OfflineProvider,
) -> None:
    answers = uniform(5) | {"sec.access_control": 4}  # security 95, the rest 100
    _, roadmap = run(provider, answers)
    assert len(roadmap.items) == 3
    assert ACTION_TO_ID[roadmap.items[0].title] == "sec.access_control"
    assert roadmap.items[0].horizon_days == 90
    assert [DIMENSION_ACTIONS[i.title] for i in roadmap.items[1:]] == ["security", "observability"]


def test_all_zeros_roadmap_is_capped_and_urgent(provider: OfflineProvider) -> None:
    _, roadmap = run(provider, uniform(0))
    assert len(roadmap.items) == MAX_ROADMAP_ITEMS
    assert all(i.horizon_days == 30 for i in roadmap.items)
    ids = [ACTION_TO_ID[i.title] for i in roadmap.items]
    assert ids == sorted(ids)  # everything ties: question id decides


def test_results_validate_against_the_strict_schemas(provider: OfflineProvider) -> None:
    score, roadmap = run(provider, MIXED)
    assert ScoreResult.model_validate_json(score.model_dump_json()) == score
    assert RoadmapResult.model_validate_json(roadmap.model_dump_json()) == roadmap


def test_invariants_hold_for_many_random_answer_sets(provider: OfflineProvider) -> None:
    """A seeded sweep standing in for a property test (hypothesis is not installed)."""
    rng = random.Random(20240601)
    ids = sorted(QUESTION_IDS)
    for _ in range(500):
        answers = {qid: rng.randint(0, 5) for qid in ids}
        score, roadmap = run(provider, answers)
        assert run(provider, answers) == (score, roadmap)
        assert 0 <= score.overall <= 100
        for dim_id, dim in score.dimensions.items():
            values = [answers[q.id] for q in QUESTIONNAIRE.questions_for(dim_id)]
            assert dim.score == int(sum(values) / len(values) * 20 + 0.5)
            assert 0 < len(dim.rationale) < 300
        assert MIN_ROADMAP_ITEMS <= len(roadmap.items) <= MAX_ROADMAP_ITEMS
        assert [i.priority for i in roadmap.items] == list(range(1, len(roadmap.items) + 1))
        question_items = [i for i in roadmap.items if i.title in ACTION_TO_ID]
        ranks = [answers[ACTION_TO_ID[i.title]] for i in question_items]
        assert ranks == sorted(ranks)
        assert ranks[0] == min(answers.values()) or min(answers.values()) == 5
        for item, value in zip(question_items, ranks, strict=True):
            assert item.horizon_days == expected_horizon(value)
            assert value < 5


def test_tolerates_unvalidated_answers_without_failing(provider: OfflineProvider) -> None:
    answers = {"obs.tracing": 9, "bogus": 3, "sec.access_control": True}  # type: ignore[dict-item]
    score, roadmap = run(provider, answers)
    # out of range clamped to 5, missing and bool count as 0, unknown ignored:
    # observability (5+0+0+0)/4 -> 25, the rest 0; overall 25/4 = 6.25 -> 6
    assert score.dimensions["observability"].score == 25
    assert score.overall == 6
    assert len(roadmap.items) >= 3


# --- latency ----------------------------------------------------------------------------


class Sleeps(list):
    """An injectable async sleep that records what it was asked to wait."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_latency_sleeps_before_each_answer() -> None:
    calls = Sleeps()
    provider = OfflineProvider(latency_seconds=1.5, sleep=calls)
    run(provider, MIXED)
    assert calls == [1.5, 1.5]


def test_no_latency_by_default() -> None:
    calls = Sleeps()
    run(OfflineProvider(sleep=calls), MIXED)
    assert calls == []


def test_latency_really_sleeps() -> None:
    provider = OfflineProvider(latency_seconds=0.05)
    started = time.monotonic()
    scored(provider, MIXED, None)
    assert time.monotonic() - started >= 0.05


def test_simulated_latency_does_not_block_the_event_loop() -> None:
    """Slow offline calls overlap: the loop keeps running other tasks while they wait."""
    ticks: list[int] = []

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    async def main() -> list[ScoreResult]:
        provider = OfflineProvider(latency_seconds=0.2)
        other = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        results = await asyncio.gather(*(provider.score(MIXED) for _ in range(20)))
        other.cancel()
        return results

    started = time.monotonic()
    results = asyncio.run(main())
    assert results == [score_answers(MIXED)] * 20
    assert len(ticks) >= 5  # a blocking sleep would have let the ticker run once
    assert time.monotonic() - started < 2.0  # 20 x 0.2 s one after the other would be 4 s


def test_the_provider_answers_what_the_plain_rules_compute(provider: OfflineProvider) -> None:
    score, roadmap = run(provider, MIXED)
    assert score == score_answers(MIXED)
    assert roadmap == plan_roadmap(MIXED, score)


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_negative_latency_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError):
        OfflineProvider(latency_seconds=bad)


# --- schemas ----------------------------------------------------------------------------


def _item(**overrides: object) -> dict:
    return {
        "priority": 1,
        "dimension": "security",
        "title": "Do it",
        "why": "Because.",
        "horizon_days": 30,
    } | overrides


def test_schemas_forbid_extra_keys() -> None:
    with pytest.raises(ValidationError):
        DimensionScore.model_validate({"score": 5, "rationale": "ok", "confidence": 0.9})
    with pytest.raises(ValidationError):
        RoadmapItem.model_validate(_item(owner="bob"))


@pytest.mark.parametrize("bad", [-1, 101, True, "50", 50.5])
def test_scores_must_be_ints_in_range(bad: object) -> None:
    with pytest.raises(ValidationError):
        DimensionScore.model_validate({"score": bad, "rationale": "ok"})


@pytest.mark.parametrize(
    "override",
    [
        {"horizon_days": 45},
        {"horizon_days": "30"},
        {"priority": 0},
        {"title": ""},
        {"title": "x" * 201},
        {"why": "x" * 1001},
    ],
)
def test_roadmap_item_constraints(override: dict) -> None:
    with pytest.raises(ValidationError):
        RoadmapItem.model_validate(_item(**override))


def test_roadmap_needs_at_least_three_items() -> None:
    with pytest.raises(ValidationError):
        RoadmapResult.model_validate({"items": [_item(), _item(priority=2)]})
    items = ", ".join(
        RoadmapItem.model_validate(_item(priority=p)).model_dump_json() for p in (1, 2, 3)
    )
    ok = RoadmapResult.model_validate_json(f'{{"items": [{items}]}}')
    assert len(ok.items) == 3


def test_rationale_length_limits() -> None:
    with pytest.raises(ValidationError):
        DimensionScore(score=1, rationale="")
    with pytest.raises(ValidationError):
        DimensionScore(score=1, rationale="x" * 501)
