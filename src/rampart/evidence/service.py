"""Evidence: files attached to an assessment, checked before they are kept.

The bytes are validated by the kit (kit/security/uploads.py) while they stream in, before
this service runs; here the assessment must be visible to the caller (RLS: another
tenant's is a 404), the caller's role must allow creating, and the row and the stored
file are written together: if the transaction does not commit, the file is deleted again.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from rampart.assessments import service as assessments
from rampart.evidence import repository
from rampart.evidence.models import Evidence
from rampart.evidence.schemas import EvidenceList, EvidenceOut
from rampart.kit import audit, context
from rampart.kit.logging import get_logger
from rampart.kit.metrics import EVIDENCE_UPLOADS
from rampart.kit.security.auth import Principal
from rampart.kit.security.permissions import can_create, require
from rampart.kit.security.uploads import ReceivedFile
from rampart.kit.storage import Storage, store_in_transaction

log = get_logger(__name__)


def add(
    session: Session,
    actor: Principal,
    assessment_id: uuid.UUID,
    upload: ReceivedFile,
    storage: Storage,
) -> EvidenceOut:
    assessments.get(session, assessment_id)  # 404 unless visible: before any permission
    require(can_create(actor.role), "Your role may not upload evidence.")
    tenant_id = uuid.UUID(actor.tenant_id)
    evidence_id = uuid.uuid4()
    key = f"{tenant_id}/{evidence_id.hex}"  # ours alone: random, never from client input
    evidence = repository.add(
        session,
        Evidence(
            id=evidence_id,
            tenant_id=tenant_id,
            assessment_id=assessment_id,
            uploaded_by=uuid.UUID(actor.user_id),
            filename=upload.filename,
            content_type=upload.content_type,
            size_bytes=upload.size,
            sha256=upload.sha256,
            storage_key=key,
            trace_id=context.current("trace_id"),
        ),
    )
    audit.record(
        session,
        tenant_id=tenant_id,
        actor_id=uuid.UUID(actor.user_id),
        action="evidence.uploaded",
        subject=str(evidence_id),
    )
    store_in_transaction(session, storage, key, upload.path)
    EVIDENCE_UPLOADS.labels("accepted").inc()
    log.info(
        "evidence_uploaded",
        assessment_id=str(assessment_id),
        content_type=upload.content_type,
        size=upload.size,
    )
    return EvidenceOut.model_validate(evidence)


def list_for(session: Session, assessment_id: uuid.UUID) -> EvidenceList:
    assessments.get(session, assessment_id)  # 404 unless visible
    rows = repository.list_for_assessment(session, assessment_id)
    return EvidenceList(items=[EvidenceOut.model_validate(e) for e in rows])
