"""Outgoing mail: the `Mailer` interface and its SMTP implementation (aiosmtplib, on the
caller's event loop, never blocking it).

Mail is sent by background jobs only (the worker), never in a request: a request records
the mail to send as a job in its own transaction (kit/jobs/enqueue.py), so a mail server
that is down or slow never fails or slows a request, and no mail leaves for a request
that rolled back. How a send ends decides the job's fate:

- accepted → done;
- the server cannot be reached, times out, drops the connection, or answers 4xx (try
  later) → `MailTemporarilyFailed`, a transient job error: retried with backoff;
- 5xx (a permanent refusal: unknown recipient, policy) → `MailRejected`, definitive: the
  job is quarantined with the server's answer.

Delivery is at least once: a worker that dies after the server accepted a mail and before
the job is marked done sends it again. Each mail's Message-ID is its job id, so a mailbox
can tell the copies apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from rampart.kit.jobs.runner import TransientJobError
from rampart.kit.logging import get_logger
from rampart.kit.settings import mail_settings

log = get_logger(__name__)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    message_id: str


class MailTemporarilyFailed(TransientJobError):
    """The mail server could not take the mail now; the job tries again later."""


class MailRejected(Exception):
    """The mail server refused the mail for good (5xx)."""


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


@dataclass(frozen=True)
class SmtpMailer:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None  # None: STARTTLS if the server offers it
    timeout: float
    sender: str

    @classmethod
    def from_url(cls, url: str, *, sender: str, timeout: float) -> SmtpMailer:
        parts = urlsplit(url)
        scheme = parts.scheme
        return cls(
            hostname=parts.hostname or "localhost",
            port=parts.port or {"smtps": 465, "smtp+starttls": 587}.get(scheme, 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=scheme == "smtps",
            start_tls=True if scheme == "smtp+starttls" else (False if scheme == "smtps" else None),
            timeout=timeout,
            sender=sender,
        )

    def message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = mail.message_id
        message.set_content(mail.text)
        return message

    async def send(self, mail: Mail) -> None:
        try:
            await aiosmtplib.send(
                self.message(mail),
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [error.code for error in exc.recipients]
            if all(400 <= code < 500 for code in codes):
                raise MailTemporarilyFailed(f"recipient deferred: {codes}") from exc
            raise MailRejected(f"recipient refused: {codes}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise MailTemporarilyFailed(f"{exc.code} {exc.message}"[:300]) from exc
            raise MailRejected(f"{exc.code} {exc.message}"[:300]) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailTemporarilyFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        log.info("mail_sent", message_id=mail.message_id)


def get_mailer() -> Mailer:
    """The configured mailer (built per call: cheap, and follows the settings)."""
    settings = mail_settings()
    url = settings.require("smtp_url")
    return SmtpMailer.from_url(
        url, sender=settings.mail_from, timeout=settings.smtp_timeout_seconds
    )
