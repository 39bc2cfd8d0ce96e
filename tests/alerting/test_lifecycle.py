"""The lifecycle table, row by row."""

from __future__ import annotations

import pytest

from alerting import lifecycle
from alerting.lifecycle import Step
from hazwatch.models import AlarmState, AlarmType, Priority

AU, AA = AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK
CU, CL = AlarmState.CLEARED_UNACK, AlarmState.CLEARED
SH, SU = AlarmState.SHELVED, AlarmState.SUPPRESSED


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


@pytest.mark.parametrize(
    ("state", "active", "step"),
    [
        (None, True, Step(SU, "raised", new_alarm=True)),  # journalled, nobody told
        (CL, True, Step(SU, "raised", new_alarm=True)),
        (CU, True, Step(SU, "raised")),  # returns under maintenance: suppressed
        (AU, True, Step(AU, None)),  # already shown: a suppression does not hide it
        (AA, True, Step(AA, None)),
        (SU, True, Step(SU, None)),
        (SH, True, Step(SH, None)),
    ],
)
def test_activations_under_a_suppression(
    state: AlarmState | None, active: bool, step: Step
) -> None:
    assert lifecycle.on_condition(state, active, suppressed=True) == step


@pytest.mark.parametrize(
    ("state", "active", "step"),
    [
        (SH, True, Step(SH, None)),  # shelved: the condition is tracked, nobody told
        (SH, False, Step(SH, None)),
        (SU, True, Step(SU, None)),
        (SU, False, Step(CL, "cleared")),  # back to normal during maintenance: closed
    ],
)
def test_conditions_of_shelved_and_suppressed_alarms(
    state: AlarmState, active: bool, step: Step
) -> None:
    assert lifecycle.on_condition(state, active) == step


def test_shelving_unshelving_and_release() -> None:
    assert [lifecycle.on_shelve(s) for s in (AU, AA, CU)] == [Step(SH, "shelved")] * 3
    assert [lifecycle.on_shelve(s) for s in (CL, SH, SU)] == [None] * 3
    assert lifecycle.on_unshelve(SH, condition_active=True) == Step(AU, "unshelved")
    assert lifecycle.on_unshelve(SH, condition_active=False) == Step(CL, "unshelved")
    assert lifecycle.on_unshelve(AU, condition_active=True) is None
    assert lifecycle.on_release(SU) == Step(AU, "unsuppressed")
    assert lifecycle.on_release(SH) is None
    assert [lifecycle.on_acknowledge(s) for s in (SH, SU)] == [None, None]


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
