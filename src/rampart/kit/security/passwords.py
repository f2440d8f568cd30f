"""Password hashing with argon2 (pwdlib), a fixed dummy hash so a login for an unknown
email does the same work as one with a wrong password (no enumeration by timing), and the
password policy every new password must pass (`password_problem`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial

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
# zxcvbn reads at most this many characters. Its time grows steeply with length (pure
# Python: a random 64-character string took 0.8 s of CPU, 32 characters 50 ms), and anyone
# can send a password to signup. A longer password is judged by its start: 'a' * 256 is
# still refused, and a start of 32 unguessable characters is strong whatever follows.
_ESTIMATOR_MAX = 32
_TOO_EASY = "is too easy to guess"
# zxcvbn keeps the user's words in a module-level dictionary while it runs: one at a time.
_estimator_lock = threading.Lock()
# The API's checks run here, off the event loop, one at a time: checks that wait hold no
# thread (argon2 hashing keeps the shared pool) and the loop serves other requests.
_estimator_thread = ThreadPoolExecutor(1, thread_name_prefix="password-policy")


def _min_length() -> int:
    from rampart.kit.settings import security_settings

    return security_settings().password_min_length


def instant_problem(password: str, *, email: str | None = None) -> str | None:
    """The checks that cost nothing (length, the user's own email), for request schemas;
    `password_problem` makes them too."""
    minimum = _min_length()
    if len(password) < minimum:
        return f"must be at least {minimum} characters long"
    if email:
        folded = password.strip().casefold()
        address = email.strip().casefold()
        if folded in (address, address.partition("@")[0]) or address in folded:
            return "must not be your email address or its part before the @"
    return None


def password_problem(
    password: str, *, email: str | None = None, context: Iterable[str] = ()
) -> str | None:
    """Why `password` may not be set, or None when it may: the one check for every place a
    password is set (signup, invitation acceptance). `email` is the account's, when known;
    `context` adds words of the account (tenant name) that must not carry the password.
    Takes up to ~50 ms of CPU: in async code, await `password_problem_off_loop`."""
    problem = instant_problem(password, email=email)
    if problem:
        return problem
    own: list[str] = ["rampart", *context]
    if email:
        address = email.strip().casefold()
        own += [address, address.partition("@")[0]]
    with _estimator_lock:
        estimate = zxcvbn(password[:_ESTIMATOR_MAX], user_inputs=own)
    if estimate["score"] >= _MIN_SCORE:
        return None
    feedback = estimate["feedback"]
    hint = " ".join(
        part for part in (feedback.get("warning"), *feedback.get("suggestions", ())) if part
    )
    return f"{_TOO_EASY}: it is common, repetitive or predictable. {hint}".strip()


async def password_problem_off_loop(
    password: str, *, email: str | None = None, context: Iterable[str] = ()
) -> str | None:
    """`password_problem` on the policy's own thread (see `_estimator_thread`)."""
    check = partial(password_problem, password, email=email, context=tuple(context))
    return await asyncio.get_running_loop().run_in_executor(_estimator_thread, check)
