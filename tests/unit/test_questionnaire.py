"""The questionnaire data and answer validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rampart.questionnaire import (
    QUESTION_IDS,
    QUESTIONNAIRE,
    QUESTIONS_BY_ID,
    AnswersError,
    Dimension,
    Question,
    Questionnaire,
    validate_answers,
)

pytestmark = pytest.mark.unit

# Ids are stored with assessments and used by clients: they may be added to, never renamed.
PUBLISHED_IDS = {
    "obs.structured_logs",
    "obs.metrics",
    "obs.tracing",
    "obs.slo_alerting",
    "sec.secrets_management",
    "sec.tenant_isolation",
    "sec.dependency_scanning",
    "sec.access_control",
    "res.backups_restore",
    "res.timeouts_retries",
    "res.graceful_degradation",
    "res.failure_testing",
    "ops.ci_cd",
    "ops.rollback",
    "ops.oncall_runbooks",
    "ops.postmortems",
}


def full_answers(value: int = 3) -> dict[str, int]:
    return {qid: value for qid in QUESTION_IDS}


def fields(error: AnswersError) -> list[str]:
    return [d["field"] for d in error.details]


# --- the questionnaire itself -----------------------------------------------------------


def test_has_enough_dimensions_and_questions() -> None:
    assert len(QUESTIONNAIRE.dimensions) >= 4
    assert len(QUESTIONNAIRE.questions) >= 12
    assert {d.id for d in QUESTIONNAIRE.dimensions} >= {
        "observability",
        "security",
        "resilience",
        "operations",
    }


def test_ids_are_unique_and_exported() -> None:
    ids = [q.id for q in QUESTIONNAIRE.questions]
    assert len(ids) == len(set(ids))
    assert frozenset(ids) == QUESTION_IDS
    assert isinstance(QUESTION_IDS, frozenset)
    assert set(QUESTIONS_BY_ID) == QUESTION_IDS
    dimension_ids = [d.id for d in QUESTIONNAIRE.dimensions]
    assert len(dimension_ids) == len(set(dimension_ids))


def test_published_ids_are_never_removed_or_renamed() -> None:
    assert PUBLISHED_IDS <= QUESTION_IDS


def test_every_question_belongs_to_an_existing_dimension() -> None:
    dimension_ids = {d.id for d in QUESTIONNAIRE.dimensions}
    for q in QUESTIONNAIRE.questions:
        assert q.dimension in dimension_ids, q.id


def test_every_dimension_has_three_or_four_questions() -> None:
    for d in QUESTIONNAIRE.dimensions:
        assert 3 <= len(QUESTIONNAIRE.questions_for(d.id)) <= 4, d.id


def test_question_texts_are_usable() -> None:
    for q in QUESTIONNAIRE.questions:
        assert q.text.endswith("?"), q.id
        assert q.action and len(q.action) <= 200, q.id  # becomes a roadmap title
        assert q.label and len(q.label) <= 40, q.id  # named in rationales
        assert q.impact.endswith("."), q.id


def test_scale_is_zero_to_five_with_labels() -> None:
    assert (QUESTIONNAIRE.scale_min, QUESTIONNAIRE.scale_max) == (0, 5)
    assert set(QUESTIONNAIRE.scale_labels) == set(range(0, 6))


def test_dimension_lookup() -> None:
    assert QUESTIONNAIRE.dimension("security").title == "Security"
    with pytest.raises(KeyError):
        QUESTIONNAIRE.dimension("nope")


def _dim(id_: str) -> Dimension:
    return Dimension(id=id_, title=id_.title(), description="d", keep_improving="k")


def _q(id_: str, dimension: str) -> Question:
    return Question(id=id_, text="t?", dimension=dimension, label="l", action="a", impact="i.")


def test_questionnaire_rejects_duplicate_question_ids() -> None:
    with pytest.raises(ValidationError, match="question ids must be unique"):
        Questionnaire(dimensions=[_dim("a")], questions=[_q("a.x", "a"), _q("a.x", "a")])


def test_questionnaire_rejects_question_with_unknown_dimension() -> None:
    with pytest.raises(ValidationError, match="unknown dimension"):
        Questionnaire(dimensions=[_dim("a")], questions=[_q("a.x", "a"), _q("b.x", "b")])


def test_questionnaire_rejects_empty_dimension() -> None:
    with pytest.raises(ValidationError, match="has no questions"):
        Questionnaire(dimensions=[_dim("a"), _dim("b")], questions=[_q("a.x", "a")])


# --- validate_answers -------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 3, 5])
def test_complete_answers_in_range_are_valid(value: int) -> None:
    assert validate_answers(full_answers(value)) is None


def test_missing_answer_is_rejected_with_its_field() -> None:
    answers = full_answers()
    del answers["sec.tenant_isolation"]
    with pytest.raises(AnswersError) as exc:
        validate_answers(answers)
    assert exc.value.details == [
        {
            "field": "answers.sec.tenant_isolation",
            "problem": "missing: every question must be answered",
        }
    ]


def test_empty_answers_report_every_question_missing() -> None:
    with pytest.raises(AnswersError) as exc:
        validate_answers({})
    assert fields(exc.value) == [f"answers.{q.id}" for q in QUESTIONNAIRE.questions]
    assert all(d["problem"].startswith("missing") for d in exc.value.details)


def test_unknown_id_is_rejected() -> None:
    answers = full_answers() | {"obs.crystal_ball": 3}
    with pytest.raises(AnswersError) as exc:
        validate_answers(answers)
    assert exc.value.details == [
        {"field": "answers.obs.crystal_ball", "problem": "unknown question id"}
    ]


@pytest.mark.parametrize("value", [-1, 6, 100])
def test_out_of_range_value_is_rejected(value: int) -> None:
    answers = full_answers() | {"ops.rollback": value}
    with pytest.raises(AnswersError) as exc:
        validate_answers(answers)
    assert fields(exc.value) == ["answers.ops.rollback"]
    assert "out of range" in exc.value.details[0]["problem"]
    assert str(value) in exc.value.details[0]["problem"]


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_rejected_even_though_it_is_an_int(value: bool) -> None:
    answers = full_answers() | {"obs.tracing": value}
    with pytest.raises(AnswersError) as exc:
        validate_answers(answers)
    assert fields(exc.value) == ["answers.obs.tracing"]
    assert "integer" in exc.value.details[0]["problem"]


@pytest.mark.parametrize("value", ["3", 2.0, None])
def test_non_int_value_is_rejected(value: object) -> None:
    answers: dict = full_answers() | {"obs.metrics": value}
    with pytest.raises(AnswersError) as exc:
        validate_answers(answers)
    assert fields(exc.value) == ["answers.obs.metrics"]


def test_all_problems_are_reported_at_once_in_stable_order() -> None:
    answers = full_answers()
    del answers["res.failure_testing"]
    answers["obs.metrics"] = 9
    answers["zzz.extra"] = 1
    answers["aaa.extra"] = 1
    with pytest.raises(AnswersError) as exc:
        validate_answers(answers)
    assert fields(exc.value) == [
        "answers.obs.metrics",
        "answers.res.failure_testing",
        "answers.aaa.extra",
        "answers.zzz.extra",
    ]
    assert str(exc.value) == "4 problems with answers"


def test_answers_error_is_a_value_error() -> None:
    assert issubclass(AnswersError, ValueError)
    with pytest.raises(ValueError):
        validate_answers({})


def test_non_dict_answers_are_rejected() -> None:
    with pytest.raises(AnswersError) as exc:
        validate_answers([1, 2, 3])  # type: ignore[arg-type]
    assert fields(exc.value) == ["answers"]
