"""The alarm lifecycle: ISA-18.2 states as a pure state machine (no I/O, no clock).

Detectors say "condition active / inactive"; operators acknowledge and shelve;
maintenance suppresses. This module decides what each of those does to an alarm, in
one table::

    state          + input          -> state          event           alarm
    (none/closed)  + active         -> active_unack   raised          new
    (none/closed)  + active_supp    -> suppressed     raised          new
    (none/closed)  + inactive       -> (nothing)      -
    active_unack   + active         -> active_unack   - (value only)  same
    active_unack   + inactive       -> cleared_unack  cleared         same
    active_unack   + ack            -> active_ack     acknowledged    same
    active_unack   + shelve         -> shelved        shelved         same
    active_ack     + active         -> active_ack     - (value only)  same
    active_ack     + inactive       -> cleared        cleared         same, closed
    active_ack     + shelve         -> shelved        shelved         same
    cleared_unack  + active         -> active_unack   raised          same
    cleared_unack  + active_supp    -> suppressed     raised          same
    cleared_unack  + inactive       -> cleared_unack  - (value only)  same
    cleared_unack  + ack            -> cleared        acknowledged    same, closed
    cleared_unack  + shelve         -> shelved        shelved         same
    shelved        + active         -> shelved        - (value only)  same
    shelved        + inactive       -> shelved        - (value only)  same
    shelved        + unshelve_act   -> active_unack   unshelved       same
    shelved        + unshelve_clr   -> cleared        unshelved       same, closed
    suppressed     + active         -> suppressed     - (value only)  same
    suppressed     + inactive       -> cleared        cleared         same, closed
    suppressed     + release        -> active_unack   unsuppressed    same

``active_supp`` is an activation while a suppression (maintenance) covers the point:
the alarm is journalled but nobody is told. Alarms already annunciated when the
suppression began stay as they are. ``unshelve_act``/``unshelve_clr``: the shelf
expired (or an operator took the alarm off it) with the condition active / cleared —
a shelved alarm whose condition returned is annunciated again. ``release``: the
suppression ended with the condition still active.

Anything else is refused. ``cleared`` is closed *for the ISA state*: the next active
condition opens a new alarm. There is at most one alarm per (enterprise,
installation, tag, type) in another state — the journal enforces it. The disposal
loop (feedback, verification) runs beside this table, in ``alerting/disposal.py``: a
``cleared`` alarm may still await feedback, and a new activation still opens a new
alarm.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hazwatch.models import AlarmState, AlarmType, EventKind, Priority

CLOSED = AlarmState.CLEARED
"""The one closed state; every other state is open (and counts in ``alarms_active``)."""
ACTIVE = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK})
"""The states in which the condition is present and annunciated."""
UNACKNOWLEDGED = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.CLEARED_UNACK})
"""The states that wait for an operator: unacknowledged time runs (escalation)."""
ANNUNCIATED = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK, AlarmState.CLEARED_UNACK})
"""Open and shown to people: shelved and suppressed alarms are not."""

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
    ACTIVE_SUPPRESSED = "active_supp"
    INACTIVE = "inactive"
    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE_ACTIVE = "unshelve_act"
    UNSHELVE_CLEARED = "unshelve_clr"
    RELEASE = "release"


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

_S = AlarmState
_TABLE: Mapping[tuple[AlarmState | None, Input], Step] = MappingProxyType(
    {
        (None, Input.ACTIVE): Step(_S.ACTIVE_UNACK, "raised", new_alarm=True),
        (None, Input.ACTIVE_SUPPRESSED): Step(_S.SUPPRESSED, "raised", new_alarm=True),
        (None, Input.INACTIVE): _NOTHING,
        (_S.ACTIVE_UNACK, Input.ACTIVE): Step(_S.ACTIVE_UNACK, None),
        (_S.ACTIVE_UNACK, Input.ACTIVE_SUPPRESSED): Step(_S.ACTIVE_UNACK, None),
        (_S.ACTIVE_UNACK, Input.INACTIVE): Step(_S.CLEARED_UNACK, "cleared"),
        (_S.ACTIVE_UNACK, Input.ACK): Step(_S.ACTIVE_ACK, "acknowledged"),
        (_S.ACTIVE_UNACK, Input.SHELVE): Step(_S.SHELVED, "shelved"),
        (_S.ACTIVE_ACK, Input.ACTIVE): Step(_S.ACTIVE_ACK, None),
        (_S.ACTIVE_ACK, Input.ACTIVE_SUPPRESSED): Step(_S.ACTIVE_ACK, None),
        (_S.ACTIVE_ACK, Input.INACTIVE): Step(_S.CLEARED, "cleared"),
        (_S.ACTIVE_ACK, Input.SHELVE): Step(_S.SHELVED, "shelved"),
        (_S.CLEARED_UNACK, Input.ACTIVE): Step(_S.ACTIVE_UNACK, "raised"),
        (_S.CLEARED_UNACK, Input.ACTIVE_SUPPRESSED): Step(_S.SUPPRESSED, "raised"),
        (_S.CLEARED_UNACK, Input.INACTIVE): Step(_S.CLEARED_UNACK, None),
        (_S.CLEARED_UNACK, Input.ACK): Step(_S.CLEARED, "acknowledged"),
        (_S.CLEARED_UNACK, Input.SHELVE): Step(_S.SHELVED, "shelved"),
        (_S.SHELVED, Input.ACTIVE): Step(_S.SHELVED, None),
        (_S.SHELVED, Input.ACTIVE_SUPPRESSED): Step(_S.SHELVED, None),
        (_S.SHELVED, Input.INACTIVE): Step(_S.SHELVED, None),
        (_S.SHELVED, Input.UNSHELVE_ACTIVE): Step(_S.ACTIVE_UNACK, "unshelved"),
        (_S.SHELVED, Input.UNSHELVE_CLEARED): Step(_S.CLEARED, "unshelved"),
        (_S.SUPPRESSED, Input.ACTIVE): Step(_S.SUPPRESSED, None),
        (_S.SUPPRESSED, Input.ACTIVE_SUPPRESSED): Step(_S.SUPPRESSED, None),
        (_S.SUPPRESSED, Input.INACTIVE): Step(_S.CLEARED, "cleared"),
        (_S.SUPPRESSED, Input.RELEASE): Step(_S.ACTIVE_UNACK, "unsuppressed"),
    }
)
"""The docstring's table. ``active_supp`` on an alarm already annunciated changes
nothing but its value (a suppression does not hide what was already shown)."""


def on_condition(state: AlarmState | None, active: bool, *, suppressed: bool = False) -> Step:
    """A detector's condition for the alarm in ``state`` (``None``: no open alarm).

    ``suppressed``: a suppression covers the point now. A closed alarm (``cleared``)
    is treated as no alarm: an active condition opens a new one.
    """
    if state is CLOSED:
        state = None
    key = Input.INACTIVE
    if active:
        key = Input.ACTIVE_SUPPRESSED if suppressed else Input.ACTIVE
    step = _TABLE.get((state, key))
    if step is None:
        raise ValueError(f"alarm state {state} is not handled by this lifecycle")
    return step


def on_acknowledge(state: AlarmState) -> Step | None:
    """An operator's acknowledgement; ``None`` when there is nothing to acknowledge."""
    return _TABLE.get((state, Input.ACK))


def on_shelve(state: AlarmState) -> Step | None:
    """An operator shelves the alarm; ``None``: not allowed in this state."""
    return _TABLE.get((state, Input.SHELVE))


def on_unshelve(state: AlarmState, condition_active: bool) -> Step | None:
    """The shelf expires or is lifted; ``None``: the alarm is not shelved."""
    key = Input.UNSHELVE_ACTIVE if condition_active else Input.UNSHELVE_CLEARED
    return _TABLE.get((state, key))


def on_release(state: AlarmState) -> Step | None:
    """A suppression ended (its alarms' conditions are still active); ``None``: the
    alarm is not suppressed."""
    return _TABLE.get((state, Input.RELEASE))
