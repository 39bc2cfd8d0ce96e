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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

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
