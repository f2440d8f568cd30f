"""Authentication and parsing of Alertmanager's webhook, in the order they run:

1. Token: `Authorization: Bearer <ALERT_WEBHOOK_TOKEN>`, compared in constant time (as
   SHA-256 digests, so not even the length leaks). No Authorization header → 401, whatever
   the configuration; a credential offered while ALERT_WEBHOOK_TOKEN is unset → 503
   `alert_webhook_disabled` (Alertmanager retries a 5xx, so notifications sent before an
   operator sets the token are delivered once they do); a wrong one → 401. Failed attempts
   count against the per-IP rate limit (the path is exempt from it otherwise, so a burst of
   notifications from Alertmanager is never refused).
2. Body: nothing is parsed before the token verified. Strict JSON (jiter: no NaN, no lone
   surrogates) into the version 4 payload; not JSON → 400 `malformed_json`, not a payload
   → 422 `validation_error`, with the fields at fault.

There is no cookie and no browser here, so no CSRF token either.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NoReturn

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from rampart.config import get_settings
from rampart.incidents.schemas import AlertmanagerPayload
from rampart.kit.errors import ServiceUnavailable, Unauthorized
from rampart.kit.logging import get_logger
from rampart.kit.security.ratelimit import limit_failed_attempts

log = get_logger(__name__)


class AlertWebhookUnauthorized(Unauthorized):
    code = "alert_webhook_unauthorized"
    message = "Send Authorization: Bearer <ALERT_WEBHOOK_TOKEN>."


class AlertWebhookDisabled(ServiceUnavailable):
    code = "alert_webhook_disabled"
    message = "The incident webhook is disabled: ALERT_WEBHOOK_TOKEN is not set on the API."


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="alerts"'}


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


async def _refuse(request: Request, reason: str) -> NoReturn:
    log.warning("alert_webhook_refused", reason=reason)
    await limit_failed_attempts(request, "alert_webhook_auth")
    raise AlertWebhookUnauthorized(headers=_CHALLENGE)


async def require_alert_token(request: Request) -> None:
    header = request.headers.get("authorization")
    if not header:
        await _refuse(request, "missing")
    configured = get_settings().alert_webhook_token
    if configured is None:
        raise AlertWebhookDisabled()
    scheme, _, presented = header.partition(" ")
    expected = _digest(configured.get_secret_value())
    if not (
        hmac.compare_digest(_digest(presented.strip()), expected) and scheme.lower() == "bearer"
    ):
        await _refuse(request, "wrong_token")


async def alertmanager_payload(request: Request) -> AlertmanagerPayload:
    """The verified request's body as a payload (call after `require_alert_token`)."""
    body = await request.body()
    try:
        return AlertmanagerPayload.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            exc.errors(include_url=False, include_input=False, include_context=False)
        ) from None
