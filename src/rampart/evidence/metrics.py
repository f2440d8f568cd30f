"""The evidence domain's metrics (declared with the kit's rules, kit/metrics/instruments.py)."""

from __future__ import annotations

from rampart.kit.metrics.instruments import counter

EVIDENCE_UPLOADS = counter(
    "rampart_evidence_uploads_total",
    "Evidence uploads by outcome: accepted, or the error code that refused them "
    "(payload_too_large, unsupported_media_type, validation_error, bad_request, "
    "not_found, forbidden, storage_unavailable).",
    ["outcome"],
)
