"""Evidence routes. The upload body is streamed by a dependency that runs before the
request's transaction opens (dependencies resolve in order: the file, then the caller's
transaction): no database connection is held while a client sends a file."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from rampart.billing import service as billing
from rampart.config import get_settings
from rampart.evidence import service
from rampart.evidence.metrics import EVIDENCE_UPLOADS
from rampart.evidence.schemas import ACCEPTED_TYPES, EvidenceList, EvidenceOut
from rampart.kit import idempotency
from rampart.kit.errors import AppError
from rampart.kit.security.auth import CurrentPrincipal
from rampart.kit.security.permissions import requires
from rampart.kit.security.principal import Principal
from rampart.kit.security.ratelimit import upload_rate_limit
from rampart.kit.security.request_tx import TenantTx
from rampart.kit.security.roles import Action
from rampart.kit.security.uploads import ReceivedFile, UploadPolicy, receive_upload

router = APIRouter(prefix="/api/v1/assessments", tags=["evidence"])

# The upload enforces its own body limit (EVIDENCE_MAX_BYTES, while streaming) and has its
# own deadline; the app's body guard (kit/middleware.py) knows it by this method and path.
UPLOAD_ROUTE = ("POST", r"/api/v1/assessments/[^/]+/evidence")

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "A PDF, PNG or JPEG (decided by its bytes), at most "
                        "EVIDENCE_MAX_BYTES; images at most EVIDENCE_MAX_IMAGE_SIDE pixels "
                        "wide and high.",
                    }
                },
            },
            "example": {"file": "(the bytes of a PDF, PNG or JPEG file)"},
        }
    },
}


async def _received_file(
    request: Request, _principal: CurrentPrincipal
) -> AsyncIterator[ReceivedFile]:
    settings = get_settings()
    policy = UploadPolicy(
        max_bytes=settings.evidence_max_bytes,
        allowed_types=ACCEPTED_TYPES,
        max_image_side=settings.evidence_max_image_side,
    )
    try:
        async with receive_upload(request, policy, service.get_storage().spool_dir()) as upload:
            yield upload
    except AppError as exc:
        EVIDENCE_UPLOADS.labels(exc.code).inc()
        raise


@router.post(
    "/{assessment_id}/evidence",
    status_code=201,
    response_model=EvidenceOut,
    dependencies=[Depends(upload_rate_limit)],
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        **billing.PLAN_LIMIT_RESPONSE,
        413: {"description": "The file (or body) is over the limit; refused while streaming."},
        415: {"description": "Not a PDF, PNG or JPEG by its bytes, or not multipart."},
    },
)
async def upload_evidence(
    assessment_id: uuid.UUID,
    upload: Annotated[ReceivedFile, Depends(_received_file)],
    actor: Annotated[Principal, requires(Action.CREATE, "Your role may not upload evidence.")],
    tx: TenantTx,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> EvidenceOut:
    return await idempotency.once(
        tx,
        idempotency_key,
        idempotency.fingerprint(
            "POST", f"/api/v1/assessments/{assessment_id}/evidence", upload.sha256
        ),
        lambda: service.add(tx, actor, assessment_id, upload, service.get_storage()),
        EvidenceOut,
        response,
        status=201,
    )


@router.get("/{assessment_id}/evidence", response_model=EvidenceList)
async def list_evidence(assessment_id: uuid.UUID, tx: TenantTx) -> EvidenceList:
    return await service.list_for(tx, assessment_id)
