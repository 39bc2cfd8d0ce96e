"""The alarm lifecycle: ISA-18.2 states as a pure state machine (no I/O, no clock).

Detectors say "condition active / inactive"; operators acknowledge. This module decides
what each of those does to an alarm, in one table::

    state          + input      -> state          event           alarm
    (none/closed)  + active     -> active_unack   raised          new
    (none/closed)  + inactive   -> (nothing)      -
    active_unack   + active     -> active_unack   - (value only)  same
    active_unack   + inactive   -> cleared_unack  cleared         same
    active_unack   + ack        -> active_ack     acknowledged    same
    active_ack     + active     -> active_ack     - (value only)  same
    active_ack     + inactive   -> cleared        cleared         same, closed
    cleared_unack  + active     -> active_unack   raised          same
    cleared_unack  + inactive   -> cleared_unack  - (value only)  same
    cleared_unack  + ack        -> cleared        acknowledged    same, closed

Acknowledging anything else is refused. ``cleared`` is closed: the next active
condition opens a new alarm. There is at most one open alarm per (enterprise,
installation, tag, type) — the journal enforces it. ``shelved`` and ``suppressed``
come with shelving (a later issue) as more rows of this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from hazwatch.models import AlarmState, AlarmType, Priority

EventKind = Literal["raised", "updated", "acknowledged", "cleared", "closed"]
"""``AlarmEvent.kind``."""

CLOSED = AlarmState.CLEARED
ACTIVE = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK})
"""The states in which the condition is present."""
"""The one closed state; every other state is open (and counts in ``alarms_active``)."""

PRIORITY_BY_TYPE: Mapping[AlarmType, Priority] = MappingProxyType(
    {
        AlarmType.HH: Priority.CRITICAL,
        AlarmType.LL: Priority.CRITICAL,
        AlarmType.H: Priority.HIGH,
        AlarmType.L: Priority.HIGH,
        AlarmType.ROC: Priority.HIGH,
        AlarmType.SUSPENDED_LOAD: Priority.HIGH,
        AlarmType.SYSTEM: Priority.HIGH,
        AlarmType.TREND: Priority.MEDIUM,
        AlarmType.FAULT: Priority.MEDIUM,
        AlarmType.GATEWAY_OFFLINE: Priority.MEDIUM,
        AlarmType.ANOMALY: Priority.MEDIUM,  # the condition may say otherwise (config)
        AlarmType.STALE: Priority.LOW,
        AlarmType.STUCK: Priority.LOW,
    }
)


def priority_of(alarm_type: AlarmType) -> Priority:
    return PRIORITY_BY_TYPE[alarm_type]


def is_open(state: AlarmState) -> bool:
    return state is not CLOSED


class Input(enum.Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    ACK = "ack"


@dataclass(frozen=True, slots=True)
class Step:
    """What one input does to an alarm.

    ``state`` is the alarm's state after the input (``None``: there is no alarm and
    none is opened). ``kind`` is the event to record and send (``None``: no event —
    a repeat only refreshes the alarm's value). ``new_alarm``: open a new alarm.
    """

    state: AlarmState | None
    kind: EventKind | None
    new_alarm: bool = False


_NOTHING = Step(None, None)

_TABLE: Mapping[tuple[AlarmState | None, Input], Step] = MappingProxyType(
    {
        (None, Input.ACTIVE): Step(AlarmState.ACTIVE_UNACK, "raised", new_alarm=True),
        (None, Input.INACTIVE): _NOTHING,
        (AlarmState.ACTIVE_UNACK, Input.ACTIVE): Step(AlarmState.ACTIVE_UNACK, None),
        (AlarmState.ACTIVE_UNACK, Input.INACTIVE): Step(AlarmState.CLEARED_UNACK, "cleared"),
        (AlarmState.ACTIVE_UNACK, Input.ACK): Step(AlarmState.ACTIVE_ACK, "acknowledged"),
        (AlarmState.ACTIVE_ACK, Input.ACTIVE): Step(AlarmState.ACTIVE_ACK, None),
        (AlarmState.ACTIVE_ACK, Input.INACTIVE): Step(AlarmState.CLEARED, "cleared"),
        (AlarmState.CLEARED_UNACK, Input.ACTIVE): Step(AlarmState.ACTIVE_UNACK, "raised"),
        (AlarmState.CLEARED_UNACK, Input.INACTIVE): Step(AlarmState.CLEARED_UNACK, None),
        (AlarmState.CLEARED_UNACK, Input.ACK): Step(AlarmState.CLEARED, "acknowledged"),
    }
)


def on_condition(state: AlarmState | None, active: bool) -> Step:
    """A detector's condition for the alarm in ``state`` (``None``: no open alarm).

    A closed alarm (``cleared``) is treated as no alarm: an active condition opens a
    new one.
    """
    if state is CLOSED:
        state = None
    step = _TABLE.get((state, Input.ACTIVE if active else Input.INACTIVE))
    if step is None:
        raise ValueError(f"alarm state {state} is not handled by this lifecycle yet")
    return step


def on_acknowledge(state: AlarmState) -> Step | None:
    """An operator's acknowledgement; ``None`` when there is nothing to acknowledge."""
    return _TABLE.get((state, Input.ACK))
