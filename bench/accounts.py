"""Bench tenants: each a real signup through the API (a tenant, its owner, a token)."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass

import httpx

_serial = itertools.count(1)


@dataclass(frozen=True)
class Account:
    user_id: str
    tenant_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def signup(base_url: str, label: str = "bench") -> Account:
    email = f"{label}-{os.getpid()}-{int(time.time())}-{next(_serial)}@example.com"
    response = httpx.post(
        f"{base_url}/api/v1/auth/signup",
        json={"email": email, "password": "correct horse battery staple", "tenant_name": label},
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"signup failed: {response.status_code} {response.text}")
    body = response.json()
    return Account(
        user_id=body["user"]["id"],
        tenant_id=body["tenant"]["id"],
        token=body["token"]["access_token"],
    )
