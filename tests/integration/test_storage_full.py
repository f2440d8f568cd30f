"""Evidence storage that cannot take a file: full, or read-only. The API answers 503
`storage_unavailable` with Retry-After in the one envelope (never a 500), writes no row and
leaves no file behind, and works again once there is room.

The store is a real file system: a 512 KiB tmpfs mounted for the test. Mounting needs root,
which CI has (it runs as root); an ordinary user's run says so and skips.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from tests.support.db import su_value
from tests.support.server import serving
from tests.support.users import Account, answers, signup

pytestmark = pytest.mark.integration

DISK_BYTES = 512 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(  # noqa: S603 - fixed arguments
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(disk)],  # noqa: S607
        check=True,
    )
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)  # noqa: S603, S607


@pytest.fixture
def api(small_disk: Path) -> Iterator[httpx.Client]:
    with serving(EVIDENCE_DIR=str(small_disk)) as client:
        yield client


def noise_png(side: int, seed: int = 1) -> bytes:
    """A PNG of random pixels: it does not compress, so its size is about side² × 3."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def upload(client: httpx.Client, owner: Account, assessment_id: str, data: bytes):
    return client.post(
        f"/api/v1/assessments/{assessment_id}/evidence",
        files={"file": ("scan.png", data, "image/png")},
        headers=owner.headers,
    )


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assessment_of(client: httpx.Client, owner: Account) -> str:
    created = client.post("/api/v1/assessments", json={"answers": answers()}, headers=owner.headers)
    assert created.status_code == 202, created.text
    return created.json()["id"]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert error["trace_id"] == response.headers["x-request-id"]
    assert response.headers["retry-after"] == "60"


def test_a_full_disk_is_503_with_nothing_written_and_room_makes_it_work_again(
    api, small_disk, superuser
):
    owner = signup(api, "Full disk")
    assessment_id = assessment_of(api, owner)
    too_big = noise_png(480)  # ~690 KB: more than the disk holds
    assert len(too_big) > DISK_BYTES

    refused = upload(api, owner, assessment_id, too_big)

    assert_unavailable(refused)
    assert files_under(small_disk) == []  # the half-written spool file is gone too
    rows = "SELECT count(*) FROM evidence WHERE tenant_id = %s"
    assert su_value(superuser, rows, owner.tenant_id) == 0
    # The disk was never broken, only too small for that file: a small one fits.
    assert upload(api, owner, assessment_id, noise_png(64)).status_code == 201
    assert su_value(superuser, rows, owner.tenant_id) == 1


def test_a_read_only_store_is_503_not_500(api, small_disk):
    owner = signup(api, "Read-only disk")
    assessment_id = assessment_of(api, owner)
    (small_disk / ".incoming").mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)  # noqa: S603, S607
    try:
        assert_unavailable(upload(api, owner, assessment_id, noise_png(64)))
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)  # noqa: S603, S607
