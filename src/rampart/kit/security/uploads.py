"""Receiving an uploaded file safely: streamed, size-capped, typed by its bytes.

- The multipart body is parsed while it streams in (Werkzeug's sans-IO
  `MultipartDecoder`; FastAPI's own form parsing would first spool the whole body), byte
  counts are checked on every chunk, and the file part goes straight to a spool file: an
  oversized upload is refused with 413 as soon as it crosses the limit, having cost at
  most one chunk of memory.
- The type is decided by magic bytes (puremagic) and, for images, confirmed by Pillow:
  the client's Content-Type and file extension are ignored. Anything not allowed (an
  executable or script renamed `.pdf` included) is 415.
- Image dimensions are read from the header before any pixel is decoded: a decompression
  bomb (a tiny file declaring 100,000 × 100,000 pixels) is refused without allocating it.
- The client's filename is kept for display only, sanitized; storage uses our own keys.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
import puremagic
from PIL import Image, UnidentifiedImageError
from starlette.requests import ClientDisconnect, Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from rampart.kit.errors import AppError, BadRequest, PayloadTooLarge, ValidationFailed
from rampart.kit.storage import storage_errors

# Room for the multipart framing around the file: boundaries and part headers.
MULTIPART_OVERHEAD_BYTES = 16 * 1024
# Buffered bytes the decoder may hold (part headers, one chunk in flight); the body itself
# is never held whole.
_DECODER_BUFFER_BYTES = 1024 * 1024
_SNIFF_BYTES = 4096
_IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{1,70}")  # RFC 2046 bchars
MAX_FILENAME_CHARS = 200


class UnsupportedMediaType(AppError):
    code, status, message = "unsupported_media_type", 415, "This type of file is not accepted."


@dataclass(frozen=True)
class UploadPolicy:
    """What one upload route accepts."""

    max_bytes: int
    allowed_types: frozenset[str]  # MIME types, decided by content
    max_image_side: int
    field: str = "file"

    @property
    def max_body_bytes(self) -> int:
        return self.max_bytes + MULTIPART_OVERHEAD_BYTES


@dataclass(frozen=True)
class ReceivedFile:
    """A validated upload, spooled to `path` (deleted when the receiving context exits,
    unless storage has moved it away first)."""

    path: Path
    filename: str  # sanitized, for display only
    content_type: str  # decided by the bytes, never by the client
    size: int
    sha256: str


def _too_large(policy: UploadPolicy) -> PayloadTooLarge:
    # Connection: close, so the server does not read (or keep) the rest of a body it refused.
    return PayloadTooLarge(
        f"The file exceeds {policy.max_bytes} bytes.", headers={"Connection": "close"}
    )


def _invalid(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(
        "The upload is invalid.", details=[{"field": field, "problem": problem}]
    )


def sanitize_filename(raw: str | None) -> str:
    """A display name that is safe to show and log: the last path segment only, Unicode
    normalized, without control, format (bidi overrides) or surrogate characters or
    characters Windows reserves, no leading or trailing dots or spaces, at most
    MAX_FILENAME_CHARS (the extension kept). Never used as a path."""
    name = unicodedata.normalize("NFKC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(
        "_" if ch in '<>:"|?*' else ch
        for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    name = re.sub(r"\s+", " ", name).strip(" .")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= 16 else ""
        keep = MAX_FILENAME_CHARS - (len(ext) + 1 if ext else 0)
        name = (stem if ext else name)[:keep].rstrip(" .") + (f".{ext}" if ext else "")
    return name or "upload"


def _boundary(request: Request) -> bytes:
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data.")
    boundary = options.get("boundary", "")
    if not _BOUNDARY.fullmatch(boundary) or boundary.endswith(" "):
        raise BadRequest("The multipart boundary is missing or invalid.")
    return boundary.encode("ascii")


class _Receiver:
    """Feeds the decoder chunk by chunk and writes the one file part to the spool file."""

    def __init__(self, policy: UploadPolicy, spool: IO[bytes]) -> None:
        self.policy = policy
        self.spool = spool
        self.digest = hashlib.sha256()
        self.size = 0
        self.filename: str | None = None
        self.in_file = False
        self.seen_file = False

    def drain(self, decoder: MultipartDecoder) -> None:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData | Epilogue):
                return
            if isinstance(event, File) and event.name == self.policy.field:
                if self.seen_file:
                    raise _invalid(self.policy.field, "send exactly one file")
                self.seen_file = self.in_file = True
                self.filename = event.filename
            elif isinstance(event, File | Field):
                raise _invalid(event.name or "body", "unexpected form field")
            elif isinstance(event, Data) and self.in_file:
                self.size += len(event.data)
                if self.size > self.policy.max_bytes:
                    raise _too_large(self.policy)
                self.digest.update(event.data)
                self.spool.write(event.data)
                self.in_file = event.more_data


async def _receive(request: Request, policy: UploadPolicy, spool: IO[bytes]) -> _Receiver:
    boundary = _boundary(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_body_bytes:
        raise _too_large(policy)  # refused before a byte of the body is read
    decoder = MultipartDecoder(boundary, _DECODER_BUFFER_BYTES, max_parts=4)
    receiver = _Receiver(policy, spool)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > policy.max_body_bytes:
                raise _too_large(policy)
            decoder.receive_data(chunk)
            receiver.drain(decoder)
        decoder.receive_data(None)
        receiver.drain(decoder)
    except RequestEntityTooLarge as exc:  # too many parts, or part headers without end
        raise _too_large(policy) from exc
    except ValueError as exc:  # Werkzeug: truncated or malformed multipart, bad header bytes
        raise BadRequest("The multipart body is malformed.") from exc
    except ClientDisconnect as exc:
        raise BadRequest("The upload was interrupted.") from exc
    if not receiver.seen_file:
        raise _invalid(policy.field, "a file is required")
    if receiver.size == 0:
        raise _invalid(policy.field, "the file is empty")
    return receiver


def sniff_type(head: bytes, allowed: frozenset[str]) -> str:
    """The MIME type the leading bytes prove, if it is one of `allowed`; else 415. Only
    the best-confidence matches count, so an allowed type that merely also matches (a
    polyglot's weaker signature) does not win."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        matches = []
    best = max((m.confidence for m in matches), default=0)
    found = {m.mime_type for m in matches if m.confidence == best} & allowed
    if len(found) != 1:
        raise UnsupportedMediaType(
            f"Only {', '.join(sorted(allowed))} files are accepted (decided by content)."
        )
    return found.pop()


def check_image(path: Path, content_type: str, max_side: int) -> None:
    """Header first (size, no pixels), then a full decode proves it is the image it
    claims. Pillow's own bomb guard refuses anything over MAX_IMAGE_PIXELS at open."""
    try:
        with Image.open(path, formats=[_IMAGE_FORMATS[content_type]]) as image:
            width, height = image.size
            if width > max_side or height > max_side:
                raise _invalid("file", f"image is {width}x{height}; at most {max_side}x{max_side}")
            image.load()
    except Image.DecompressionBombError as exc:
        raise _invalid("file", f"image is larger than {max_side}x{max_side}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMediaType("The image is corrupt or not what it claims to be.") from exc


# Pillow refuses to even open an image over twice this many pixels (DecompressionBombError)
# and warns over it; our per-side limit is stricter still and checked right after open.
Image.MAX_IMAGE_PIXELS = 4096 * 4096


@asynccontextmanager
async def receive_upload(
    request: Request, policy: UploadPolicy, spool_dir: Path
) -> AsyncIterator[ReceivedFile]:
    """Stream the request's multipart body into a spool file in `spool_dir` and validate
    it; yield the result, and delete the spool file on exit if it is still there."""
    with storage_errors():
        fd, name = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
    path = Path(name)
    try:
        with storage_errors(), os.fdopen(fd, "wb") as spool:  # the close flushes: inside
            receiver = await _receive(request, policy, spool)
        with open(path, "rb") as handle:
            content_type = sniff_type(handle.read(_SNIFF_BYTES), policy.allowed_types)
        if content_type in _IMAGE_FORMATS:
            await anyio.to_thread.run_sync(check_image, path, content_type, policy.max_image_side)
        yield ReceivedFile(
            path=path,
            filename=sanitize_filename(receiver.filename),
            content_type=content_type,
            size=receiver.size,
            sha256=receiver.digest.hexdigest(),
        )
    finally:
        with suppress(FileNotFoundError):
            path.unlink()
