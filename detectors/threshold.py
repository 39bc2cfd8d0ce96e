"""Alarm limits (HH / H / L / LL) with deadband hysteresis, from the point table.

Each limit is its own condition type, so a level above HH has both H and HH active and
operators see the escalation. A high limit becomes active when ``value >= limit`` and
inactive only when ``value < limit - deadband`` (low limits mirror this): a signal
hovering around a limit inside the deadband does not flap (ISA-18.2 deadband;
ThingsBoard users ask for exactly this, #7943).

Readings of quality ``bad`` say nothing about the process, so limits ignore them (a
later FAULT detector reports the instrument). The common case — a reading well inside
every limit on a point with nothing active — costs two comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from detectors.base import format_value
from hazwatch.models import AlarmType, Condition, Point, Quality, Reading


@dataclass(frozen=True, slots=True)
class _Limit:
    type: AlarmType
    limit: float
    reset: float
    """Past this value (below for high limits, above for low ones) the condition clears."""
    high: bool

    def trips(self, value: float) -> bool:
        return value >= self.limit if self.high else value <= self.limit

    def resets(self, value: float) -> bool:
        return value < self.reset if self.high else value > self.reset


class LimitDetector:
    """The alarm limits of one point.

    >>> from hazwatch.models import Point, Reading
    >>> point = Point(enterprise="E001", installation="MH01", tag="TK101_LT",
    ...               name="Tank 101 level", kind="level", unit="m",
    ...               l=1.0, h=10.5, hh=11.0, deadband=0.05)
    >>> level = LimitDetector(point)
    >>> def reading(value, ts_ms):
    ...     return Reading("E001", "gw1", "TK101_LT", value, ts_ms)
    >>> [c.message for c in level.update(reading(11.2, 1_000), now_ms=1_000)]
    ['Tank 101 level 11.2 m above H 10.5 m', 'Tank 101 level 11.2 m above HH 11.0 m']
    >>> level.update(reading(10.97, 2_000), now_ms=2_000)   # inside HH's deadband
    []
    >>> [c.message for c in level.update(reading(10.9, 3_000), now_ms=3_000)]
    ['Tank 101 level 10.9 m back below HH 11.0 m']
    >>> sorted(level.active)
    [<AlarmType.H: 'H'>]
    """

    __slots__ = ("_active", "_limits", "_point", "_quiet_above", "_quiet_below")

    def __init__(self, point: Point) -> None:
        self._point = point
        deadband = point.deadband or 0.0
        limits: list[_Limit] = []
        for type_, limit in ((AlarmType.H, point.h), (AlarmType.HH, point.hh)):
            if limit is not None:
                limits.append(_Limit(type_, limit, limit - deadband, high=True))
        for type_, limit in ((AlarmType.L, point.l), (AlarmType.LL, point.ll)):
            if limit is not None:
                limits.append(_Limit(type_, limit, limit + deadband, high=False))
        self._limits = tuple(limits)
        # With nothing active, a value strictly between these trips no limit.
        self._quiet_above = max((x.limit for x in limits if not x.high), default=-math.inf)
        self._quiet_below = min((x.limit for x in limits if x.high), default=math.inf)
        self._active: set[AlarmType] = set()

    @property
    def point(self) -> Point:
        return self._point

    @property
    def active(self) -> frozenset[AlarmType]:
        """The limit conditions currently active."""
        return frozenset(self._active)

    def assume_active(self, types: Iterable[AlarmType]) -> None:
        """Start from conditions known to be active (after a restart, from the journal's
        open alarms), so the next reading inside the limits clears them. Types this
        point has no limit for are ignored."""
        own = {limit.type for limit in self._limits}
        self._active.update(t for t in types if t in own)

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:  # noqa: ARG002 - the Detector protocol; limits need only the reading
        value = reading.value
        if not self._active and self._quiet_above < value < self._quiet_below:
            return []
        if reading.quality is Quality.BAD:
            return []
        active = self._active
        changes: list[Condition] = []
        # Clear the most severe first, raise the least severe first: events then read
        # like the process moved (H, HH on the way up; HH, H on the way down).
        for limit in reversed(self._limits):
            if limit.type in active and limit.resets(value):
                active.discard(limit.type)
                changes.append(self._condition(limit, reading, active=False))
        for limit in self._limits:
            if limit.type not in active and limit.trips(value):
                active.add(limit.type)
                changes.append(self._condition(limit, reading, active=True))
        return changes

    def _condition(self, limit: _Limit, reading: Reading, *, active: bool) -> Condition:
        point = self._point
        if active:
            where = "above" if limit.high else "below"
        else:
            where = "back below" if limit.high else "back above"
        message = (
            f"{point.name} {format_value(reading.value, point.unit)} {where} "
            f"{limit.type} {format_value(limit.limit, point.unit)}"
        )
        return Condition(
            enterprise=point.enterprise,
            installation=point.installation,
            tag=point.tag,
            type=limit.type,
            active=active,
            value=reading.value,
            limit=limit.limit,
            ts_ms=reading.ts_ms,
            message=message,
        )
