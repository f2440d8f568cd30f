"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.up import UpRunner, up_runner


@pytest.fixture
def runner() -> Iterator[UpRunner]:
    """A `rampart up` runner in a fresh home (tests/support/up.py)."""
    with up_runner() as started:
        yield started
