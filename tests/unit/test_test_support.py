"""The tests' own helpers stay the one way to do their thing (tests/support)."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
from tests.support import httpclient

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]
# httpx's own client constructors and one-call helpers: each builds a TLS context.
DIRECT_HTTPX = re.compile(r"\bhttpx\.(Client|AsyncClient|get|post|put|patch|delete|request)\(")


def direct_httpx_calls(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "httpclient.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if DIRECT_HTTPX.search(line)
    ]


def test_tests_make_http_clients_through_the_shared_tls_context():
    assert direct_httpx_calls(TESTS) == []


def test_the_check_finds_a_direct_httpx_client(tmp_path):
    (tmp_path / "test_x.py").write_text("import httpx\nhttpx.get('http://x')\n")
    assert direct_httpx_calls(tmp_path) == ["test_x.py:2"]


def test_every_client_shares_one_tls_context_unless_told_otherwise():
    def context(client) -> object:
        return client._transport._pool._ssl_context

    with httpclient.client() as one, httpclient.client(base_url="http://x") as two:
        assert context(one) is context(two) is httpclient.TLS
    own = ssl.create_default_context()
    with httpclient.client(verify=own) as three:
        assert context(three) is own
