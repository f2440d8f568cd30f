"""Mail as a user sees it: what the capture server kept (rampart.devstack.mailbox, started
with the test stack: SMTP_URL points at it, mails land in <RAMPART_HOME>/mail/), and the
mail jobs of a tenant run in-process, as a worker runs them (integration tests have no
worker; e2e tests do, and then `deliver` finds nothing left to do)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support.wait import wait_until

TOKEN = re.compile(r"token=([0-9a-f]{32}\.[A-Za-z0-9_-]{43})")


def default_mailbox() -> Path:
    return Path(os.environ["RAMPART_HOME"]) / "mail"


def mails_to(address: str, mailbox: Path | None = None) -> list:
    """Every captured mail to `address` (any spelling of it), oldest first."""
    from rampart.devstack.mailbox import captured
    from rampart.kit.security.emails import canonical_email

    wanted = canonical_email(address)
    return [m for m in captured(mailbox or default_mailbox()) if canonical_email(m.to) == wanted]


def deliver(tenant_id: str) -> int:
    """Run the tenant's pending mail jobs once each; how many ran."""
    from rampart.accounts import service
    from tests.support.jobs import jobs, run_work

    ran = 0
    for job in jobs(tenant_id, types=(service.MAIL_JOB,)):
        if job.type == service.MAIL_JOB and job.status == "pending":
            run_work(str(job.id), tenant_id, service.mail_step, task=service.MAIL_JOB)
            ran += 1
    return ran


def wait_for_mail(
    address: str,
    subject: str,
    *,
    after: int = 0,
    mailbox: Path | None = None,
    timeout: float = 30.0,
):
    """The first mail to `address` whose subject contains `subject`, beyond the first
    `after` such mails (count them before the action that sends one)."""

    def beyond() -> list:
        found = [m for m in mails_to(address, mailbox) if subject in m.subject]
        return found if len(found) > after else []

    found = wait_until(
        beyond,
        timeout,
        0.05,
        message=lambda: (
            f"mail {subject!r} to {address}; saw {[m.subject for m in mails_to(address, mailbox)]}"
        ),
    )
    return found[after]


def count_mails(address: str, subject: str, mailbox: Path | None = None) -> int:
    return sum(subject in m.subject for m in mails_to(address, mailbox))


def link_token(mail) -> str:
    """The token of the mail's link."""
    match = TOKEN.search(mail.text)
    assert match, f"no link token in the mail:\n{mail.text}"
    return match.group(1)
