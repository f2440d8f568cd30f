"""The password policy (NIST SP 800-63B, 3.1.1.2): at least PASSWORD_MIN_LENGTH (12)
characters, and none that is common, compromised, repetitive, sequential or made of the
user's own email. One function, `password_problem`, used wherever a password is set."""

from __future__ import annotations

import asyncio
import random
import string
import sys
import time

import pytest

from rampart.kit.security.passwords import password_problem, password_problem_off_loop

EMAIL = "alice.cooper@example.com"


@pytest.mark.parametrize(
    "password",
    [
        "password1234",  # in every breached-password list
        "1q2w3e4r5t6y",
        "iloveyou12345",
        "qwertyuiopasdf",  # a keyboard row
        "P@ssw0rd2024!",  # a common password, l33t and a year
        "baseball2020!",
        "trustno1trustno1",
    ],
)
def test_common_and_compromised_passwords_are_refused(password):
    problem = password_problem(password)
    assert problem is not None and "easy to guess" in problem, problem


@pytest.mark.parametrize(
    "password",
    [
        "a" * 12,
        "x" * 20,
        "a" * 256,  # longer than what the estimator reads: still refused
        "abcabcabcabc",
        "passwordpassword",
        "abcdefghijklmn",
        "123456789012",
        "987654321098",
    ],
)
def test_repeated_and_sequential_passwords_are_refused(password):
    problem = password_problem(password)
    assert problem is not None and "easy to guess" in problem, problem


@pytest.mark.parametrize(
    "password", [EMAIL, EMAIL.upper(), "alice.cooper", "Alice.Cooper", " alice.cooper@example.com"]
)
def test_the_users_email_or_its_local_part_is_refused(password):
    problem = password_problem(password, email=EMAIL)
    assert problem is not None and "email" in problem, problem


def test_the_email_only_counts_when_it_is_known():
    # The same text from another user is merely a long, unusual password.
    assert password_problem("alice.cooper@example.com", email="bob@example.org") is None


def test_short_passwords_are_refused_with_the_minimum():
    assert password_problem("Xq7#kP2$") == "must be at least 12 characters long"
    assert password_problem("") == "must be at least 12 characters long"


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "invited and quite long enough",
        "My dog Rex likes snow",
        "iuwe8723nsd89x",
        "hunter2-very-secret-pw",
        "Z" + "q7#kP2$vL9!w" * 10,  # long: over 72 characters
    ],
)
def test_long_unusual_passwords_are_accepted(password):
    assert password_problem(password, email=EMAIL) is None


@pytest.mark.timing
def test_the_apis_check_leaves_the_event_loop_free_while_zxcvbn_runs():
    """Anyone can send a password to signup, and zxcvbn spends tens of milliseconds of CPU
    on a random one: the API's check must not stop the event loop meanwhile. A task ticks
    every millisecond during ten checks; the time the loop stood still (gaps over 3 ms)
    must stay well under half the checks' time (run on the loop itself, it is all of it).
    A sum, not the longest gap: one gap as long as a cheap check is what a busy machine's
    scheduler alone can cause."""
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + string.punctuation
    passwords = ["".join(rng.choice(alphabet) for _ in range(32)) for _ in range(10)]

    async def stood_still_and_checks_time() -> tuple[float, float]:
        ticks: list[tuple[float, float]] = []  # (when, gap since the tick before)
        done = asyncio.Event()

        async def tick() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                ticks.append((now, now - last))
                last = now

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        for password in passwords:
            await password_problem_off_loop(password, email=EMAIL)
        finished = time.perf_counter()
        done.set()
        await ticker
        stood_still = sum(
            gap for when, gap in ticks if gap > 0.003 and when > started and when - gap < finished
        )
        return stood_still, finished - started

    # The loop thread takes the GIL back from zxcvbn's thread within the switch interval:
    # 0.5 ms here (CPython's default 5 ms is close to one cheap check on a quiet machine).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        stood_still, checks = asyncio.run(stood_still_and_checks_time())
    finally:
        sys.setswitchinterval(interval)
    assert checks / len(passwords) > 0.005, "the checks were too cheap to tell anything"
    assert stood_still < checks / 2, (
        f"the loop stood still {stood_still * 1000:.0f} ms of the checks' {checks * 1000:.0f} ms"
    )
