"""The domain's values, shared by every stage.

Time: inside the pipeline every timestamp is an **integer of epoch milliseconds,
UTC** (``ts_ms``, ``now_ms``) — cheap to compare and exactly what InfluxDB stores at
millisecond precision. Aware ``datetime`` objects appear only at the edges (API
JSON, log lines), converted with :func:`ms_to_iso`.

Hot-path values are immutable: ``Reading`` is a frozen ``msgspec.Struct`` (built
~10× faster than a frozen dataclass — a codec builds one per value received, see
bench/RESULTS.md), ``Condition`` and ``GatewayStatus`` frozen slotted dataclasses; the
registry and the alarm record are frozen pydantic models because they cross a
boundary (files in, JSON out). ``Point``, of which there is one per monitored point
and which the detectors keep for ever, is a frozen *slotted* pydantic dataclass:
validated like a model on construction, but ~200 bytes rather than ~2.7 kB (a model
carries a ``__dict__`` and a fields-set per instance).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.dataclasses import dataclass as validated_dataclass

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Enterprise, gateway and installation ids (docs/contract.md §1)."""
TAG_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""Point tags."""


def ms_to_iso(ts_ms: int) -> str:
    """``1763820000123`` → ``"2025-11-22T14:00:00.123Z"`` (the alarm JSON's format)."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_to_ms(text: str) -> int:
    """The inverse of :func:`ms_to_iso`: the alarm JSON's times back to epoch ms.

    >>> iso_to_ms(ms_to_iso(1763820000123))
    1763820000123
    """
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(milliseconds=1)


class Quality(enum.StrEnum):
    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


class PointKind(enum.StrEnum):
    TEMPERATURE = "temperature"
    PRESSURE = "pressure"
    LEVEL = "level"
    FLOW = "flow"
    GAS_LEL = "gas_lel"
    GAS_TOXIC = "gas_toxic"
    RESIDUAL_CURRENT = "residual_current"
    CABLE_TEMP = "cable_temp"
    POWER = "power"
    CURRENT = "current"
    VOLTAGE = "voltage"
    STATE = "state"
    OTHER = "other"


class Reading(msgspec.Struct, frozen=True, gc=False):
    """One value of one registered point, decoded and validated at the edge.

    ``receive_time`` is true when neither the reading nor its message carried a
    timestamp and the receive time was used instead.

    Immutable and hashable like a frozen dataclass (one reading is shared by the spool,
    the detectors, the live feed and the uplinks), but a C-built struct: a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__`` and cost
    half of a 100-metric Sparkplug message's decoding. ``gc=False``: its fields are
    strings, numbers and an enum, which cannot form a cycle, so the garbage collector
    need not track the hundreds of thousands made per second. Built positionally or
    by keyword; ``msgspec.structs.replace`` copies one with changes.
    """

    enterprise: str
    gateway: str
    tag: str
    value: float
    ts_ms: int
    quality: Quality = Quality.GOOD
    receive_time: bool = False


class GatewayState(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A gateway's retained ``status`` message (``online`` / ``offline``)."""

    enterprise: str
    gateway: str
    state: GatewayState
    ts_ms: int


# --- registry -------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contact(_Frozen):
    name: str = ""
    phone: str = ""
    email: str = ""
    dingtalk: str = ""
    """Mobile number or user id to @mention in the organisation's DingTalk group."""
    wecom: str = ""
    """User id (or mobile number) to @mention in the organisation's WeCom group."""


def _robot_url(url: str) -> str:
    """A group robot's webhook URL: ``http(s)://host/...`` (only the origin is ever shown)."""
    scheme, sep, rest = url.partition("://")
    if url and (scheme not in {"http", "https"} or not sep or not rest.split("/")[0]):
        raise ValueError(f"expected an http(s)://host/... URL, got one starting {scheme!r}")
    return url


class Robots(_Frozen):
    """Group robots of an enterprise, a grid or the platform: alarms are posted to the
    group, @mentioning the people routed to (``Contact.dingtalk`` / ``Contact.wecom``)."""

    dingtalk: str = ""
    """DingTalk custom robot URL (``https://oapi.dingtalk.com/robot/send?access_token=...``)."""
    dingtalk_secret: SecretStr = SecretStr("")
    """Its signing secret (``SEC...``); empty when the robot is not set to sign."""
    wecom: str = ""
    """WeCom group robot URL (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``)."""

    @field_validator("dingtalk", "wecom")
    @classmethod
    def _urls(cls, url: str) -> str:
        return _robot_url(url)


@validated_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class Point:
    """One row of a point table: what is measured and its alarm limits.

    Empty cells are ``None`` (not set). ``min``/``max`` are the instrument's range;
    ``ll``/``l``/``h``/``hh`` are alarm limits; ``deadband`` is the hysteresis;
    ``interval_s`` is the expected reporting interval.

    Validated on construction like the models (``kind="level"`` becomes
    ``PointKind.LEVEL``, ``12`` becomes ``12.0``, unknown fields are errors), but
    slotted: no ``__dict__`` per point (see the module's docstring).
    """

    enterprise: str
    installation: str
    tag: str
    name: str
    kind: PointKind
    unit: str = ""
    min: float | None = None
    max: float | None = None
    ll: float | None = None
    l: float | None = None  # noqa: E741 - the column's name in every DCS point list
    h: float | None = None
    hh: float | None = None
    deadband: float | None = None
    roc_per_min: float | None = None
    interval_s: float | None = None
    # detector tuning (docs/detectors.md); None = the kind's default
    on_delay_s: float | None = None
    off_delay_s: float | None = None
    stuck_s: float | None = None
    roc_window_s: float | None = None
    trend_horizon_s: float | None = None
    gateway: str | None = None
    """The gateway that reports it, when the point table says (before it reports)."""

    @property
    def has_limits(self) -> bool:
        return any(x is not None for x in (self.ll, self.l, self.h, self.hh))

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Point:
        """A copy with some fields changed (as pydantic's ``model_copy``, but validated)."""
        return dataclasses.replace(self, **(update or {}))


class Installation(_Frozen):
    id: str
    name: str
    grade: int
    points: tuple[Point, ...] = ()


class EnterpriseStatus(enum.StrEnum):
    OPERATING = "operating"
    SUSPENDED = "suspended"


class Enterprise(_Frozen):
    id: str
    name: str
    grid: str
    status: EnterpriseStatus = EnterpriseStatus.OPERATING
    contacts: dict[str, Contact] = {}
    installations: tuple[Installation, ...] = ()
    robots: Robots = Robots()
    location: tuple[float, float] | None = None
    """``[lon, lat]`` in WGS 84 degrees, for the risk map; ``None``: not placed."""


class Grid(_Frozen):
    id: str
    name: str = ""
    officers: tuple[Contact, ...] = ()
    regulator: str = ""
    """The supervising regulator's name (as shown)."""
    regulator_contact: Contact = Contact()
    """How the regulator is reached when an alarm escalates to it
    (``[grids.regulator_contact]``)."""
    robots: Robots = Robots()
    area: tuple[tuple[float, float], ...] = ()
    """The grid's outline on the risk map: ``[lon, lat]`` corners of a polygon (WGS 84)."""


class Registry(_Frozen):
    """Everything monitored, and who is responsible for it. Built by ``load_registry``."""

    enterprises: dict[str, Enterprise]
    grids: dict[str, Grid] = {}

    def point(self, enterprise: str, tag: str) -> Point | None:
        tags = self._points().get(enterprise)
        return None if tags is None else tags.get(tag)

    def points(self) -> list[Point]:
        return [p for tags in self._points().values() for p in tags.values()]

    def _points(self) -> dict[str, dict[str, Point]]:
        """enterprise → tag → point: no ``(enterprise, tag)`` tuple kept per point."""
        cached: dict[str, dict[str, Point]] | None = self.__dict__.get("_point_index")
        if cached is None:
            cached = {}
            for e in self.enterprises.values():
                for i in e.installations:
                    for p in i.points:
                        cached.setdefault(p.enterprise, {})[p.tag] = p
            # frozen models refuse attribute assignment; the index is derived data.
            self.__dict__["_point_index"] = cached
        return cached


# --- alarms ---------------------------------------------------------------------


class AlarmType(enum.StrEnum):
    HH = "HH"
    H = "H"
    L = "L"
    LL = "LL"
    ROC = "ROC"
    TREND = "TREND"
    STALE = "STALE"
    STUCK = "STUCK"
    FAULT = "FAULT"
    GATEWAY_OFFLINE = "GATEWAY_OFFLINE"
    SUSPENDED_LOAD = "SUSPENDED_LOAD"
    ANOMALY = "ANOMALY"
    """An installation no longer behaves as its learned model of normal operation."""
    SYSTEM = "SYSTEM"
    """About hazwatch itself (enterprise ``_system``), e.g. a historian falling behind."""


class AlarmState(enum.StrEnum):
    """ISA-18.2 states, as spelled in the alarm JSON (docs/contract.md §5)."""

    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    CLEARED_UNACK = "cleared_unack"
    CLEARED = "cleared"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"


class Priority(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Condition:
    """What a detector says about one point: a condition became active or inactive.

    Detectors never decide alarm states; alerting turns conditions into alarms.
    ``tag`` is empty for conditions about a whole gateway or enterprise.
    """

    enterprise: str
    installation: str
    tag: str
    type: AlarmType
    active: bool
    value: float | None
    limit: float | None
    ts_ms: int
    message: str
    details: Mapping[str, Any] | None = None
    """Structured facts for the alarm's ``details`` (ANOMALY: its statistics and every
    point's contribution); kept from the raise, not replaced by the clear."""
    priority: Priority | None = None
    """Instead of the type's priority (ANOMALY's is configured)."""


SYSTEM_ENTERPRISE = "_system"
SYSTEM_INSTALLATION = "hazwatch"


def system_condition(
    tag: str, *, active: bool, ts_ms: int, message: str, value: float, limit: float | None
) -> Condition:
    """A condition about hazwatch itself (type SYSTEM, enterprise ``_system``): the
    historian lagging, the spool full, the detectors failing."""
    return Condition(
        enterprise=SYSTEM_ENTERPRISE,
        installation=SYSTEM_INSTALLATION,
        tag=tag,
        type=AlarmType.SYSTEM,
        active=active,
        value=value,
        limit=limit,
        ts_ms=ts_ms,
        message=message,
    )


class Disposal(enum.StrEnum):
    """Where an alarm is in its disposal (处置) loop — beside its ISA-18.2 ``state``
    (``alerting/disposal.py``): 交办 → 反馈 → 核查 → 销号."""

    NONE = "none"
    """No feedback requested: the alarm is closed when it is cleared and acknowledged."""
    AWAITING_FEEDBACK = "awaiting_feedback"
    """Handed to the enterprise (交办): its cause and measures are due by ``feedback_due``."""
    AWAITING_VERIFICATION = "awaiting_verification"
    """Fed back (反馈); an operator or grid officer verifies it (核查)."""
    CLOSED = "closed"
    """销号: verified, or (without a feedback request) cleared and acknowledged."""


class Feedback(_Frozen):
    """The enterprise's disposal feedback (处置反馈)."""

    cause: str
    measures: str
    by: str
    at: str


class Verification(_Frozen):
    """An operator's or grid officer's verification of the feedback (核查)."""

    accepted: bool
    comment: str
    by: str
    at: str


class Alarm(_Frozen):
    """The alarm record: the JSON of docs/contract.md §5, sent on the API, SSE and MQTT.

    The fields after ``message`` are additions of the closed loop (docs/contract.md,
    "Alarm JSON"); they have defaults, so records written before them still read.
    """

    id: str
    enterprise: str
    installation: str
    tag: str
    type: AlarmType
    priority: Priority
    state: AlarmState
    value: float | None
    limit: float | None
    raised_at: str
    cleared_at: str | None
    message: str
    disposal: Disposal = Disposal.NONE
    feedback_due: str | None = None
    feedback: Feedback | None = None
    verification: Verification | None = None
    closed_at: str | None = None
    """When the alarm was closed (销号); ``None`` while open."""
    escalation: int = 0
    """Escalation tiers (督办) reached so far: unacknowledged time and overdue feedback."""
    shelved_until: str | None = None
    details: dict[str, Any] | None = Field(default=None, exclude_if=lambda v: v is None)
    """Addition: structured facts behind the message, for some types (ANOMALY). Left
    out of the JSON when there are none, so other alarms read as they always have."""


EventKind = Literal[
    "raised",
    "updated",
    "acknowledged",
    "cleared",
    "closed",
    "shelved",
    "unshelved",
    "unsuppressed",
    "escalated",
    "feedback",
    "verified",
    "rejected",
]
"""What an alarm event says happened (``alerting/lifecycle.py``, ``alerting/disposal.py``)."""


class AlarmEvent(_Frozen):
    """One state change of an alarm: what notifiers, the console and MQTT receive."""

    alarm: Alarm
    previous_state: AlarmState | None
    kind: EventKind
    at: str
    seq: int | None = None
    """The transition's number within its alarm (1 = raised), set by the journal. With
    ``alarm.id`` it names the event: receivers deduplicate and order by it (the webhook
    ``Idempotency-Key`` is ``<alarm id>:<seq>``)."""
    user: str = ""
    """Who made the change (acknowledgement, feedback, verification...); empty: hazwatch."""
    comment: str = ""
