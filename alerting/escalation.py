"""Escalation (督办): what is due for an alarm, when — pure, from its timers and its route.

Three timers, each a row of this table, all kept in the journal's ``alarms`` row (so
they survive a restart) and all independent of whether a delivery succeeded::

    timer     runs while                   counted from             tier i is due at
    ack       unacknowledged (active_unack, when it became             start + escalate[i]
              cleared_unack)               unacknowledged           .after_min
                                           (``unack_ms``)
    reminder  unacknowledged, the route    the same                 start + n × remind_every
              has remind_every_min
    overdue   disposal awaiting_feedback   the feedback deadline    due + overdue[i].after_min
                                           (``feedback_due_ms``)

Everything stops on acknowledgement (ack, reminder) or feedback (overdue), and on close;
shelved and suppressed alarms are not chased. Each tier fires once: the journal writes
the tier number with the transition and its notifications in one transaction, so a
crash either keeps all three or none (then the tier fires after the restart) — at
least once, never twice. Tiers missed while the service was down all fire at the next
step; of the reminders missed, one is sent.

>>> from hazwatch.alertpolicy import Route, Tier
>>> route = Route(name="r", notify=("duty",), remind_every_min=5,
...               escalate=(Tier(after_min=5, notify=("principal",)),
...                         Tier(after_min=15, notify=("regulator",))))
>>> chase = Chase(unack_ms=0)
>>> next_due_ms(route, chase)
300000
>>> [(d.kind, d.tier, d.roles) for d in due(route, chase, 300_000)]
[('escalated', 1, ('principal',)), ('reminded', 1, ())]
>>> [(d.kind, d.tier, d.roles) for d in due(route, Chase(0, escalated=1), 600_000)]
[('reminded', 2, ('duty', 'principal'))]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hazwatch.alertpolicy import Route

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Chase:
    """An alarm's follow-up state, as the journal keeps it."""

    unack_ms: int | None = None
    """Start of its unacknowledged time; ``None``: acknowledged, shelved or suppressed."""
    escalated: int = 0
    """Ack tiers fired."""
    reminders: int = 0
    """Reminders sent (or skipped) since ``unack_ms``."""
    feedback_due_ms: int | None = None
    """The feedback deadline; ``None``: no feedback owed now."""
    overdue: int = 0
    """Overdue tiers fired."""


@dataclass(frozen=True, slots=True)
class Due:
    kind: Literal["escalated", "overdue", "reminded"]
    tier: int
    """The tier (1-based) or the reminder's number."""
    roles: tuple[str, ...]
    at_ms: int
    """When it was due (it fires at the step that finds it, which may be later)."""


def due(route: Route, chase: Chase, now_ms: int) -> list[Due]:
    """What fires at ``now_ms``: every tier due and not yet fired, in order; then, when
    no ack tier fired, one reminder if one is due."""
    found: list[Due] = []
    if chase.unack_ms is not None:
        for n in range(chase.escalated, len(route.escalate)):
            tier = route.escalate[n]
            at = chase.unack_ms + _ms(tier.after_min)
            if at > now_ms:
                break
            found.append(Due("escalated", n + 1, tier.notify, at))
        reminder = _reminder_due(route, chase, now_ms)
        if reminder is not None:
            if found:  # the escalation's message says it: count the reminder as sent
                found.append(Due("reminded", reminder, (), now_ms))
            else:
                found.append(Due("reminded", reminder, told(route, chase.escalated), now_ms))
    if chase.feedback_due_ms is not None:
        for n in range(chase.overdue, len(route.overdue)):
            tier = route.overdue[n]
            at = chase.feedback_due_ms + _ms(tier.after_min)
            if at > now_ms:
                break
            found.append(Due("overdue", n + 1, tier.notify, at))
    return found


def next_due_ms(route: Route, chase: Chase) -> int | None:
    """When something is next due for this alarm; ``None``: nothing ever (until its
    state changes)."""
    candidates: list[int] = []
    if chase.unack_ms is not None:
        if chase.escalated < len(route.escalate):
            candidates.append(chase.unack_ms + _ms(route.escalate[chase.escalated].after_min))
        if route.remind_every_min is not None:
            every = _ms(route.remind_every_min)
            candidates.append(chase.unack_ms + (chase.reminders + 1) * every)
    if chase.feedback_due_ms is not None and chase.overdue < len(route.overdue):
        candidates.append(chase.feedback_due_ms + _ms(route.overdue[chase.overdue].after_min))
    return min(candidates) if candidates else None


def told(route: Route, escalated: int) -> tuple[str, ...]:
    """Everyone told so far: the route's first roles and those of the tiers fired."""
    roles = list(route.notify)
    for tier in route.escalate[:escalated]:
        roles.extend(r for r in tier.notify if r not in roles)
    return tuple(roles)


def _reminder_due(route: Route, chase: Chase, now_ms: int) -> int | None:
    if route.remind_every_min is None or chase.unack_ms is None:
        return None
    latest = math.floor((now_ms - chase.unack_ms) / _ms(route.remind_every_min))
    return latest if latest > chase.reminders else None


def _ms(minutes: float) -> int:
    return round(minutes * MINUTE_MS)
