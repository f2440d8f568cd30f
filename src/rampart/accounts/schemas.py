from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupIn(_Strict):
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=12, max_length=256)
    tenant_name: str = Field(min_length=1, max_length=200)

    @field_validator("tenant_name")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        # Postgres text cannot hold NUL: a 422 here, not a 500 at the INSERT.
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class LoginIn(_Strict):
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    plan: Literal["free", "pro"]
    created_at: datetime


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    email: str
    role: str
    created_at: datetime


class SignupOut(BaseModel):
    user: UserOut
    tenant: TenantOut
    token: TokenOut


class MeOut(BaseModel):
    user: UserOut
    tenant: TenantOut
    role: str
