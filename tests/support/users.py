"""Make real users through the real API, the way a person does: sign up, log in, follow the
link in the confirmation mail (the capture server keeps it: tests/support/mail.py)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from rampart.questionnaire import QUESTIONNAIRE

PASSWORD = "correct horse battery staple"
VERIFY_SUBJECT = "Confirm your email address"


@dataclass
class Account:
    email: str
    user_id: str
    tenant_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def log_in(client: httpx.Client, email: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def unverified(
    client: httpx.Client, tenant_name: str = "Acme", email: str | None = None
) -> Account:
    """A new account whose address is not confirmed yet (it may log in and read)."""
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "tenant_name": tenant_name},
    )
    assert response.status_code == 202, response.text
    token = log_in(client, email)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    body = me.json()
    return Account(
        email=body["user"]["email"],
        user_id=body["user"]["id"],
        tenant_id=body["tenant"]["id"],
        token=token,
    )


def confirm(client: httpx.Client, account: Account, mailbox: Path | None = None) -> None:
    """Follow the link of the account's confirmation mail. The mail job runs here when the
    API shares this process' database (no worker in integration tests); else a worker
    sends it and we wait for it in `mailbox`."""
    from tests.support.mail import deliver, link_token, wait_for_mail

    if os.environ.get("DATABASE_URL"):
        deliver(account.tenant_id)
    mail = wait_for_mail(account.email, VERIFY_SUBJECT, mailbox=mailbox)
    response = client.post("/api/v1/auth/verify-email", json={"token": link_token(mail)})
    assert response.status_code == 200, response.text


def signup(
    client: httpx.Client, tenant_name: str = "Acme", *, mailbox: Path | None = None
) -> Account:
    """A new tenant and its owner, address confirmed, logged in."""
    account = unverified(client, tenant_name)
    confirm(client, account, mailbox)
    return account


def answers(value: int = 3) -> dict[str, int]:
    return {q.id: value for q in QUESTIONNAIRE.questions}
