"""The bundle scan (rampart.webapp.bundle_scan) finds a secret planted in a build, by its
value or by its shape, in bundles and source maps alike, names the file and the kind but
never the value, and writes the report the readiness gate reads."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.config import DEV_SESSION_SECRET
from rampart.webapp import bundle_scan

REPORT_KEYS = {"scanned_at", "build_dir", "files", "findings", "clean"}


def _build(root: Path, files: dict[str, str]) -> Path:
    build = root / ".next"
    for name, text in files.items():
        path = build / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return build


def _report(home: Path) -> dict:
    return json.loads((home / "reports" / "bundle-scan.json").read_text())


CLEAN = {
    "static/chunks/app.js": "function a(){return fetch('/api/v1/me')}\n",
    "static/chunks/app.js.map": json.dumps({"version": 3, "sources": ["app.tsx"]}),
}


def test_a_clean_build_is_reported_clean(tmp_path: Path) -> None:
    build = _build(tmp_path, CLEAN)
    result = bundle_scan.run(build, home=tmp_path / "home", environ={})
    assert result["clean"] is True and result["findings"] == [] and result["files"] == 2
    report = _report(tmp_path / "home")
    assert set(report) == REPORT_KEYS
    assert report["build_dir"] == str(build.resolve())
    assert report == result


def test_a_session_secret_planted_in_a_source_map_is_found_by_value(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(48)
    planted = dict(CLEAN)
    planted["static/chunks/app.js.map"] = json.dumps(
        {"version": 3, "sourcesContent": [f"const key = '{secret}';"]}
    )
    build = _build(tmp_path, planted)
    result = bundle_scan.run(build, home=tmp_path / "home", environ={"SESSION_SECRET": secret})
    assert result["clean"] is False
    assert {"file": "static/chunks/app.js.map", "kind": "known:SESSION_SECRET"} in result[
        "findings"
    ]
    assert secret not in (tmp_path / "home" / "reports" / "bundle-scan.json").read_text()


def test_the_dev_stacks_generated_credentials_and_dev_defaults_are_known(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    password = secrets.token_urlsafe(24)
    (home / "secrets.json").write_text(json.dumps({"app_password": password}))
    build = _build(
        tmp_path,
        {
            "server/app/page.js": f"x='{password}'",
            "static/chunks/b.js": f"y='{DEV_SESSION_SECRET}'",
        },
    )
    kinds = {
        (f["file"], f["kind"]) for f in bundle_scan.run(build, home=home, environ={})["findings"]
    }
    assert ("server/app/page.js", "known:stack:app_password") in kinds
    assert ("static/chunks/b.js", "known:DEV_SESSION_SECRET") in kinds


def test_secret_shaped_strings_are_found_whoever_they_belong_to(tmp_path: Path) -> None:
    stripe_key = "sk_live_" + "Ab3" * 10  # pragma: allowlist secret
    db_url = "postgresql://app_rw:hunter2hunter2@db.internal:5432/x"  # pragma: allowlist secret
    build = _build(
        tmp_path,
        {
            "static/chunks/c.js": f"const k='{stripe_key}'",
            "static/chunks/d.js": f"u='{db_url}'",
            "static/chunks/e.js": "-----BEGIN PRIVATE KEY-----\nMIIB\n",  # pragma: allowlist secret
        },
    )
    kinds = {
        (f["file"], f["kind"])
        for f in bundle_scan.run(build, home=tmp_path, environ={})["findings"]
    }
    assert ("static/chunks/c.js", "shape:stripe_secret_key") in kinds
    assert ("static/chunks/d.js", "shape:url_with_password") in kinds
    assert ("static/chunks/e.js", "shape:private_key") in kinds


KEY_TAIL = "Ab3" * 12


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(alphabet="ax_-./'= \u00e9", max_size=4),
    key=st.sampled_from(["sk_live_", "sk-proj-", "whsec_", "ghp_", "xoxb-", "AKIA", "eyJ"]),
    after=st.text(alphabet="ax_-. ", max_size=4),
)
def test_shapes_count_only_where_a_word_starts_as_a_leading_word_boundary_would(
    before: str, key: str, after: str
) -> None:
    """The shapes are searched without a leading \\b (a 10x faster scan) and the boundary
    checked after: the verdict is the same as the \\b pattern's, e.g. `task_test_...` is
    no Stripe key and a key after a minified identifier still is one."""
    text = before + key + KEY_TAIL.upper() * (key == "AKIA") + KEY_TAIL * (key != "AKIA")
    text += after + "-sk_test_" + KEY_TAIL if "-" in before else after
    for name, pattern in bundle_scan.SHAPES.items():
        if name == "private_key":  # starts with no word character: never had a \\b
            continue
        with_boundary = re.compile(r"\b" + pattern.pattern)
        assert bundle_scan._found(pattern, text) == bool(with_boundary.search(text)), text


def test_a_missing_build_is_not_clean(tmp_path: Path) -> None:
    result = bundle_scan.run(tmp_path / "nothing", home=tmp_path / "home", environ={})
    assert result["clean"] is False and result["files"] == 0
