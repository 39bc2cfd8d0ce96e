"""What people and timers do to an alarm after it is raised, inside a journal transaction.

Shelving, feedback, verification, escalation steps and the end of a suppression, as
functions over the journal's connection (like ``alerting/outbox.py``): each reads the
alarm, asks the state machines (``lifecycle``, ``disposal``, ``escalation``) what the
step does, writes the alarm's columns and records the event through ``record`` (the
journal's ``_record``: transition, outbox rows, timers), all in the caller's one
transaction. A refused step raises ``StepRefused`` naming the state it found, which
the console answers with 409.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

from alerting import disposal, escalation, lifecycle, outbox
from alerting.escalation import Chase
from alerting.routing import PRIORITY_RANK, AlarmPolicy
from alerting.suppressions import Suppression
from hazwatch.alertpolicy import Route
from hazwatch.errors import AlarmNotFound, JournalError
from hazwatch.models import Alarm, AlarmEvent, AlarmState, Disposal, EventKind

SYSTEM_USER = "hazwatch"
"""Who steps taken by timers are recorded as."""


class StepRefused(JournalError):
    """The alarm's state (ISA or disposal, named in ``state``) does not allow the step."""

    def __init__(self, state: str, message: str) -> None:
        self.state = state
        super().__init__(message)


class Recorder(Protocol):
    def __call__(
        self,
        conn: sqlite3.Connection,
        alarm_id: str,
        previous: AlarmState | None,
        kind: EventKind,
        now_ms: int,
        *,
        comment: str = "",
        user: str = "",
        roles: Sequence[str] | None = None,
    ) -> AlarmEvent: ...


def _row(conn: sqlite3.Connection, alarm_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT id, state, disposal, cleared_ms, route, last_seq FROM alarms WHERE id = ?",
        (alarm_id,),
    ).fetchone()
    if row is None:
        raise AlarmNotFound(alarm_id)
    return row


def shelve(
    conn: sqlite3.Connection,
    record: Recorder,
    *,
    alarm_id: str,
    until_ms: int,
    reason: str,
    user: str,
    now_ms: int,
) -> AlarmEvent:
    row = _row(conn, alarm_id)
    state = AlarmState(row["state"])
    step = lifecycle.on_shelve(state)
    if step is None or step.state is None or step.kind is None:
        raise StepRefused(
            state.value,
            f"alarm {alarm_id} is {state.value}: only active_unack, active_ack and "
            "cleared_unack alarms can be shelved",
        )
    conn.execute(
        "UPDATE alarms SET state = ?, shelved_until_ms = ?, updated_ms = ? WHERE id = ?",
        (step.state, until_ms, now_ms, alarm_id),
    )
    return record(conn, alarm_id, state, step.kind, now_ms, comment=reason, user=user)


def unshelve(
    conn: sqlite3.Connection,
    record: Recorder,
    *,
    alarm_id: str,
    user: str,
    comment: str,
    now_ms: int,
) -> AlarmEvent:
    row = _row(conn, alarm_id)
    state = AlarmState(row["state"])
    step = lifecycle.on_unshelve(state, condition_active=row["cleared_ms"] is None)
    if step is None or step.state is None or step.kind is None:
        raise StepRefused(state.value, f"alarm {alarm_id} is {state.value}, not shelved")
    conn.execute(
        "UPDATE alarms SET state = ?, updated_ms = ? WHERE id = ?", (step.state, now_ms, alarm_id)
    )
    return record(conn, alarm_id, state, step.kind, now_ms, comment=comment, user=user)


def feedback(
    conn: sqlite3.Connection,
    record: Recorder,
    *,
    alarm_id: str,
    cause: str,
    measures: str,
    user: str,
    now_ms: int,
) -> AlarmEvent:
    row = _row(conn, alarm_id)
    try:
        step = disposal.on_feedback(Disposal(row["disposal"]))
    except disposal.DisposalRefused as exc:
        raise StepRefused(exc.state, f"alarm {alarm_id}: {exc}") from exc
    conn.execute(
        "UPDATE alarms SET disposal = ?, feedback_cause = ?, feedback_measures = ?, "
        "feedback_by = ?, feedback_ms = ?, updated_ms = ? WHERE id = ?",
        (step.disposal, cause, measures, user, now_ms, now_ms, alarm_id),
    )
    assert step.kind is not None
    comment = f"cause: {cause} | measures: {measures}"
    return record(
        conn, alarm_id, AlarmState(row["state"]), step.kind, now_ms, comment=comment, user=user
    )


def verify(
    conn: sqlite3.Connection,
    record: Recorder,
    *,
    alarm_id: str,
    accepted: bool,
    comment: str,
    user: str,
    now_ms: int,
    feedback_due_ms: int | None,
) -> AlarmEvent:
    """Accepting closes the alarm (销号); rejecting asks for feedback again, due
    ``feedback_due_ms`` (``None``: without a deadline)."""
    row = _row(conn, alarm_id)
    state = AlarmState(row["state"])
    try:
        step = disposal.on_verify(Disposal(row["disposal"]), state, accepted)
    except disposal.DisposalRefused as exc:
        raise StepRefused(exc.state, f"alarm {alarm_id}: {exc}") from exc
    closed_ms = now_ms if step.disposal is Disposal.CLOSED else None
    conn.execute(
        "UPDATE alarms SET disposal = ?, verify_accepted = ?, verify_comment = ?, verify_by = ?, "
        "verify_ms = ?, closed_ms = ?, updated_ms = ?, "
        "feedback_due_ms = CASE WHEN ? THEN ? ELSE feedback_due_ms END, "
        "overdue = CASE WHEN ? THEN 0 ELSE overdue END WHERE id = ?",
        (
            step.disposal,
            accepted,
            comment,
            user,
            now_ms,
            closed_ms,
            now_ms,
            step.deadline,
            feedback_due_ms,
            step.deadline,
            alarm_id,
        ),
    )
    assert step.kind is not None
    return record(conn, alarm_id, state, step.kind, now_ms, comment=comment, user=user)


def chase(
    conn: sqlite3.Connection,
    record: Recorder,
    *,
    policy: AlarmPolicy,
    row: sqlite3.Row,
    alarm: Alarm,
    route: Route | None,
    now_ms: int,
) -> tuple[list[AlarmEvent], int]:
    """Whatever the alarm's timers say is due: an expired shelf, escalation tiers,
    overdue tiers, a reminder. The events, and the reminder rows written."""
    alarm_id = row["id"]
    state = AlarmState(row["state"])
    if state is AlarmState.SHELVED:
        until = row["shelved_until_ms"]
        if until is None or until > now_ms:
            return [], 0
        event = unshelve(
            conn,
            record,
            alarm_id=alarm_id,
            user=SYSTEM_USER,
            comment="the shelf expired",
            now_ms=now_ms,
        )
        return [event], 0
    if route is None or state is AlarmState.SUPPRESSED:
        return [], 0
    current = Chase(
        unack_ms=row["unack_ms"] if state in lifecycle.UNACKNOWLEDGED else None,
        escalated=row["escalated"],
        reminders=row["reminders"],
        feedback_due_ms=row["feedback_due_ms"]
        if row["disposal"] == Disposal.AWAITING_FEEDBACK
        else None,
        overdue=row["overdue"],
    )
    events: list[AlarmEvent] = []
    reminder_rows = 0
    for due in escalation.due(route, current, now_ms):
        if due.kind == "reminded":
            conn.execute("UPDATE alarms SET reminders = ? WHERE id = ?", (due.tier, alarm_id))
            if due.roles:
                reminder_rows += _remind(
                    conn,
                    policy=policy,
                    alarm=alarm,
                    row=row,
                    number=due.tier,
                    roles=due.roles,
                    now_ms=now_ms,
                )
            continue
        column = "escalated" if due.kind == "escalated" else "overdue"
        conn.execute(f"UPDATE alarms SET {column} = ? WHERE id = ?", (due.tier, alarm_id))  # noqa: S608 - two constants
        minutes = (due.at_ms - (current.unack_ms or current.feedback_due_ms or due.at_ms)) / 60_000
        why = (
            f"unacknowledged for {minutes:g} min"
            if due.kind == "escalated"
            else f"feedback overdue by {minutes:g} min"
        )
        comment = f"tier {due.tier}: {why}; told {', '.join(due.roles)}"
        events.append(
            record(
                conn,
                alarm_id,
                state,
                "escalated",
                now_ms,
                comment=comment,
                user=SYSTEM_USER,
                roles=due.roles,
            )
        )
    return events, reminder_rows


def _remind(
    conn: sqlite3.Connection,
    *,
    policy: AlarmPolicy,
    alarm: Alarm,
    row: sqlite3.Row,
    number: int,
    roles: Sequence[str],
    now_ms: int,
) -> int:
    """Reminder rows to ``roles``, on the alarm's latest transition (no new event: a
    reminder changes nothing about the alarm)."""
    deliveries = policy.deliveries(alarm, "raised", row["route"], roles, feeds=False)
    outbox.add(
        conn,
        alarm.id,
        row["last_seq"],
        deliveries,
        now_ms,
        rank=PRIORITY_RANK[alarm.priority],
        enterprise=alarm.enterprise,
        purpose="reminder",
        number=number,
    )
    return len(deliveries)


def release(
    conn: sqlite3.Connection,
    record: Recorder,
    *,
    ended: Suppression,
    still: Sequence[Suppression],
    user: str,
    now_ms: int,
) -> list[AlarmEvent]:
    """A suppression ended: its alarms whose condition is still active are annunciated,
    unless another suppression still covers them."""
    rows = conn.execute(
        "SELECT id, installation, tag FROM alarms WHERE enterprise = ? AND state = ?",
        (ended.enterprise, AlarmState.SUPPRESSED),
    ).fetchall()
    events = []
    for row in rows:
        where = (ended.enterprise, row["installation"], row["tag"])
        if not ended.covers(*where) or any(s.covers(*where) for s in still):
            continue
        step = lifecycle.on_release(AlarmState.SUPPRESSED)
        assert step is not None
        assert step.state is not None
        assert step.kind is not None
        conn.execute(
            "UPDATE alarms SET state = ?, updated_ms = ? WHERE id = ?",
            (step.state, now_ms, row["id"]),
        )
        comment = f"suppression {ended.id} ended ({ended.reason})"
        events.append(
            record(
                conn,
                row["id"],
                AlarmState.SUPPRESSED,
                step.kind,
                now_ms,
                comment=comment,
                user=user,
            )
        )
    return events
