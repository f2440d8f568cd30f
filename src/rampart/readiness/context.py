"""What the checks run against: the deployment's settings, its RAMPART_HOME (where the
report files live), the repository (rules, runbooks, web app) and the time of the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rampart.config import Settings

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Context:
    settings: Settings
    settings_error: str | None = None  # the deployment's settings failed to load: why
    repo: Path = REPO
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    alert_timeout_seconds: float = 90.0  # how long to wait for Alertmanager to deliver

    @property
    def home(self) -> Path:
        return Path(self.settings.rampart_home).resolve()

    @property
    def reports(self) -> Path:
        return self.home / "reports"
