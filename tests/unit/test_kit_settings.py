"""The kit reads its settings through small sections (kit/settings.py), handed to it by the
package root; it never imports rampart.config (import-linter, tests/unit/test_architecture.py)."""

from __future__ import annotations

from types import SimpleNamespace

import jwt
from pydantic import SecretStr

from rampart.config import Settings
from rampart.kit import settings as kit_settings
from rampart.kit.security.tokens import issue_access_token


def declared(section: type) -> set[str]:
    names = {name for cls in section.__mro__ for name in getattr(cls, "__annotations__", {})}
    return names | ({"require"} if hasattr(section, "require") else set())


def test_the_projects_settings_have_every_section_the_kit_reads():
    fields = set(Settings.model_fields) | {"require"}
    for section in kit_settings.SECTIONS:
        assert declared(section) <= fields, (section.__name__, declared(section) - fields)


def test_the_kit_works_with_any_object_that_has_the_section():
    """Another project's settings: a plain object with SecuritySettings' names suffices."""
    other = SimpleNamespace(
        jwt_secret=SecretStr("another-projects-secret-" * 2), jwt_ttl_seconds=77
    )
    ours = kit_settings._provider
    kit_settings.provide(lambda: other)
    try:
        token, ttl = issue_access_token(user_id="u", tenant_id="t", role="owner")
    finally:
        kit_settings.provide(ours)
    assert ttl == 77
    claims = jwt.decode(
        token,
        other.jwt_secret.get_secret_value(),
        algorithms=["HS256"],
        audience=jwt.decode(token, options={"verify_signature": False})["aud"],
    )
    assert claims["exp"] - claims["iat"] == 77
