"""`rampart up`'s dev secrets: generated once per .rampart/, private, never rotated by a restart."""

from __future__ import annotations

import json
import stat

from rampart.devstack.stack import _local_secrets


def test_every_secret_is_generated_once_and_private(tmp_path):
    first = _local_secrets(tmp_path)
    assert set(first) == {
        "migration_password",
        "app_password",
        "operator_password",
        "jwt_secret",
        "session_secret",
        "alert_webhook_token",
        "redis_password",
        "stripe_webhook_secret",
    }
    assert first["jwt_secret"] != first["session_secret"]
    assert first["stripe_webhook_secret"].startswith("whsec_")
    assert len(first["stripe_webhook_secret"]) >= 6 + 32
    assert len(first["redis_password"]) >= 32
    assert len(first["session_secret"]) >= 32
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert _local_secrets(tmp_path) == first


def test_a_key_missing_from_an_older_file_is_added_and_the_others_kept(tmp_path):
    old = {"migration_password": "m" * 32, "app_password": "a" * 32, "jwt_secret": "j" * 64}
    (tmp_path / "secrets.json").write_text(json.dumps(old))
    values = _local_secrets(tmp_path)
    assert {k: values[k] for k in old} == old
    assert len(values["session_secret"]) >= 32 and len(values["alert_webhook_token"]) >= 32
    assert values["stripe_webhook_secret"].startswith("whsec_")
    assert json.loads((tmp_path / "secrets.json").read_text()) == values


def test_an_existing_world_readable_secrets_file_becomes_private(tmp_path):
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"jwt_secret": "j" * 64}))
    path.chmod(0o644)
    _local_secrets(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
