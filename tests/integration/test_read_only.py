"""Read-only maintenance mode: writes refused with 503 `read_only`, reads keep working."""

from __future__ import annotations

from tests.support import httpclient
from tests.support.cli import rampart
from tests.support.users import answers, signup
from tests.support.wait import wait_until


def _post(client, account):
    return client.post("/api/v1/assessments", json={"answers": answers(3)}, headers=account.headers)


def test_read_only_switch_refuses_writes_and_keeps_reads_then_lifts(client):
    account = signup(client)
    accepted = [_post(client, account).status_code]
    assert accepted == [202]
    assert "read-only: ON" in rampart("maintenance", "read-only", "on").stdout
    try:
        # The API may take a moment to see the switch: writes until then are accepted.
        def refused_write() -> bool:
            accepted.append(_post(client, account).status_code)
            return accepted[-1] == 503

        wait_until(refused_write, 5, message="a refused write")
        written = accepted.count(202)
        refused = _post(client, account)
        assert refused.json()["error"]["code"] == "read_only"
        assert int(refused.headers["retry-after"]) > 0
        listed = client.get("/api/v1/assessments", headers=account.headers)
        assert listed.status_code == 200 and len(listed.json()["items"]) == written  # nothing more
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
        login = client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": "x" * 12}
        )
        assert login.status_code == 503
    finally:
        assert "read-only: off" in rampart("maintenance", "read-only", "off").stdout
    wait_until(lambda: _post(client, account).status_code == 202, 5, message="a write")


def test_read_only_setting_turns_it_on_from_startup(stack, monkeypatch):
    from tests.support.server import serve_in_thread
    from tests.support.stack import reset_caches

    monkeypatch.setenv("READ_ONLY", "true")
    reset_caches()
    try:
        with serve_in_thread() as url:
            response = httpclient.post(f"{url}/api/v1/auth/signup", json={})
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "read_only"
            assert httpclient.get(f"{url}/api/v1/assessments/questionnaire").status_code == 200
    finally:
        monkeypatch.delenv("READ_ONLY")
        reset_caches()
