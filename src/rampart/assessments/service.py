"""Assessments: accept answers, then score and roadmap them in the background.

queued → scoring → scored → roadmapping → completed (or failed). The LLM is called outside
any transaction; each step re-reads the row under a lock before writing, so a duplicate or
late delivery of the same job finds the work done and changes nothing.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from asyncpg import Record

from rampart.assessments import repository
from rampart.assessments.schemas import (
    AssessmentAccepted,
    AssessmentIn,
    AssessmentOut,
    AssessmentPage,
)
from rampart.billing import service as billing
from rampart.kit import audit, context
from rampart.kit.db.transaction import Tx
from rampart.kit.errors import NotFound, ValidationFailed
from rampart.kit.jobs.enqueue import enqueue
from rampart.kit.jobs.runner import JobRun
from rampart.kit.logging import get_logger
from rampart.kit.security import roles
from rampart.kit.security.principal import Principal
from rampart.llm import service as llm
from rampart.llm.schemas import ScoreResult
from rampart.questionnaire import AnswersError, validate_answers
from rampart.roadmaps import service as roadmap_service

log = get_logger(__name__)

# The job types (one name each: jobs.type, outbox.task, Celery task, metric label, logs).
SCORE_JOB = "score_assessment"
ROADMAP_JOB = "generate_roadmap"


# --- permissions: the route declares the action (`requires`, kit/security/permissions.py);
# what depends on the row is decided here (kit/security/roles.py). `actor.role` is the
# database's, not the token's.


def can_delete_assessment(actor: Principal, assessment: Record) -> bool:
    """Members delete their own; admins and owners anyone's in the tenant."""
    return roles.can_delete(actor.role, own=str(assessment["created_by"]) == actor.user_id)


async def create(tx: Tx, principal: Principal, data: AssessmentIn) -> AssessmentAccepted:
    """A new assessment, queued for scoring; the route checked Action.CREATE."""
    try:
        validate_answers(data.answers)
    except AnswersError as exc:
        raise ValidationFailed("The answers are invalid.", details=exc.details) from exc
    # Metered in this transaction: the unit and the assessment commit (or not) together.
    quota, usage_period = await billing.consume(tx, principal, "assessments")
    assessment_id = uuid.uuid4()
    tenant_id = uuid.UUID(principal.tenant_id)
    await repository.insert(
        tx,
        assessment_id=assessment_id,
        tenant_id=tenant_id,
        created_by=uuid.UUID(principal.user_id),
        answers=data.answers,
        context=data.context,
        trace_id=context.current("trace_id"),  # type: ignore[arg-type]
        usage_period=usage_period,
    )
    await enqueue(
        tx,
        tenant_id=tenant_id,
        job_type=SCORE_JOB,
        idempotency_key=f"score:{assessment_id}",
        payload={"assessment_id": str(assessment_id)},
    )
    context.bind(assessment_id=str(assessment_id))
    log.info("assessment_accepted")
    return AssessmentAccepted(
        id=assessment_id,
        status="queued",
        quota_warning=quota.header() if quota.warning else None,
    )


def _out(row: Record) -> AssessmentOut:
    return AssessmentOut.model_validate(dict(row))


async def get(tx: Tx, assessment_id: uuid.UUID) -> AssessmentOut:
    row = await repository.get(tx, assessment_id)
    if row is None:  # another tenant's row is invisible under RLS: 404, not 403
        raise NotFound("Assessment not found.")
    return _out(row)


async def require_visible(tx: Tx, assessment_id: uuid.UUID) -> None:
    """404 unless the caller can see this live assessment (for other domains' routes)."""
    await get(tx, assessment_id)


async def delete(tx: Tx, actor: Principal, assessment_id: uuid.UUID) -> None:
    """Soft delete: the row stays, marked; the API and the pipeline no longer see it."""
    assessment = await repository.get_for_update(tx, assessment_id)
    if assessment is None:  # another tenant's (RLS) or deleted already: 404 either way
        raise NotFound("Assessment not found.")
    roles.require(
        can_delete_assessment(actor, assessment),
        "Your role does not allow deleting this assessment.",
    )
    await repository.soft_delete(tx, assessment_id)
    await audit.record(
        tx,
        tenant_id=assessment["tenant_id"],
        actor_id=actor.user_id,
        action="assessment_deleted",
        subject=f"assessment:{assessment_id}",
    )
    context.bind(assessment_id=str(assessment_id))
    log.info("assessment_deleted")


def _encode_cursor(row: Record) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, uuid.UUID(ident)
    except ValueError as exc:
        raise ValidationFailed(
            "The cursor is invalid.", details=[{"field": "cursor", "problem": "malformed"}]
        ) from exc


async def list_page(tx: Tx, *, limit: int, cursor: str | None) -> AssessmentPage:
    before = _decode_cursor(cursor) if cursor else None
    rows = await repository.list_recent(tx, limit=limit + 1, before=before)
    page, more = rows[:limit], len(rows) > limit
    return AssessmentPage(
        items=[_out(row) for row in page],
        next_cursor=_encode_cursor(page[-1]) if more else None,
    )


# --- background steps (called by tasks.py through the job runner) -------------------------


async def _locked(tx: Tx, run: JobRun) -> Record | None:
    assessment_id = uuid.UUID(run.payload["assessment_id"])  # a bad payload is definitive
    context.bind(assessment_id=str(assessment_id))
    return await repository.get_for_update(tx, assessment_id)


def _needs_score(assessment: Record) -> bool:
    # `failed` with no score: a quarantined score job being replayed.
    return assessment["status"] in ("queued", "scoring") or (
        assessment["status"] == "failed" and assessment["overall_score"] is None
    )


def _needs_roadmap(assessment: Record) -> bool:
    return assessment["status"] in ("scored", "roadmapping") or (
        assessment["status"] == "failed"
        and assessment["overall_score"] is not None
        and assessment["roadmap_id"] is None
    )


async def score_step(run: JobRun) -> None:
    async with run.transaction() as tx:
        assessment = await _locked(tx, run)
        if assessment is None or not _needs_score(assessment):
            await run.succeed(tx)  # already scored (or gone): nothing to do twice
            return
        await repository.update(tx, assessment["id"], status="scoring", error=None)
        answers, user_context = dict(assessment["answers"]), assessment["context"]
        plan = await billing.plan_of(tx, run.tenant_id)

    generated = await llm.score(answers, user_context, plan.allows_provider)

    async with run.transaction() as tx:
        assessment = await _locked(tx, run)
        if assessment is None or assessment["status"] != "scoring":
            await run.succeed(tx)
            return
        await repository.update(
            tx,
            assessment["id"],
            status="scored",
            overall_score=generated.result.overall,
            dimension_scores=generated.result.model_dump()["dimensions"],
            provider=generated.provider,
            model=generated.model,
            degraded=generated.degraded,
            score_duration_ms=generated.duration_ms,
        )
        await enqueue(
            tx,
            tenant_id=run.tenant_id,
            job_type=ROADMAP_JOB,
            idempotency_key=f"roadmap:{assessment['id']}",
            payload={"assessment_id": str(assessment["id"])},
        )
        await run.succeed(tx)
    log.info("assessment_scored", provider=generated.provider, overall=generated.result.overall)


async def roadmap_step(run: JobRun) -> None:
    async with run.transaction() as tx:
        assessment = await _locked(tx, run)
        if assessment is None or not _needs_roadmap(assessment):
            await run.succeed(tx)
            return
        await repository.update(tx, assessment["id"], status="roadmapping", error=None)
        answers, user_context = dict(assessment["answers"]), assessment["context"]
        scored = ScoreResult.model_validate(
            {"overall": assessment["overall_score"], "dimensions": assessment["dimension_scores"]}
        )
        plan = await billing.plan_of(tx, run.tenant_id)

    generated = await llm.roadmap(answers, scored, user_context, plan.allows_provider)

    async with run.transaction() as tx:
        assessment = await _locked(tx, run)
        if assessment is None or assessment["status"] != "roadmapping":
            await run.succeed(tx)
            return
        roadmap_id = await roadmap_service.save(
            tx, tenant_id=run.tenant_id, assessment_id=assessment["id"], generated=generated
        )
        await repository.update(
            tx,
            assessment["id"],
            roadmap_id=roadmap_id,
            status="completed",
            degraded=assessment["degraded"] or generated.degraded,
        )
        await run.succeed(tx)
    log.info("assessment_completed", provider=generated.provider)


async def mark_failed(run: JobRun, exc: BaseException) -> None:
    """The job failed for good: say so on the assessment (the job row keeps the detail)."""
    async with run.transaction() as tx:
        assessment = await _locked(tx, run)
        if assessment is not None and assessment["status"] != "completed":
            await repository.update(
                tx,
                assessment["id"],
                status="failed",
                error="Processing failed; the team has been notified.",
            )
            # A failed (quarantined) assessment does not count against the quota.
            period = await repository.take_usage_period(tx, assessment["id"])
            if period is not None:
                await billing.refund(tx, assessment["tenant_id"], period, "assessments")
