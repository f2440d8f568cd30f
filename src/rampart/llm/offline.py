"""The built-in offline provider: deterministic rules, no network, never fails.

It is the default provider and the last fallback when real LLM providers are unavailable.
Scoring rules (scale 0..5, halves rounded up):

- dimension score = mean of the dimension's answers / 5 * 100, rounded to an int;
- overall = mean of the (rounded) dimension scores, rounded to an int.

Roadmap rules: one item per practice not yet at the top of the scale, weakest first (lowest
answer, then lowest dimension score, then question id), at most ``MAX_ROADMAP_ITEMS``. The
title is the practice's action, the horizon follows the answer (0-1: 30 days, 2-3: 60,
4-5: 90). If fewer than ``MIN_ROADMAP_ITEMS`` practices can improve, "keep improving" items
for the lowest-scored dimensions fill the roadmap up.

The rules are the plain functions ``score_answers`` and ``plan_roadmap`` (pure, about
0.6 ms of CPU for both, so the provider runs them inline on the event loop); the
``OfflineProvider`` is the async provider seam over them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from fractions import Fraction
from typing import Literal

from rampart.llm.schemas import DimensionScore, RoadmapItem, RoadmapResult, ScoreResult
from rampart.questionnaire import QUESTIONNAIRE, Dimension, Question

__all__ = [
    "MAX_ROADMAP_ITEMS",
    "MIN_ROADMAP_ITEMS",
    "OfflineProvider",
    "plan_roadmap",
    "score_answers",
]

MIN_ROADMAP_ITEMS = 3
MAX_ROADMAP_ITEMS = 8
_WEAKEST_SHOWN = 2  # practices named per side in a rationale
_RATIONALE_MAX = 300

Horizon = Literal[30, 60, 90]


class OfflineProvider:
    """Rule-based provider: the same answers always give the same score and roadmap.

    ``latency_seconds`` makes every ``score``/``roadmap`` call wait that long before
    answering (``await asyncio.sleep``: the event loop keeps serving other calls), to
    simulate a slow model in demos and chaos tests (0 = answer immediately). ``sleep`` (a
    coroutine function) is injectable for tests.

    ``context`` is accepted for interface compatibility and deliberately ignored: it is
    free text that may contain personal data, so it never reaches the output or the logs.

    Answers are expected to have passed ``validate_answers``; the provider is nonetheless
    total: missing or non-integer answers count as the scale minimum, out-of-range values are
    clamped and unknown ids are ignored.
    """

    name: str = "offline"
    model: str = "rules-v1"

    def __init__(
        self,
        latency_seconds: float = 0.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not latency_seconds >= 0:  # also rejects NaN
            raise ValueError("latency_seconds must be >= 0")
        self.latency_seconds = float(latency_seconds)
        self._sleep = sleep

    async def score(self, answers: dict[str, int], context: str | None = None) -> ScoreResult:
        """Score each dimension from its answers and average them into the overall score."""
        await self._simulate_latency()
        return score_answers(answers)

    async def roadmap(
        self, answers: dict[str, int], score: ScoreResult, context: str | None = None
    ) -> RoadmapResult:
        """Turn the weakest practices into prioritized actions (``plan_roadmap``)."""
        await self._simulate_latency()
        return plan_roadmap(answers, score)

    async def _simulate_latency(self) -> None:
        if self.latency_seconds > 0:
            await self._sleep(self.latency_seconds)


def score_answers(answers: Mapping[str, object]) -> ScoreResult:
    """Score each dimension from its answers and average them into the overall score."""
    values = _normalize(answers)
    scores = _dimension_scores(values)
    dimensions = {
        d.id: DimensionScore(score=scores[d.id], rationale=_rationale(d, scores[d.id], values))
        for d in QUESTIONNAIRE.dimensions
    }
    overall = _round_half_up(Fraction(sum(scores.values()), len(scores)))
    return ScoreResult(overall=overall, dimensions=dimensions)


def plan_roadmap(answers: Mapping[str, object], score: ScoreResult) -> RoadmapResult:
    """Turn the weakest practices into prioritized actions.

    Dimension scores from ``score`` (which may come from another provider) break ties
    between equal answers; dimensions missing from it use the offline score.
    """
    values = _normalize(answers)
    dim_scores = _dimension_scores(values)
    dim_scores.update({k: v.score for k, v in score.dimensions.items() if k in dim_scores})

    improvable = [q for q in QUESTIONNAIRE.questions if values[q.id] < QUESTIONNAIRE.scale_max]
    improvable.sort(key=lambda q: (values[q.id], dim_scores[q.dimension], q.id))
    drafts: list[tuple[str, str, str, Horizon]] = [
        (q.dimension, q.action, _why(q, values[q.id], dim_scores), _horizon(values[q.id]))
        for q in improvable[:MAX_ROADMAP_ITEMS]
    ]

    if len(drafts) < MIN_ROADMAP_ITEMS:
        by_score = sorted(QUESTIONNAIRE.dimensions, key=lambda d: (dim_scores[d.id], d.id))
        for d in by_score[: MIN_ROADMAP_ITEMS - len(drafts)]:
            why = (
                f"{d.title} scores {dim_scores[d.id]}/100. Keep raising the bar so these "
                "practices stay reliable as the product and the team grow."
            )
            drafts.append((d.id, d.keep_improving, why, 90))

    items = [
        RoadmapItem(priority=i, dimension=dim, title=title, why=why, horizon_days=horizon)
        for i, (dim, title, why, horizon) in enumerate(drafts, start=1)
    ]
    return RoadmapResult(items=items)


def _normalize(answers: Mapping[str, object]) -> dict[str, int]:
    """One in-range int per question: missing/non-int -> scale_min, out of range -> clamped."""
    low, high = QUESTIONNAIRE.scale_min, QUESTIONNAIRE.scale_max
    values: dict[str, int] = {}
    for q in QUESTIONNAIRE.questions:
        raw = answers.get(q.id) if isinstance(answers, Mapping) else None
        if isinstance(raw, bool) or not isinstance(raw, int):
            values[q.id] = low
        else:
            values[q.id] = min(max(raw, low), high)
    return values


def _round_half_up(value: Fraction) -> int:
    """Round exactly, halves up (avoids float error and banker's rounding)."""
    return math.floor(value + Fraction(1, 2))


def _dimension_scores(values: Mapping[str, int]) -> dict[str, int]:
    low, high = QUESTIONNAIRE.scale_min, QUESTIONNAIRE.scale_max
    scores: dict[str, int] = {}
    for d in QUESTIONNAIRE.dimensions:
        questions = QUESTIONNAIRE.questions_for(d.id)
        mean = Fraction(sum(values[q.id] for q in questions), len(questions))
        scores[d.id] = _round_half_up((mean - low) * 100 / (high - low))
    return scores


def _rationale(dimension: Dimension, score: int, values: Mapping[str, int]) -> str:
    """E.g. "Security scores 40/100. Weakest: tenant isolation (0/5), ... Strong: ..."."""
    high = QUESTIONNAIRE.scale_max
    strong_at = high - 1
    questions = QUESTIONNAIRE.questions_for(dimension.id)

    def rated(qs: list[Question]) -> str:
        return ", ".join(f"{q.label} ({values[q.id]}/{high})" for q in qs)

    weak = sorted(
        (q for q in questions if values[q.id] < strong_at), key=lambda q: (values[q.id], q.id)
    )[:_WEAKEST_SHOWN]
    strong = sorted(
        (q for q in questions if values[q.id] >= strong_at), key=lambda q: (-values[q.id], q.id)
    )[:_WEAKEST_SHOWN]

    parts = [f"{dimension.title} scores {score}/100."]
    if weak:
        parts.append(f"Weakest: {rated(weak)}.")
    else:
        parts.append(f"Nothing is rated below {strong_at}/{high}.")
    if strong:
        parts.append(f"Strong: {rated(strong)}.")
    else:
        parts.append(f"Nothing is rated {strong_at}/{high} or higher yet.")
    text = " ".join(parts)
    if len(text) > _RATIONALE_MAX:  # cannot happen with the current labels; stay safe anyway
        text = text[: _RATIONALE_MAX - 3].rstrip() + "..."
    return text


def _why(question: Question, value: int, dim_scores: Mapping[str, int]) -> str:
    dimension = QUESTIONNAIRE.dimension(question.dimension)
    label = QUESTIONNAIRE.scale_labels.get(value, str(value)).lower()
    return (
        f"{question.impact} Today this is rated {value}/{QUESTIONNAIRE.scale_max} ({label}); "
        f"{dimension.title} scores {dim_scores[dimension.id]}/100."
    )


def _horizon(value: int) -> Horizon:
    if value <= 1:
        return 30
    if value <= 3:
        return 60
    return 90
