"""The lifecycle table, row by row."""

from __future__ import annotations

import pytest

from alerting import lifecycle
from alerting.lifecycle import Step
from hazwatch.models import AlarmState, AlarmType, Priority

AU, AA = AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK
CU, CL = AlarmState.CLEARED_UNACK, AlarmState.CLEARED


@pytest.mark.parametrize(
    ("state", "active", "step"),
    [
        (None, True, Step(AU, "raised", new_alarm=True)),
        (None, False, Step(None, None)),
        (AU, True, Step(AU, None)),  # repeat: same alarm, no event
        (AU, False, Step(CU, "cleared")),
        (AA, True, Step(AA, None)),  # repeat: same alarm, no event
        (AA, False, Step(CL, "cleared")),
        (CU, True, Step(AU, "raised")),  # returns: same alarm, raised again
        (CU, False, Step(CU, None)),
        (CL, True, Step(AU, "raised", new_alarm=True)),  # closed: a new alarm
        (CL, False, Step(None, None)),
    ],
)
def test_conditions(state: AlarmState | None, active: bool, step: Step) -> None:
    assert lifecycle.on_condition(state, active) == step


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (AU, Step(AA, "acknowledged")),
        (CU, Step(CL, "acknowledged")),
        (AA, None),
        (CL, None),
    ],
)
def test_acknowledge(state: AlarmState, step: Step | None) -> None:
    assert lifecycle.on_acknowledge(state) == step


def test_states_not_built_yet_are_refused_loudly() -> None:
    with pytest.raises(ValueError, match="shelved"):
        lifecycle.on_condition(AlarmState.SHELVED, active=True)


def test_open_means_not_closed() -> None:
    assert [s for s in AlarmState if not lifecycle.is_open(s)] == [CL]


def test_every_type_has_its_priority() -> None:
    assert {t: lifecycle.priority_of(t) for t in AlarmType} == {
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
        AlarmType.ANOMALY: Priority.MEDIUM,
        AlarmType.STALE: Priority.LOW,
        AlarmType.STUCK: Priority.LOW,
    }
