"""What a readiness check answers, and the verdict of all of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from rampart.readiness.context import Context

AREAS = ("security", "data", "observability", "resilience", "performance", "operations")


class Status(StrEnum):
    GO = "go"
    WARN = "warn"
    NO_GO = "no-go"


@dataclass
class Result:
    area: str
    check: str
    status: Status
    evidence: str  # the figure(s) the status rests on, or why there are none
    source: str  # where the evidence came from (a file, a URL, a database)
    fix: str = ""  # what to do when not go
    doc: str = ""  # where the fix is explained (a repository path, with anchor)
    observed_at: datetime | None = None  # when the evidence was produced (None: just now)

    def age(self, now: datetime) -> timedelta | None:
        return None if self.observed_at is None else now - self.observed_at

    def as_json(self, now: datetime) -> dict[str, object]:
        age = self.age(now)
        return {
            "area": self.area,
            "check": self.check,
            "status": str(self.status),
            "evidence": self.evidence,
            "source": self.source,
            "observed_at": self.observed_at.isoformat() if self.observed_at else None,
            "age_seconds": None if age is None else round(age.total_seconds(), 1),
            "fix": self.fix,
            "doc": self.doc,
        }


def not_available(area: str, check: str, why: str, source: str, fix: str, doc: str) -> Result:
    """The source of a check's evidence does not exist: a no-go, never a pass."""
    return Result(area, check, Status.NO_GO, f"not available: {why}", source, fix, doc)


def migration_database(ctx: Context, area: str, check: str, doc: str) -> URL | Result:
    """The deployment's MIGRATION_DATABASE_URL (a SQLAlchemy URL), or the not-available
    result of a check that needs it."""
    from sqlalchemy.engine import make_url

    from rampart.config import MissingSetting

    try:
        return make_url(ctx.settings.require("migration_database_url"))
    except MissingSetting as exc:
        return not_available(
            area,
            check,
            str(exc),
            "MIGRATION_DATABASE_URL",
            "set MIGRATION_DATABASE_URL or start `rampart up`",
            doc,
        )


def verdict(results: list[Result], strict: bool = False) -> Status:
    """no-go when any check is no-go (or, with `strict`, warn); warn when any is warn."""
    statuses = {r.status for r in results}
    if Status.NO_GO in statuses or (strict and Status.WARN in statuses):
        return Status.NO_GO
    return Status.WARN if Status.WARN in statuses else Status.GO


def parse_time(value: object) -> datetime:
    """An ISO 8601 time as an aware datetime (a naive one is taken as UTC)."""
    if not isinstance(value, str):
        raise ValueError(f"not an ISO 8601 time: {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_age(age: timedelta | None) -> str:
    if age is None:
        return "now"
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 3 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
