"""The disposal loop's table, row by row, and its refusals naming the state."""

from __future__ import annotations

import pytest

from alerting import disposal
from alerting.disposal import DisposalRefused, DisposalStep
from hazwatch.models import AlarmState, Disposal

NONE, AF = Disposal.NONE, Disposal.AWAITING_FEEDBACK
AV, CLOSED = Disposal.AWAITING_VERIFICATION, Disposal.CLOSED


def test_a_new_alarm_is_handed_over_when_feedback_is_owed() -> None:
    assert disposal.on_raise(feedback_required=True) is AF
    assert disposal.on_raise(feedback_required=False) is NONE


def test_only_an_alarm_owing_nothing_closes_with_its_isa_state() -> None:
    assert disposal.on_isa(NONE, AlarmState.CLEARED) == DisposalStep(CLOSED, None)
    assert disposal.on_isa(AF, AlarmState.CLEARED) is None  # still owes feedback
    assert disposal.on_isa(NONE, AlarmState.CLEARED_UNACK) is None


def test_feedback_then_verification() -> None:
    assert disposal.on_feedback(AF) == DisposalStep(AV, "feedback")
    assert disposal.on_feedback(NONE) == DisposalStep(AV, "feedback")  # offered freely
    accept = disposal.on_verify(AV, AlarmState.CLEARED, accepted=True)
    assert accept == DisposalStep(CLOSED, "verified")
    reject = disposal.on_verify(AV, AlarmState.ACTIVE_ACK, accepted=False)
    assert reject == DisposalStep(AF, "rejected", deadline=True)


@pytest.mark.parametrize(
    ("call", "state"),
    [
        (lambda: disposal.on_feedback(AV), "awaiting_verification"),
        (lambda: disposal.on_feedback(CLOSED), "closed"),
        (lambda: disposal.on_verify(AF, AlarmState.CLEARED, accepted=True), "awaiting_feedback"),
        (lambda: disposal.on_verify(CLOSED, AlarmState.CLEARED, accepted=False), "closed"),
        # accepting closes the alarm: not while its condition is active or unacknowledged
        (lambda: disposal.on_verify(AV, AlarmState.ACTIVE_ACK, accepted=True), "active_ack"),
        (lambda: disposal.on_verify(AV, AlarmState.CLEARED_UNACK, accepted=True), "cleared_unack"),
    ],
)
def test_refusals_name_the_state(call: object, state: str) -> None:
    with pytest.raises(DisposalRefused) as refused:
        call()  # type: ignore[operator]
    assert refused.value.state == state
    assert state in str(refused.value)
