"""Password hashing with argon2 (pwdlib), a fixed dummy hash so a login for an unknown
email does the same work as one with a wrong password (no enumeration by timing), and the
password policy every new password must pass (`password_problem`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from zxcvbn import zxcvbn

# ENV=test only: the cheapest argon2id parameters, so a test suite that signs up and logs in
# thousands of users spends its CPU on what it tests. Every other environment (dev,
# staging, production: the default) hashes with pwdlib's recommended parameters (argon2id,
# 64 MiB, t=3, p=4). A hash records its parameters, so either kind verifies anywhere.
_TEST_HASHER = Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1)


def hasher_for(env: str) -> PasswordHash:
    """The password hasher of an environment (cheap parameters only for ENV=test)."""
    if env == "test":
        return PasswordHash((_TEST_HASHER,))
    return PasswordHash.recommended()


@lru_cache
def _hasher() -> PasswordHash:
    from rampart.kit.settings import security_settings

    return hasher_for(security_settings().env)


@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash("rampart-dummy-password-for-timing")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Verify against the stored hash, or against the dummy hash when there is none."""
    if password_hash is None:
        _hasher().verify(password, _dummy_hash())
        return False
    return _hasher().verify(password, password_hash)


# --- the password policy -----------------------------------------------------------------
# NIST SP 800-63B (3.1.1.2): a minimum length, no composition rules, and no password that is
# common, compromised, repetitive or sequential, or made of context words (the user's email).
# The estimator is zxcvbn (Dropbox's, MIT): it matches a password against its bundled lists
# (the 30,000 most common passwords of Mark Burnett's 10-million-password corpus, English
# words, names), keyboard walks, repeats, sequences, dates and l33t variants of all of them,
# plus the user's own words, and estimates the guesses an attacker needs.

# Below 10^8 guesses (zxcvbn score < 3): falls to an online attack against a small set of
# candidate lists, whatever the length.
_MIN_SCORE = 3
# zxcvbn reads at most this many characters (its own limit; time grows with length). A longer
# password is judged by its start: 'a' * 256 is still refused.
_ESTIMATOR_MAX = 72
_TOO_EASY = "is too easy to guess"
# zxcvbn keeps the user's words in a module-level dictionary while it runs: one at a time.
_estimator_lock = threading.Lock()


def _min_length() -> int:
    from rampart.kit.settings import security_settings

    return security_settings().password_min_length


def password_problem(
    password: str, *, email: str | None = None, context: Iterable[str] = ()
) -> str | None:
    """Why `password` may not be set, or None when it may: the one check for every place a
    password is set (signup, invitation acceptance). `email` is the account's, when known;
    `context` adds words of the account (tenant name) that must not carry the password."""
    minimum = _min_length()
    if len(password) < minimum:
        return f"must be at least {minimum} characters long"
    folded = password.strip().casefold()
    own: list[str] = ["rampart", *context]
    if email:
        address = email.strip().casefold()
        local = address.partition("@")[0]
        if folded in (address, local) or address in folded:
            return "must not be your email address or its part before the @"
        own += [address, local]
    with _estimator_lock:
        estimate = zxcvbn(password[:_ESTIMATOR_MAX], user_inputs=own)
    if estimate["score"] >= _MIN_SCORE:
        return None
    feedback = estimate["feedback"]
    hint = " ".join(
        part for part in (feedback.get("warning"), *feedback.get("suggestions", ())) if part
    )
    return f"{_TOO_EASY}: it is common, repetitive or predictable. {hint}".strip()
