"""The incident webhook: Alertmanager's notifications, authenticated by a bearer token (not
a user: no tenant, no cookie, no CSRF)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from rampart.incidents import service
from rampart.incidents.alertmanager_webhook import alertmanager_payload, require_alert_token
from rampart.incidents.schemas import AlertmanagerPayload, AlertsReceived
from rampart.kit.security.request_tx import AnonymousTx

ALERT_WEBHOOK_PATH = "/api/v1/internal/alerts"

router = APIRouter(prefix="/api/v1/internal", tags=["internal"])


def _inline(schema: dict) -> dict:
    """The payload's JSON schema with its `$defs` inlined (a request body schema in the
    OpenAPI document cannot carry its own definitions)."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(schema)


_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": _inline(AlertmanagerPayload.model_json_schema(by_alias=True)),
            "example": {
                "version": "4",
                "status": "firing",
                "receiver": "incidents",
                "groupKey": '{}:{alertname="RampartApiDown"}',
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "RampartApiDown", "severity": "page"},
                        "annotations": {"summary": "The API answers no scrape."},
                        "startsAt": "2026-01-01T12:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": "RampartApiDown1",
                    }
                ],
            },
        }
    },
}


@router.post(
    "/alerts",
    response_model=AlertsReceived,
    summary="Alertmanager webhook (incidents)",
    description="Alertmanager's webhook JSON, version 4. Every alert is stored as an "
    "incident (one per fingerprint and start time), in one transaction. Authenticated by "
    "`Authorization: Bearer <ALERT_WEBHOOK_TOKEN>`.",
    responses={
        400: {"description": "The body is not JSON (`malformed_json`)."},
        401: {"description": "Missing or wrong token (`alert_webhook_unauthorized`)."},
        422: {"description": "Not an Alertmanager version 4 payload; nothing stored."},
        503: {"description": "ALERT_WEBHOOK_TOKEN is not set (`alert_webhook_disabled`)."},
    },
    openapi_extra={"requestBody": _BODY},
    dependencies=[Depends(require_alert_token)],
)
async def receive_alerts(
    payload: Annotated[AlertmanagerPayload, Depends(alertmanager_payload)],
    tx: AnonymousTx,
) -> AlertsReceived:
    return await service.receive(tx, payload)
