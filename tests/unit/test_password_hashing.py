"""Password hashing parameters: pwdlib's recommended argon2id everywhere but ENV=test, where
the cheapest parameters keep the suite's CPU for what it tests; hashes verify across both
(each records its own parameters)."""

from __future__ import annotations

import pytest

from rampart.config import Settings
from rampart.kit.security.passwords import hash_password, hasher_for, verify_password

RECOMMENDED = "$argon2id$v=19$m=65536,t=3,p=4$"


@pytest.mark.parametrize("env", ["dev", "staging", "production"])
def test_every_environment_but_test_hashes_with_the_recommended_argon2id(env):
    assert hasher_for(env).hash("correct horse battery staple").startswith(RECOMMENDED)


def test_the_default_environment_is_not_test():
    # Settings' default ENV is dev: a deployment that forgets ENV never gets cheap hashes.
    assert Settings.model_fields["env"].default == "dev"


def test_the_test_environment_hashes_cheaply_and_both_kinds_verify_everywhere():
    cheap = hasher_for("test").hash("correct horse battery staple")
    assert cheap.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    strong = hasher_for("production").hash("correct horse battery staple")
    assert hasher_for("production").verify("correct horse battery staple", cheap)
    assert hasher_for("test").verify("correct horse battery staple", strong)
    assert not hasher_for("production").verify("wrong horse battery staple", cheap)


def test_the_suite_runs_with_the_test_hasher_and_verifies_with_it():
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert verify_password("correct horse battery staple", stored)
    assert not verify_password("correct horse battery staple", None)  # the dummy hash
