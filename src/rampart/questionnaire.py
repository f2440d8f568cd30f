"""The production-readiness questionnaire, as data, plus answer validation.

Its own module, imported by the assessments domain (validation, the API) and by the llm
domain (prompts, the offline scorer), so neither has to reach into the other for it.

Question ids are stable public identifiers (they are stored with every assessment and
used as answer keys by API clients): add new questions with new ids, never rename or
renumber existing ones.

Every answer is an integer on the questionnaire scale (0 = not in place ... 5 = automated
and continuously verified).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "QUESTIONNAIRE",
    "QUESTION_IDS",
    "QUESTIONS_BY_ID",
    "AnswersError",
    "answers_json_schema",
    "Dimension",
    "Question",
    "Questionnaire",
    "validate_answers",
]


class Dimension(BaseModel):
    """A scored area of production readiness (e.g. observability)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1)
    keep_improving: str = Field(
        min_length=1,
        max_length=200,
        description="Roadmap action used when this dimension has nothing left below the top.",
    )


class Question(BaseModel):
    """One practice the team rates on the questionnaire scale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=60, description="Stable id, never renumbered.")
    text: str = Field(min_length=1, description="The question shown to the team.")
    dimension: str = Field(min_length=1, description="Id of the Dimension it belongs to.")
    label: str = Field(min_length=1, max_length=40, description="Short name of the practice.")
    action: str = Field(min_length=1, max_length=200, description="Concrete next step.")
    impact: str = Field(min_length=1, max_length=300, description="Why the practice matters.")


class Questionnaire(BaseModel):
    """The full questionnaire: dimensions, questions and the answer scale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dimensions: list[Dimension]
    questions: list[Question]
    scale_min: int = 0
    scale_max: int = 5
    scale_labels: dict[int, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_consistency(self) -> Questionnaire:
        dimension_ids = [d.id for d in self.dimensions]
        if len(set(dimension_ids)) != len(dimension_ids):
            raise ValueError("dimension ids must be unique")
        question_ids = [q.id for q in self.questions]
        if len(set(question_ids)) != len(question_ids):
            raise ValueError("question ids must be unique")
        for q in self.questions:
            if q.dimension not in dimension_ids:
                raise ValueError(f"question {q.id!r} refers to unknown dimension {q.dimension!r}")
        for d in self.dimensions:
            if not any(q.dimension == d.id for q in self.questions):
                raise ValueError(f"dimension {d.id!r} has no questions")
        if self.scale_min >= self.scale_max:
            raise ValueError("scale_min must be lower than scale_max")
        return self

    def questions_for(self, dimension_id: str) -> list[Question]:
        """The questions of one dimension, in questionnaire order."""
        return [q for q in self.questions if q.dimension == dimension_id]

    def dimension(self, dimension_id: str) -> Dimension:
        """Look a dimension up by id (KeyError if unknown)."""
        for d in self.dimensions:
            if d.id == dimension_id:
                return d
        raise KeyError(dimension_id)


_DIMENSIONS = [
    Dimension(
        id="observability",
        title="Observability",
        description="Can you see what production is doing and notice when users are hurting?",
        keep_improving="Review dashboards and alerts quarterly and retire the ones nobody used",
    ),
    Dimension(
        id="security",
        title="Security",
        description="Are secrets, tenant data and production access protected by default?",
        keep_improving="Commission an external penetration test and rehearse incident response",
    ),
    Dimension(
        id="resilience",
        title="Resilience",
        description="Does the service survive failing dependencies and recover from data loss?",
        keep_improving="Run failure drills in production with a tightly limited blast radius",
    ),
    Dimension(
        id="operations",
        title="Operations",
        description="Are delivery, releases and incident handling safe, fast and repeatable?",
        keep_improving="Track DORA metrics and set targets for deploy frequency and recovery time",
    ),
]

_QUESTIONS = [
    # --- observability -------------------------------------------------------------------
    Question(
        id="obs.structured_logs",
        dimension="observability",
        text="Do all services emit structured (JSON) logs that carry a request or trace id "
        "on every line?",
        label="structured logs",
        action="Emit JSON logs with request_id and trace_id on every line, from every service",
        impact="Without correlated, structured logs, incidents are diagnosed by grepping "
        "and guesswork.",
    ),
    Question(
        id="obs.metrics",
        dimension="observability",
        text="Do you collect rate, error and duration (RED) metrics for every endpoint and "
        "background job?",
        label="RED metrics",
        action="Export rate, error and latency metrics for every endpoint and job, "
        "and dashboard them",
        impact="Without metrics you cannot tell whether a change made things faster, "
        "slower or broken.",
    ),
    Question(
        id="obs.tracing",
        dimension="observability",
        text="Is distributed tracing propagated across API, queue and worker boundaries?",
        label="distributed tracing",
        action="Propagate trace context through HTTP calls and queued jobs, and sample "
        "traces in production",
        impact="Without traces, slowness and failures that cross the API/worker boundary "
        "cannot be pinned to a component.",
    ),
    Question(
        id="obs.slo_alerting",
        dimension="observability",
        text="Are alerts defined on user-facing SLOs (error-budget burn) rather than only "
        "on host resources?",
        label="SLO-based alerting",
        action="Define SLOs for key user journeys and page on error-budget burn rate",
        impact="Alerts on CPU and disk miss user-facing failures and wake people up for "
        "harmless noise.",
    ),
    # --- security ------------------------------------------------------------------------
    Question(
        id="sec.secrets_management",
        dimension="security",
        text="Are secrets kept in a secret manager or injected at runtime, never in code, "
        "images or plain config files?",
        label="secrets management",
        action="Move every secret into a secret manager, inject it at runtime and rotate "
        "anything ever committed",
        impact="A leaked repository or container image should never be enough to reach "
        "production data.",
    ),
    Question(
        id="sec.tenant_isolation",
        dimension="security",
        text="Is tenant isolation enforced in the data layer (e.g. row-level security) and "
        "covered by automated tests?",
        label="tenant isolation",
        action="Enforce tenant isolation in the database with row-level security and add "
        "cross-tenant access tests",
        impact="A single missing WHERE clause should not be able to expose another "
        "customer's data.",
    ),
    Question(
        id="sec.dependency_scanning",
        dimension="security",
        text="Are dependencies pinned and automatically scanned for known vulnerabilities in CI?",
        label="dependency scanning",
        action="Pin dependencies with hashes and fail CI on known critical vulnerabilities",
        impact="Many breaches exploit known vulnerabilities in third-party code that was "
        "never patched.",
    ),
    Question(
        id="sec.access_control",
        dimension="security",
        text="Is production access least-privilege, protected by MFA and audited?",
        label="production access control",
        action="Require SSO with MFA for production access, remove standing admin rights "
        "and log every session",
        impact="Shared or standing admin credentials turn one phished laptop into a full "
        "compromise.",
    ),
    # --- resilience ----------------------------------------------------------------------
    Question(
        id="res.backups_restore",
        dimension="resilience",
        text="Are backups taken automatically, and is restoring them tested on a schedule?",
        label="tested backups",
        action="Automate backups and run a scheduled restore drill against a recovery-time target",
        impact="An untested backup is a hope, not a recovery plan.",
    ),
    Question(
        id="res.timeouts_retries",
        dimension="resilience",
        text="Do all outbound calls have timeouts, and are retries bounded, backed off and "
        "safe to repeat (idempotent)?",
        label="timeouts and retries",
        action="Set explicit timeouts on every outbound call and retry only idempotent work "
        "with capped, jittered backoff",
        impact="One slow dependency without timeouts can exhaust every worker and take the "
        "whole service down.",
    ),
    Question(
        id="res.graceful_degradation",
        dimension="resilience",
        text="Does the service degrade gracefully (fallbacks, circuit breakers, load "
        "shedding) when a dependency fails?",
        label="graceful degradation",
        action="Add circuit breakers and fallbacks for each critical dependency and shed "
        "load before saturation",
        impact="Without fallbacks, any dependency outage becomes a full outage for your customers.",
    ),
    Question(
        id="res.failure_testing",
        dimension="resilience",
        text="Do you regularly test failure scenarios (killed processes, lost database or "
        "cache) in a production-like environment?",
        label="failure testing",
        action="Run a game day that kills a worker, the database and the cache, and fix "
        "what breaks",
        impact="Failure handling that has never been exercised usually fails the first time "
        "it is needed.",
    ),
    # --- operations ----------------------------------------------------------------------
    Question(
        id="ops.ci_cd",
        dimension="operations",
        text="Is every change built, tested and deployed through an automated pipeline?",
        label="automated CI/CD",
        action="Build, test and deploy every change through one automated pipeline with no "
        "manual steps",
        impact="Manual releases are slow, hard to repeat and a common source of "
        "self-inflicted outages.",
    ),
    Question(
        id="ops.rollback",
        dimension="operations",
        text="Can a bad release be rolled back within minutes, database migrations included?",
        label="fast rollback",
        action="Keep migrations backward-compatible and rehearse a one-command rollback",
        impact="If rolling back takes hours, every bad deploy becomes a long incident.",
    ),
    Question(
        id="ops.oncall_runbooks",
        dimension="operations",
        text="Is there an on-call rotation, with a runbook for every paging alert?",
        label="on-call and runbooks",
        action="Set up an on-call rotation and write a runbook for every paging alert",
        impact="Alerts without an owner and a runbook are handled slowly and inconsistently.",
    ),
    Question(
        id="ops.postmortems",
        dimension="operations",
        text="Are incidents followed by blameless postmortems whose action items are "
        "tracked to completion?",
        label="postmortems",
        action="Hold a blameless postmortem after each incident and track its action items "
        "to closure",
        impact="Without postmortems and follow-through, the same incidents keep coming back.",
    ),
]

QUESTIONNAIRE: Questionnaire = Questionnaire(
    dimensions=_DIMENSIONS,
    questions=_QUESTIONS,
    scale_min=0,
    scale_max=5,
    scale_labels={
        0: "Not in place",
        1: "Ad hoc",
        2: "Partially in place",
        3: "Mostly in place",
        4: "Standard practice",
        5: "Automated and continuously verified",
    },
)

QUESTION_IDS: frozenset[str] = frozenset(q.id for q in QUESTIONNAIRE.questions)
QUESTIONS_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONNAIRE.questions}


class AnswersError(ValueError):
    """Answers do not match the questionnaire.

    ``details`` lists every problem found, each ``{"field": "answers.<id>", "problem": ...}``,
    in a stable order (questionnaire order, then unknown ids sorted).
    """

    def __init__(self, details: list[dict[str, str]]) -> None:
        self.details = details
        count = len(details)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} with answers")


def validate_answers(answers: dict[str, int]) -> None:
    """Check that ``answers`` answers every question, and only those, within the scale.

    Raises AnswersError listing all problems at once: missing ids, unknown ids, and values
    that are not integers in scale_min..scale_max (bools are rejected explicitly since
    ``bool`` is an ``int`` subclass).
    """
    if not isinstance(answers, dict):
        raise AnswersError([{"field": "answers", "problem": "must be an object of answers"}])

    low, high = QUESTIONNAIRE.scale_min, QUESTIONNAIRE.scale_max
    details: list[dict[str, str]] = []
    for question in QUESTIONNAIRE.questions:
        field = f"answers.{question.id}"
        if question.id not in answers:
            details.append({"field": field, "problem": "missing: every question must be answered"})
            continue
        value: Any = answers[question.id]
        if isinstance(value, bool) or not isinstance(value, int):
            details.append({"field": field, "problem": f"must be an integer from {low} to {high}"})
        elif not low <= value <= high:
            details.append(
                {"field": field, "problem": f"out of range: must be {low} to {high}, got {value}"}
            )
    for key in sorted((k for k in answers if k not in QUESTION_IDS), key=str):
        details.append({"field": f"answers.{key}", "problem": "unknown question id"})
    if details:
        raise AnswersError(details)


def answers_json_schema() -> dict[str, Any]:
    """The JSON Schema of an assessment's answers, made from the questionnaire: one integer
    property per question id on the scale, all required, no others. validate_answers()
    checks the same rules (and lists every problem at once); this documents them."""
    low, high = QUESTIONNAIRE.scale_min, QUESTIONNAIRE.scale_max
    labels = QUESTIONNAIRE.scale_labels
    ids = [q.id for q in QUESTIONNAIRE.questions]
    return {
        "title": "Answers",
        "description": f"One answer for each of the {len(ids)} questions of GET "
        f"/api/v1/assessments/questionnaire, keyed by question id: an integer from {low} "
        f"({labels.get(low, low)}) to {high} ({labels.get(high, high)}). All are required; "
        "other keys are refused.",
        "type": "object",
        "properties": {
            q.id: {
                "type": "integer",
                "minimum": low,
                "maximum": high,
                "title": q.label,
                "description": q.text,
            }
            for q in QUESTIONNAIRE.questions
        },
        "required": ids,
        "additionalProperties": False,
    }
