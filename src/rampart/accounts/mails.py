"""The mails of accounts, rendered by the mail job (the worker) from its payload.

A payload holds the recipient, the template name and non-secret facts (ids, role,
expiry); never a token. Link tokens are computed here again from the row id and the key
(kit/security/links.py). Text only, no HTML. Tenant names are user input: they appear in
the body only (never a header), quoted, without control characters, at most 100
characters.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from rampart.config import get_settings
from rampart.kit.mail import Mail
from rampart.kit.security.links import link_token

VERIFY_EMAIL = "verify_email"
SIGNUP_EXISTING = "signup_existing"
INVITATION = "invitation"
INVITATION_EXISTING = "invitation_existing"

SUBJECTS = {
    VERIFY_EMAIL: "Confirm your email address for Rampart",
    SIGNUP_EXISTING: "Someone tried to sign up with your address",
    INVITATION: "You are invited to a Rampart team",
    INVITATION_EXISTING: "About your Rampart invitation",
}


def _quoted(name: str) -> str:
    printable = "".join(c if c.isprintable() else " " for c in name)
    return '"' + " ".join(printable.split())[:100] + '"'


def _when(value: str) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")


def _link(path: str, purpose: str, row_id: str) -> tuple[str, str]:
    token = link_token(purpose, uuid.UUID(row_id))
    base = get_settings().email_link_base_url.rstrip("/")
    return f"{base}/{path}#token={token}", token


def _verify_email(payload: dict[str, Any]) -> str:
    link, token = _link("verify-email", VERIFY_EMAIL, payload["verification_id"])
    return (
        "Someone, hopefully you, signed up for Rampart with this address.\n\n"
        f"Confirm it by opening this link before {_when(payload['expires_at'])}:\n\n"
        f"  {link}\n\n"
        "(API clients: POST /api/v1/auth/verify-email with "
        f'{{"token": "{token}"}}.)\n\n'
        "Until you confirm, the account can log in and look, not change anything. If you "
        "did not sign up, ignore this mail: do not open the link. The account stays "
        "unconfirmed, and the address stays free for you.\n"
    )


def _signup_existing(_payload: dict[str, Any]) -> str:
    return (
        "Someone tried to sign up for Rampart with this address, which already has an "
        "account. If it was you, log in with your password instead. If it was not, you "
        "can ignore this mail: nothing was changed, and no new account was made.\n"
    )


def _invitation(payload: dict[str, Any]) -> str:
    link, token = _link("accept-invitation", INVITATION, payload["invitation_id"])
    return (
        f"You are invited to the Rampart team {_quoted(payload['tenant_name'])} as "
        f"{payload['role']}.\n\n"
        f"Accept by opening this link and choosing a password, before "
        f"{_when(payload['expires_at'])}:\n\n"
        f"  {link}\n\n"
        "(API clients: POST /api/v1/invitations/accept with "
        f'{{"token": "{token}", "password": "..."}}.)\n\n'
        "If you did not expect this, ignore this mail.\n"
    )


def _invitation_existing(payload: dict[str, Any]) -> str:
    return (
        f"You accepted an invitation to the Rampart team {_quoted(payload['tenant_name'])}, "
        "but this address already has a Rampart account, and an address has one account "
        "only: nothing was made, and your account is unchanged (its password too). Ask "
        "the team to invite another address of yours.\n"
    )


_BODIES = {
    VERIFY_EMAIL: _verify_email,
    SIGNUP_EXISTING: _signup_existing,
    INVITATION: _invitation,
    INVITATION_EXISTING: _invitation_existing,
}


def render(payload: dict[str, Any], *, message_id: str) -> Mail:
    """The mail a job's payload describes; KeyError for an unknown template."""
    template = payload["template"]
    return Mail(
        to=payload["to"],
        subject=SUBJECTS[template],
        text=_BODIES[template](payload),
        message_id=message_id,
    )
