from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from rampart.kit.security.emails import canonical_email
from rampart.kit.security.passwords import instant_problem

# An address as the API takes it: valid (pydantic's EmailStr), then in its one canonical
# form (kit/security/emails.py), which is what is stored, compared and looked up.
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(canonical_email)]

# The rules, as the API documents them (not a secret).
PASSWORD_RULES = (
    "At least PASSWORD_MIN_LENGTH (12) characters, at most 256; not a common, repetitive or "  # noqa: S105
    "sequential password, nor your email address (NIST SP 800-63B)."
)


def checked_password(password: str, email: str | None = None) -> str:
    """A new password that passes the policy's instant checks, else a 422 naming the field
    and why. The service runs the rest (zxcvbn, tens of milliseconds) off the event loop."""
    problem = instant_problem(password, email=email)
    if problem:
        raise PydanticCustomError("password_policy", problem)
    return password


# The shape of a mailed link's token (kit/security/links.py), for the examples.
LINK_TOKEN_EXAMPLE = "4f6c1d0b9e8a7c6d5e4f3a2b1c0d9e8f.Vb3kZq8nR2xT7wLm5pQy1sHd9gFj4cKa6eUo0iNrXtE"  # noqa: S105  # pragma: allowlist secret


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "you@example.com",
                    "password": "correct horse battery",  # pragma: allowlist secret
                    "tenant_name": "Acme",
                }
            ]
        }
    )

    email: Email
    password: str = Field(max_length=256, description=PASSWORD_RULES)
    tenant_name: str = Field(min_length=1, max_length=200)

    @field_validator("password")
    @classmethod
    def _policy(cls, value: str, info: ValidationInfo) -> str:
        return checked_password(value, info.data.get("email"))  # email is validated first

    @field_validator("tenant_name")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        # Postgres text cannot hold NUL: a 422 here, not a 500 at the INSERT.
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class LoginIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "you@example.com",
                    "password": "correct horse battery",  # pragma: allowlist secret
                }
            ]
        }
    )

    email: Email
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
    email: str = Field(description="The address in its canonical form.")
    email_verified: bool = Field(
        description="Whether the owner of the address confirmed it; until then the user "
        "may read, not write."
    )
    role: str
    created_at: datetime


class NextStep(BaseModel):
    """The same answer whatever the address: whether it has an account is told only to
    its mailbox."""

    message: str


def _encodable(value: str) -> str:
    # A lone surrogate ("\ud800" in JSON) cannot be hashed: a 422 here, not a 500.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


class VerifyEmailIn(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"token": LINK_TOKEN_EXAMPLE}]})

    token: str = Field(min_length=1, max_length=200)

    _token_encodable = field_validator("token")(_encodable)


class MeOut(BaseModel):
    user: UserOut
    tenant: TenantOut
    role: str


# --- roles and invitations ----------------------------------------------------------------

RoleName = Literal["owner", "admin", "member", "viewer"]


class UserList(BaseModel):
    items: list[UserOut]


class RoleIn(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})

    role: RoleName


class InvitationIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "colleague@example.com", "role": "member"}]}
    )

    email: Email
    role: RoleName


class InvitationOut(BaseModel):
    """The invitation; its one-time token goes to the invited address only, by mail."""

    id: uuid.UUID
    email: str
    role: RoleName
    expires_at: datetime


class InvitationAcceptIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": LINK_TOKEN_EXAMPLE,
                    "password": "another long passphrase",  # pragma: allowlist secret
                }
            ]
        }
    )

    token: str = Field(min_length=1, max_length=200)
    password: str = Field(max_length=256, description=PASSWORD_RULES)

    _token_and_password_encodable = field_validator("token", "password")(_encodable)

    @field_validator("password")
    @classmethod
    def _policy(cls, value: str) -> str:
        # The invitee's email is known only from the invitation: the service checks it too.
        return checked_password(value)


# --- browser sessions ---------------------------------------------------------------------


class SessionOut(BaseModel):
    """A cookie session: the cookies carry it; the body gives what script may hold."""

    csrf_token: str = Field(
        description="Send it in X-CSRF-Token with every POST, PUT, PATCH and DELETE (also in "
        "the readable `__Host-csrf` cookie)."
    )
    idle_timeout_seconds: int = Field(
        description="The session ends after this long without an authenticated request."
    )
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
