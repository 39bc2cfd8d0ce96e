"""How things look to the operator: an enterprise's risk colour, a value's limit state.

Both are derived here, once, and sent to the page ready to colour, so the browser never
re-implements an alarm rule.

>>> from hazwatch.models import Point, PointKind
>>> tank = Point(enterprise="E001", installation="MH01", tag="TK101_LT", name="Tank 101",
...              kind=PointKind.LEVEL, ll=0.5, l=1.0, h=10.5, hh=11.0)
>>> [limit_state(tank, v) for v in (0.2, 0.9, 5.0, 10.6, 11.0)]
['LL', 'L', 'normal', 'H', 'HH']
>>> risk_colour([])
'blue'
>>> risk([], {})
('blue', 'blue: no open alarm', None)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from hazwatch.models import Alarm, Point, Priority

RiskColour = Literal["red", "orange", "yellow", "blue"]
"""The four-colour risk scale of Chinese safety supervision (红橙黄蓝)."""
LimitState = Literal["HH", "H", "normal", "L", "LL"]

_COLOUR_BY_PRIORITY: dict[Priority, RiskColour] = {
    Priority.CRITICAL: "red",
    Priority.HIGH: "orange",
    Priority.MEDIUM: "yellow",
    Priority.LOW: "yellow",
}
_RANK: dict[RiskColour, int] = {"blue": 0, "yellow": 1, "orange": 2, "red": 3}


def risk_colour(open_alarms: Iterable[Alarm]) -> RiskColour:
    """Red if any open alarm is critical, orange if high, yellow if medium/low, else blue.

    "Open" means not closed: ``active_unack``, ``active_ack`` and ``cleared_unack``
    (a cleared alarm nobody has acknowledged still needs the operator).
    """
    return risk_of(alarm.priority for alarm in open_alarms)


def risk_of(priorities: Iterable[str]) -> RiskColour:
    """The risk colour of open alarms of these priorities (``Priority`` or its value).

    >>> risk_of(["low", "high"]), risk_of([])
    ('orange', 'blue')
    """
    colour: RiskColour = "blue"
    for priority in priorities:
        candidate = _COLOUR_BY_PRIORITY[Priority(priority)]
        if _RANK[candidate] > _RANK[colour]:
            colour = candidate
    return colour


def risk(
    open_alarms: Iterable[Alarm], grades: Mapping[str, int]
) -> tuple[RiskColour, str, dict[str, Any] | None]:
    """The risk colour, the reason shown beside it, and the alarm behind it.

    The reason names the alarm that sets the colour: ``"red: HH on TK101_LT, grade-1
    installation"``; among alarms of the same colour, the one on the installation of the
    highest hazard grade (1 is the highest), then the earliest raised. ``grades``:
    installation id -> grade, of the enterprise. The cause is ``{alarm_id, type, tag,
    installation, grade, open_alarms}`` (``None`` when blue), for the page to word in
    its own language.
    """
    alarms = list(open_alarms)
    colour = risk_colour(alarms)
    if not alarms:
        return colour, f"{colour}: no open alarm", None
    worst = min(
        (a for a in alarms if _COLOUR_BY_PRIORITY[a.priority] == colour),
        key=lambda a: (grades.get(a.installation, 99), a.raised_at, a.id),
    )
    grade = grades.get(worst.installation)
    where = (
        f"grade-{grade} installation" if grade is not None else f"installation {worst.installation}"
    )
    reason = f"{colour}: {worst.type.value} on {worst.tag}, {where}"
    if len(alarms) > 1:
        reason += f" (+{len(alarms) - 1} more open)"
    cause = {
        "alarm_id": worst.id,
        "type": worst.type.value,
        "tag": worst.tag,
        "installation": worst.installation,
        "grade": grade,
        "open_alarms": len(alarms),
    }
    return colour, reason, cause


def limit_state(point: Point, value: float) -> LimitState:
    """Which alarm limit ``value`` has reached; the same comparisons as the limit detector.

    A limit is reached at equality (``value >= h``); the deadband only matters for
    clearing an alarm, not for showing where the value is now.
    """
    if point.hh is not None and value >= point.hh:
        return "HH"
    if point.h is not None and value >= point.h:
        return "H"
    if point.ll is not None and value <= point.ll:
        return "LL"
    if point.l is not None and value <= point.l:
        return "L"
    return "normal"
