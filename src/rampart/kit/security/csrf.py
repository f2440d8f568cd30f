"""CSRF protection for cookie sessions: a signed double-submit token (OWASP's "signed
double-submit cookie").

A browser attaches the session cookie to any request, including one a hostile page
makes; it never attaches a header by itself. So every state-changing request that a cookie
authenticates must also carry `X-CSRF-Token`, and it must:
1. equal the `__Host-csrf` cookie (double submit: only script of a site that may read our
   cookies, or that got the token from the login response, knows it), and
2. verify as `<nonce>.<HMAC-SHA256(SESSION_SECRET, session id, nonce)>`: bound to this
   session, so a token from another session, or one planted by whoever can write
   cookies, does not pass.
Otherwise 403 `csrf_failed`. Bearer requests need no token: a browser never adds an
Authorization header on its own. Stdlib hmac and secrets, no library needed for this.

The check runs inside authentication (kit/security/auth.py), so any route that a cookie
can authenticate is guarded; tests/integration/test_route_guards.py walks every route to
prove it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from starlette.requests import Request

from rampart.kit.errors import Forbidden
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import CSRF_FAILURES
from rampart.kit.settings import security_settings

log = get_logger(__name__)

CSRF_COOKIE = "__Host-csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CONTEXT = b"rampart-csrf-v1"


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    message = "Missing or invalid CSRF token: send the session's token in X-CSRF-Token."


def _bytes(value: str) -> bytes:
    # Header and cookie values may hold any character; never fail on encoding them.
    return value.encode("utf-8", "surrogatepass")


def _mac(session_id: str, nonce: str) -> str:
    key = security_settings().session_secret.get_secret_value().encode()
    message = b"\x00".join((_CONTEXT, _bytes(session_id), _bytes(nonce)))
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_token(session_id: str) -> str:
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_mac(session_id, nonce)}"


def token_is_valid(token: str, session_id: str) -> bool:
    nonce, dot, mac = token.partition(".")
    if not (nonce and dot and mac):
        return False
    return hmac.compare_digest(_bytes(mac), _bytes(_mac(session_id, nonce)))


def _fail(reason: str) -> None:
    CSRF_FAILURES.labels(reason).inc()
    log.warning("csrf_failed", reason=reason)
    raise CsrfFailed()


def check(request: Request, session_id: str) -> None:
    """403 `csrf_failed` unless a state-changing request carries the session's token."""
    if request.method in SAFE_METHODS:
        return
    header = request.headers.get(CSRF_HEADER)
    cookie = request.cookies.get(CSRF_COOKIE)
    if not header:
        _fail("missing")
    elif cookie is None or not hmac.compare_digest(_bytes(header), _bytes(cookie)):
        _fail("cookie_mismatch")
    elif not token_is_valid(header, session_id):
        _fail("bad_signature")
