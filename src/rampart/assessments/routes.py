from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from rampart.assessments import service
from rampart.assessments.questionnaire import QUESTIONNAIRE, Questionnaire
from rampart.assessments.schemas import (
    AssessmentAccepted,
    AssessmentIn,
    AssessmentOut,
    AssessmentPage,
)
from rampart.kit.db.dependency import TenantSession
from rampart.kit.security.permissions import CurrentActor
from rampart.kit.security.ratelimit import assessment_rate_limit

router = APIRouter(prefix="/api/v1/assessments", tags=["assessments"])


@router.get("/questionnaire", response_model=Questionnaire)
def questionnaire() -> Questionnaire:
    return QUESTIONNAIRE


@router.post(
    "",
    status_code=202,
    response_model=AssessmentAccepted,
    dependencies=[Depends(assessment_rate_limit)],
)
def create_assessment(
    data: AssessmentIn, principal: CurrentActor, session: TenantSession, response: Response
) -> AssessmentAccepted:
    accepted = service.create(session, principal, data)
    response.headers["Location"] = f"/api/v1/assessments/{accepted.id}"
    return accepted


@router.get("", response_model=AssessmentPage)
def list_assessments(
    session: TenantSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AssessmentPage:
    return service.list_page(session, limit=limit, cursor=cursor)


@router.get("/{assessment_id}", response_model=AssessmentOut)
def get_assessment(assessment_id: uuid.UUID, session: TenantSession) -> AssessmentOut:
    return service.get(session, assessment_id)


@router.delete("/{assessment_id}", status_code=204)
def delete_assessment(
    assessment_id: uuid.UUID, actor: CurrentActor, session: TenantSession
) -> Response:
    service.delete(session, actor, assessment_id)
    return Response(status_code=204)
