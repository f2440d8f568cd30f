"""Alertmanager's webhook payload, version 4 (https://prometheus.io/docs/alerting/latest/
configuration/#webhook_config), and the webhook's answer.

Extra fields are ignored (Alertmanager may add some); the ones we store are bounded, and no
string may hold a NUL (Postgres text and jsonb cannot).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Alertmanager's own limits are looser; a sane alert fits these, and the body limit
# (MAX_BODY_BYTES) bounds the whole notification anyway.
MAX_LABELS = 100
MAX_ALERTS = 10_000
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _bounded(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None
    if not _EARLIEST <= utc < _LATEST:
        raise ValueError("must be between 1970 and 9000")
    return utc


def _end(value: datetime) -> datetime | None:
    # Alertmanager sends the zero time ("0001-01-01T00:00:00Z") for a firing alert.
    if value.year <= 1:
        return None
    return _bounded(value)


Text = Annotated[str, Field(max_length=16_384), AfterValidator(_no_nul)]
Name = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_no_nul)]
LabelSet = Annotated[dict[Name, Text], Field(max_length=MAX_LABELS)]
Status = Literal["firing", "resolved"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Alert(_Lenient):
    status: Status
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    starts_at: Annotated[AwareDatetime, AfterValidator(_bounded)] = Field(alias="startsAt")
    ends_at: Annotated[AwareDatetime, AfterValidator(_end)] | None = Field(
        None, alias="endsAt", description="The zero time while the alert fires."
    )
    generator_url: Text | None = Field(None, alias="generatorURL")
    fingerprint: Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,64}$")]


class AlertmanagerPayload(_Lenient):
    """One notification: a group of alerts sent to one receiver."""

    version: Literal["4"]
    status: Status
    receiver: Text
    group_key: Text | None = Field(None, alias="groupKey")
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts")
    group_labels: LabelSet = Field(default_factory=dict, alias="groupLabels")
    common_labels: LabelSet = Field(default_factory=dict, alias="commonLabels")
    common_annotations: LabelSet = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Text | None = Field(None, alias="externalURL")
    alerts: list[Alert] = Field(min_length=1, max_length=MAX_ALERTS)


class AlertsReceived(BaseModel):
    received: int = Field(description="Alerts of the notification stored (all of them).")
