"""Make real users through the real API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from rampart.assessments.questionnaire import QUESTIONNAIRE

PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    email: str
    user_id: str
    tenant_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def signup(client: httpx.Client, tenant_name: str = "Acme") -> Account:
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "tenant_name": tenant_name},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        email=email,
        user_id=body["user"]["id"],
        tenant_id=body["tenant"]["id"],
        token=body["token"]["access_token"],
    )


def answers(value: int = 3) -> dict[str, int]:
    return {q.id: value for q in QUESTIONNAIRE.questions}
