from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from rampart.assessments import service
from rampart.assessments.limits import assessment_rate_limit
from rampart.assessments.schemas import (
    AssessmentAccepted,
    AssessmentIn,
    AssessmentOut,
    AssessmentPage,
)
from rampart.kit import idempotency
from rampart.kit.security.permissions import VerifiedActor, requires
from rampart.kit.security.principal import Principal
from rampart.kit.security.request_tx import TenantTx
from rampart.kit.security.roles import Action
from rampart.questionnaire import QUESTIONNAIRE, Questionnaire

router = APIRouter(prefix="/api/v1/assessments", tags=["assessments"])


@router.get("/questionnaire", response_model=Questionnaire)
async def questionnaire() -> Questionnaire:
    return QUESTIONNAIRE


@router.post(
    "",
    status_code=202,
    response_model=AssessmentAccepted,
    dependencies=[Depends(assessment_rate_limit)],
    responses={
        402: {
            "description": "The plan's monthly assessments are used up (`quota_exceeded`; "
            "`details`: metric, plan, limit, usage, period_start, reset_at)."
        }
    },
)
async def create_assessment(
    data: AssessmentIn,
    actor: Annotated[
        Principal, requires(Action.CREATE, "Your role does not allow creating assessments.")
    ],
    tx: TenantTx,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> AssessmentAccepted:
    accepted = await idempotency.once(
        tx,
        idempotency_key,
        idempotency.fingerprint("POST", "/api/v1/assessments", data.model_dump_json()),
        lambda: service.create(tx, actor, data),
        AssessmentAccepted,
        response,
        status=202,
    )
    response.headers["Location"] = f"/api/v1/assessments/{accepted.id}"
    if accepted.quota_warning:
        response.headers["Quota-Warning"] = accepted.quota_warning
    return accepted


@router.get("", response_model=AssessmentPage)
async def list_assessments(
    tx: TenantTx,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AssessmentPage:
    return await service.list_page(tx, limit=limit, cursor=cursor)


@router.get("/{assessment_id}", response_model=AssessmentOut)
async def get_assessment(assessment_id: uuid.UUID, tx: TenantTx) -> AssessmentOut:
    return await service.get(tx, assessment_id)


@router.delete("/{assessment_id}", status_code=204)
async def delete_assessment(
    assessment_id: uuid.UUID, actor: VerifiedActor, tx: TenantTx
) -> Response:
    # Per object (a member deletes their own, an admin anyone's): the service decides, after
    # the row is looked up (another tenant's is a 404 first).
    await service.delete(tx, actor, assessment_id)
    return Response(status_code=204)
