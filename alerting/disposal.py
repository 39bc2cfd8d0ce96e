"""The disposal loop (处置闭环): 发现—交办—整改—反馈—核查—销号, as a pure state machine.

It runs beside the ISA-18.2 table of ``alerting/lifecycle.py``: ``state`` says what the
condition and the operator did, ``disposal`` what the enterprise and the verifier did.
One table::

    disposal               + input               -> disposal               event
    (raised, feedback due) + raise               -> awaiting_feedback      raised  (交办)
    (raised, no feedback)  + raise               -> none                   raised
    none                   + isa_closed          -> closed                 (the ISA event)
    none                   + feedback            -> awaiting_verification  feedback
    awaiting_feedback      + feedback            -> awaiting_verification  feedback (反馈)
    awaiting_verification  + accept [cleared]    -> closed                 verified (核查, 销号)
    awaiting_verification  + reject              -> awaiting_feedback      rejected (a new deadline)

Everything else is refused, naming the disposal (or, for an acceptance while the
condition is not yet ``cleared`` and acknowledged, the ISA state) — the console
answers 409. ``isa_closed`` is the lifecycle's step into ``cleared``: an alarm that
owes no feedback closes with it; one that owes feedback stays open until verified,
while a new activation of its condition opens a new alarm (the journal's one-open-alarm
rule is about the ISA state only).

A feedback deadline is set per priority (``[alerting.feedback] due_min``); a missed
one escalates (``alerting/escalation.py``) like a missed acknowledgement.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hazwatch.models import AlarmState, Disposal, EventKind


class DisposalInput(enum.Enum):
    ISA_CLOSED = "isa_closed"
    FEEDBACK = "feedback"
    ACCEPT = "accept"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class DisposalStep:
    """``disposal``: after the input. ``kind``: the event to record (``None``: the ISA
    transition that caused the input records it). ``deadline``: start a feedback deadline."""

    disposal: Disposal
    kind: EventKind | None
    deadline: bool = False


_D = Disposal
_TABLE: Mapping[tuple[Disposal, DisposalInput], DisposalStep] = MappingProxyType(
    {
        (_D.NONE, DisposalInput.ISA_CLOSED): DisposalStep(_D.CLOSED, None),
        (_D.NONE, DisposalInput.FEEDBACK): DisposalStep(_D.AWAITING_VERIFICATION, "feedback"),
        (_D.AWAITING_FEEDBACK, DisposalInput.FEEDBACK): DisposalStep(
            _D.AWAITING_VERIFICATION, "feedback"
        ),
        (_D.AWAITING_VERIFICATION, DisposalInput.ACCEPT): DisposalStep(_D.CLOSED, "verified"),
        (_D.AWAITING_VERIFICATION, DisposalInput.REJECT): DisposalStep(
            _D.AWAITING_FEEDBACK, "rejected", deadline=True
        ),
    }
)

_EXPECTED = {
    DisposalInput.FEEDBACK: "feedback is taken while the alarm is none or awaiting_feedback",
    DisposalInput.ACCEPT: "verification needs feedback first (awaiting_verification)",
    DisposalInput.REJECT: "verification needs feedback first (awaiting_verification)",
}


class DisposalRefused(ValueError):
    """A step the loop does not allow now; ``state`` names where the alarm is."""

    def __init__(self, state: str, message: str) -> None:
        self.state = state
        super().__init__(message)


def on_raise(feedback_required: bool) -> Disposal:
    """The disposal of a new alarm: handed over for feedback (交办), or not."""
    return Disposal.AWAITING_FEEDBACK if feedback_required else Disposal.NONE


def on_isa(disposal: Disposal, state: AlarmState) -> DisposalStep | None:
    """The lifecycle moved the alarm to ``state``; a disposal change, or ``None``."""
    if state is not AlarmState.CLEARED:
        return None
    return _TABLE.get((disposal, DisposalInput.ISA_CLOSED))


def on_feedback(disposal: Disposal) -> DisposalStep:
    """The enterprise feeds back cause and measures. Raises ``DisposalRefused``."""
    return _step(disposal, DisposalInput.FEEDBACK)


def on_verify(disposal: Disposal, state: AlarmState, accepted: bool) -> DisposalStep:
    """An operator or grid officer verifies the feedback. Accepting closes the alarm,
    so the condition must be gone and acknowledged (ISA ``cleared``). Raises
    ``DisposalRefused``."""
    step = _step(disposal, DisposalInput.ACCEPT if accepted else DisposalInput.REJECT)
    if accepted and state is not AlarmState.CLEARED:
        raise DisposalRefused(
            state.value,
            f"the alarm is {state.value}: it can be verified and closed once its condition "
            "has cleared and it is acknowledged (cleared); reject it to ask for new feedback",
        )
    return step


def _step(disposal: Disposal, what: DisposalInput) -> DisposalStep:
    step = _TABLE.get((disposal, what))
    if step is None:
        raise DisposalRefused(
            disposal.value, f"the alarm's disposal is {disposal.value}: {_EXPECTED[what]}"
        )
    return step
