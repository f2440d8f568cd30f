"""A local SMTP server that keeps every mail it is sent, for `rampart up` and the tests:
no mail leaves the machine, and anyone at the keyboard can read what the app sent.

Each mail is one file, `<RAMPART_HOME>/mail/<time>-<id>.eml` (mode 0600, written under a
temporary name and renamed, so a reader never sees half a mail), the message exactly as
received with an `X-Envelope-To` line added in front. `rampart mail` lists and prints
them. The server is aiosmtpd's, in a thread of the process that starts it, on
127.0.0.1 only; it accepts SMTPUTF8 (internationalized addresses) and no authentication.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

# aiosmtpd logs every SMTP command at INFO, recipients in clear: only its problems, please.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class _Keep:
    """aiosmtpd handler: write each message to the directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        temporary = self.directory / f".{name}.tmp"
        recipients = ", ".join(envelope.rcpt_tos)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(f"X-Envelope-To: {recipients}\r\n".encode())
            handle.write(content)
        temporary.rename(self.directory / f"{name}.eml")
        return "250 Message accepted for delivery"


class MailCapture:
    """The capture server; `url` is what SMTP_URL should say."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        controller = Controller(
            _Keep(self.directory),
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=True,
            decode_data=False,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass(frozen=True)
class CapturedMail:
    path: Path
    message: EmailMessage

    @cached_property
    def to(self) -> str:
        return str(self.message["To"])

    @cached_property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        return body.get_content() if body is not None else ""


def captured(directory: Path) -> list[CapturedMail]:
    """Every mail in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return [_parsed(path, path.stat().st_mtime_ns) for path in sorted(directory.glob("*.eml"))]


# A mail file never changes once it has its name (written under a temporary one, then
# renamed): one parse per file, not one per look. Tests that wait for a mail look every
# 0.1 s at a mailbox of hundreds, and parsing them all each time was 4 % of their CPU.
@lru_cache(maxsize=4096)
def _parsed(path: Path, mtime_ns: int) -> CapturedMail:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return CapturedMail(path, message)  # type: ignore[arg-type]
