"""Evidence: files attached to an assessment, checked before they are kept.

The bytes are validated by the kit (kit/security/uploads.py) while they stream in, before
this service runs, and the route checks the caller's role (Action.CREATE); here the
assessment must be visible to the caller (RLS: another tenant's is a 404), and the row
and the stored file are written together: if the transaction does not commit, the file is
deleted again.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from rampart.assessments import service as assessments
from rampart.billing import service as billing
from rampart.config import Settings, get_settings
from rampart.evidence import repository
from rampart.evidence.metrics import EVIDENCE_UPLOADS
from rampart.evidence.schemas import EvidenceList, EvidenceOut
from rampart.kit import audit, context
from rampart.kit.db.transaction import Tx
from rampart.kit.logging import get_logger
from rampart.kit.security.principal import Principal
from rampart.kit.security.uploads import ReceivedFile
from rampart.kit.storage import LocalStorage, Storage, store_in_transaction

log = get_logger(__name__)


def evidence_root(settings: Settings) -> Path:
    """EVIDENCE_DIR, else `evidence/` under RAMPART_HOME."""
    return Path(settings.evidence_dir or Path(settings.rampart_home) / "evidence")


def get_storage() -> Storage:
    """The configured store. Cheap to build, so not cached: tests that change EVIDENCE_DIR
    or RAMPART_HOME need no cache to clear."""
    return LocalStorage(evidence_root(get_settings()))


async def add(
    tx: Tx,
    actor: Principal,
    assessment_id: uuid.UUID,
    upload: ReceivedFile,
    storage: Storage,
) -> EvidenceOut:
    await assessments.require_visible(tx, assessment_id)
    tenant_id = uuid.UUID(actor.tenant_id)
    await billing.require_room(
        tx, tenant_id, "evidence_bytes", lambda: repository.stored_bytes(tx), adding=upload.size
    )
    evidence_id = uuid.uuid4()
    key = f"{tenant_id}/{evidence_id.hex}"  # ours alone: random, never from client input
    row = await repository.add(
        tx,
        {
            "id": evidence_id,
            "tenant_id": tenant_id,
            "assessment_id": assessment_id,
            "uploaded_by": uuid.UUID(actor.user_id),
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size_bytes": upload.size,
            "sha256": upload.sha256,
            "storage_key": key,
            "trace_id": context.current("trace_id"),
        },
    )
    await audit.record(
        tx,
        tenant_id=tenant_id,
        actor_id=actor.user_id,
        action="evidence.uploaded",
        subject=str(evidence_id),
    )
    await store_in_transaction(tx, storage, key, upload.path)
    EVIDENCE_UPLOADS.labels("accepted").inc()
    log.info(
        "evidence_uploaded",
        assessment_id=str(assessment_id),
        content_type=upload.content_type,
        size=upload.size,
    )
    return EvidenceOut.model_validate(dict(row))


async def list_for(tx: Tx, assessment_id: uuid.UUID) -> EvidenceList:
    await assessments.require_visible(tx, assessment_id)
    rows = await repository.list_for_assessment(tx, assessment_id)
    return EvidenceList(items=[EvidenceOut.model_validate(dict(e)) for e in rows])
