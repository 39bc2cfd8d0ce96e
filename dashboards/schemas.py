"""The console API's request and response models (docs/contract.md §7).

Input models (``...In``) refuse unknown keys; output models are frozen. Times are ISO
8601 UTC strings (``ms_to_iso``), as in the alarm JSON. The alarm itself is
``hazwatch.models.Alarm``, the record of §3.5, sent unchanged.

Personal data: contacts appear by role and name only. Phone numbers and e-mail
addresses stay out of the API: the notifiers need them, the console's users do not.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dashboards.status import LimitState, RiskColour
from hazwatch.models import (
    ID_PATTERN,
    TAG_PATTERN,
    Alarm,
    AlarmState,
    EnterpriseStatus,
    PointKind,
    Quality,
)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- health --------------------------------------------------------------------


class HealthOut(_Out):
    status: Literal["ok", "degraded"]
    components: dict[str, Any]
    """Component name -> what the wiring reported (``"ok"`` or a problem)."""


# --- enterprises ------------------------------------------------------------------


class RiskCause(_Out):
    alarm_id: str
    type: str
    tag: str
    installation: str
    grade: int | None
    open_alarms: int


class EnterpriseSummary(_Out):
    id: str
    name: str
    grid: str
    status: EnterpriseStatus
    risk: RiskColour
    """red: an open critical alarm; orange: high; yellow: medium or low; blue: none."""
    risk_reason: str
    """The colour and the alarm that sets it: ``"red: HH on TK101_LT, grade-1 installation"``."""
    risk_cause: RiskCause | None
    """That alarm's facts, for wording the reason in another language; ``None``: blue."""
    location: tuple[float, float] | None
    """``[lon, lat]`` from the registry, ``None`` when not placed."""
    installation_count: int
    point_count: int
    open_alarm_count: int
    """Alarms not closed: active (acknowledged or not) or cleared but unacknowledged."""


class LastValue(_Out):
    value: float
    ts: str
    quality: Quality
    age_s: float
    """Seconds since ``ts`` when the answer was made (server clock)."""
    stale: bool
    """Older than 3 × the point's ``interval_s``: not a current value (shown as stale)."""


class PointOut(_Out):
    tag: str
    name: str
    kind: PointKind
    unit: str
    min: float | None
    max: float | None
    ll: float | None
    l: float | None  # noqa: E741 - the DCS column name, as in the point table
    h: float | None
    hh: float | None
    deadband: float | None
    interval_s: float | None
    last: LastValue | None
    limit_state: LimitState | None
    """Which limit the last value has reached; ``None`` before the first reading."""


class InstallationOut(_Out):
    id: str
    name: str
    grade: int
    points: list[PointOut]


class GatewayOut(_Out):
    gateway: str
    state: str
    last_seen: str | None
    last_seq: int | None
    seq_gaps: int
    seq_repeats: int
    messages: int


class ContactOut(_Out):
    role: str
    name: str


class EnterpriseDetail(EnterpriseSummary):
    installations: list[InstallationOut]
    gateways: list[GatewayOut]
    contacts: list[ContactOut]


# --- history --------------------------------------------------------------------


class HistoryPoint(_Out):
    ts: str
    value: float


class HistoryOut(_Out):
    enterprise: str
    tag: str
    unit: str
    start: str
    end: str
    step_ms: int
    points: list[HistoryPoint]
    """Mean value per bucket, one entry per bucket that holds readings."""


# --- alarms ----------------------------------------------------------------------


class TransitionOut(_Out):
    """One state change of an alarm, oldest first."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    seq: int
    at: str
    from_: AlarmState | None = Field(alias="from")
    to: AlarmState
    kind: str
    comment: str | None
    user: str | None


class NotificationOut(_Out):
    """Delivery state of one transition on one notifier channel (and recipient)."""

    seq: int
    channel: str
    recipient: str = ""
    """'' for a feed; a person's key (``E001/principal``); a group robot's organisation."""
    purpose: str = "event"
    """``event``, or ``reminder`` (sent while the alarm is unacknowledged)."""
    status: str
    """``pending``, ``delivered``, ``dead``."""
    attempts: int
    last_error: str | None
    delivered_at: str | None
    next_attempt_at: str | None


class AlarmDetail(Alarm):
    transitions: list[TransitionOut]
    notifications: list[NotificationOut]


class AckIn(_In):
    comment: str = Field(default="", max_length=500)


MAX_BULK_ACK = 100
"""Alarms one ``POST /api/alarms/ack`` acknowledges at most."""


class BulkAckIn(_In):
    ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        min_length=1, max_length=MAX_BULK_ACK
    )
    reason: str = Field(min_length=1, max_length=500, description="why all of them at once")


class BulkRefusal(BaseModel):
    id: str
    status: int
    """404: no such alarm (or one the caller does not see); 409: its state refuses."""
    detail: str


class BulkAckOut(BaseModel):
    acknowledged: list[Alarm]
    refused: list[BulkRefusal]


class ShelveIn(_In):
    minutes: float = Field(gt=0, description="at most [alerting] shelve_max_min")
    reason: str = Field(min_length=1, max_length=500)


class UnshelveIn(_In):
    comment: str = Field(default="", max_length=500)


class FeedbackIn(_In):
    """The enterprise's disposal feedback (处置反馈)."""

    cause: str = Field(min_length=1, max_length=2000)
    measures: str = Field(min_length=1, max_length=2000)


class VerifyIn(_In):
    """Verification of the feedback (核查): accepted closes the alarm (销号)."""

    accepted: bool
    comment: str = Field(default="", max_length=1000)


class SuppressionIn(_In):
    """A point (``tag``) or an installation in maintenance until ``end``."""

    enterprise: str = Field(pattern=ID_PATTERN)
    installation: str | None = Field(default=None, pattern=ID_PATTERN)
    tag: str | None = Field(default=None, pattern=TAG_PATTERN)
    reason: str = Field(min_length=1, max_length=500)
    end: str = Field(description="ISO 8601 with offset, or epoch ms; in the future")


class SuppressionOut(_Out):
    id: int
    enterprise: str
    installation: str | None
    tag: str | None
    reason: str
    user: str
    start: str
    end: str
    ended: str | None


class DeadNotificationOut(_Out):
    """A notification that failed for good: refused, out of attempts, or unreachable."""

    id: int
    alarm_id: str
    seq: int
    channel: str
    recipient: str
    purpose: str
    attempts: int
    last_error: str | None
    created_at: str


# --- ingest -----------------------------------------------------------------------


class RejectOut(_Out):
    ts: str
    topic: str
    reason: str
    detail: str
    payload_head: str


class UnknownTagOut(_Out):
    enterprise: str
    gateway: str
    tag: str
    count: int
    last_seen: str


class DeadLetterOut(_Out):
    """A reading storage refused for good (kept in the spool's dead-letter table).

    A refused line that could not be read back as a reading (its point left the
    registry) has ``line`` (the line protocol as spooled) and no reading fields."""

    at: str
    enterprise: str | None = None
    gateway: str
    tag: str | None = None
    ts: str | None = None
    value: float | None = None
    quality: Quality | None = None
    error: str
    line: str | None = None


class RejectsOut(_Out):
    rejected_total: int
    """Every rejection since start, from the metrics; ``recent`` keeps only the last ones."""
    by_reason: dict[str, int]
    recent: list[RejectOut]
    """Newest first."""
    unknown_tags: list[UnknownTagOut]
