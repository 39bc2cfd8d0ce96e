"""Stuck instrument (``STUCK``): a value that has not changed at all for ``stuck_s``.

Live analog instruments wander in their last digit; a pressure that reads exactly
the same for half an hour is more likely a frozen transmitter or a gateway repeating
its last value than a perfectly still process. The window is per point
(``stuck_s``), with per-kind defaults (docs/detectors.md); it is off for states and
for kinds that legitimately sit still (gas detectors at zero, a tank at rest).

Reading-driven, on reading timestamps: STUCK becomes active on the first reading
that repeats a value first seen ``stuck_s`` or more ago, and clears on the first
reading with another value. Silence is STALE's business; ``bad`` readings are
ignored (FAULT's business).

>>> from hazwatch.models import Point, Reading
>>> point = Point(enterprise="E001", installation="MH01", tag="PT101", name="Pressure 101",
...               kind="pressure", unit="kPa", stuck_s=60)
>>> stuck = StuckDetector(point, 60)
>>> def at(value, s):
...     return stuck.update(Reading("E001", "gw", "PT101", value, s * 1000), s * 1000)
>>> at(12.0, 0), at(12.0, 30), [c.message for c in at(12.0, 60)], at(12.0, 90)
([], [], ['Pressure 101 stuck at 12.0 kPa for 60.0 s'], [])
>>> [c.message for c in at(12.1, 95)]
['Pressure 101 moving again (12.1 kPa)']
"""

from __future__ import annotations

from detectors.base import format_value, point_condition, shared
from hazwatch.models import AlarmType, Condition, Point, Quality, Reading


class StuckDetector:
    __slots__ = ("_window_ms", "active", "last", "point", "since_ms")

    def __init__(self, point: Point, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"stuck window must be > 0 s, got {window_s}")
        self.point = point
        self._window_ms = shared(round(window_s * 1000))
        self.last: float | None = None
        self.since_ms = 0
        self.active = False

    def assume_active(self) -> None:
        """After a restart: STUCK was active, so it stays active (not raised again) until
        the value moves from the first one seen."""
        self.active = True

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:  # noqa: ARG002 - the Detector protocol
        if reading.quality is Quality.BAD:
            return []
        value = reading.value
        if value != self.last:
            first = self.last is None
            self.last = value
            self.since_ms = reading.ts_ms
            if first or not self.active:
                return []
            self.active = False
            message = f"{self.point.name} moving again ({format_value(value, self.point.unit)})"
            return [self._condition(reading, active=False, message=message)]
        held_ms = reading.ts_ms - self.since_ms
        if self.active or held_ms < self._window_ms:
            return []
        self.active = True
        message = (
            f"{self.point.name} stuck at {format_value(value, self.point.unit)} "
            f"for {format_value(held_ms / 1000)} s"
        )
        return [self._condition(reading, active=True, message=message)]

    def _condition(self, reading: Reading, *, active: bool, message: str) -> Condition:
        point = self.point
        return point_condition(
            point,
            AlarmType.STUCK,
            active=active,
            value=reading.value,
            limit=None,
            ts_ms=reading.ts_ms,
            message=message,
        )
