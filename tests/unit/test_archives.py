"""Unpacking never writes outside the target, on any Python 3.11 (3.11.0–3.11.3 have no
tarfile extraction filters: kit/archives.py makes the same refusals itself)."""

from __future__ import annotations

import contextlib
import io
import tarfile

import pytest

from rampart.kit import archives


def _tar(*members: tarfile.TarInfo, data: bytes = b"x") -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member


@pytest.fixture(params=["with filters", "without filters"])
def python(request, monkeypatch):
    if request.param == "without filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def test_a_plain_archive_unpacks(tmp_path, python):
    archives.extract_all(_tar(tarfile.TarInfo("dir/file"), data=b"hello"), tmp_path)
    assert (tmp_path / "dir" / "file").read_bytes() == b"hello"


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../escaped"),
        _link("link", "../../outside"),
        _link("link", "/etc/passwd"),
        _link("hard", "../outside", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "symlink out", "absolute symlink", "hard link out"],
)
def test_a_member_that_leaves_the_directory_is_refused(tmp_path, python, member):
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(tarfile.TarError):
        archives.extract_all(_tar(member), target)
    assert not (tmp_path / "escaped").exists()


def test_an_absolute_member_never_lands_at_its_absolute_path(tmp_path, python):
    # The "data" filter strips the leading slash; without filters it is refused.
    target, outside = tmp_path / "target", tmp_path / "absolute-escape"
    target.mkdir()
    with contextlib.suppress(tarfile.TarError):
        archives.extract_all(_tar(tarfile.TarInfo(str(outside))), target)
    assert not outside.exists()
