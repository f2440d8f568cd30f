"""Bench tenants: each a real signup through the API (a tenant, its owner, a token).

The owner's address is confirmed directly in the database (as the admin role): the bench
measures the product, not the mail round trip a real user makes once."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass

import httpx
import psycopg

_serial = itertools.count(1)


@dataclass(frozen=True)
class Account:
    user_id: str
    tenant_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


PASSWORD = "correct horse battery staple"  # noqa: S105 - a bench account's


def signup(base_url: str, admin_url: str, label: str = "bench") -> Account:
    email = f"{label}-{os.getpid()}-{int(time.time())}-{next(_serial)}@example.com"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.post(
            "/api/v1/auth/signup",
            json={"email": email, "password": PASSWORD, "tenant_name": label},
        )
        if response.status_code != 202:
            raise RuntimeError(f"signup failed: {response.status_code} {response.text}")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE users SET email_verified_at = now() WHERE email = %s"
                " AND removed_at IS NULL",
                (email,),
            )
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        if login.status_code != 200:
            raise RuntimeError(f"login failed: {login.status_code} {login.text}")
        token = login.json()["access_token"]
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    return Account(user_id=me["user"]["id"], tenant_id=me["tenant"]["id"], token=token)
