"""The password policy (NIST SP 800-63B, 3.1.1.2): at least PASSWORD_MIN_LENGTH (12)
characters, and none that is common, compromised, repetitive, sequential or made of the
user's own email. One function, `password_problem`, used wherever a password is set."""

from __future__ import annotations

import pytest

from rampart.kit.security.passwords import password_problem

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
