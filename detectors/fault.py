"""Instrument fault (``FAULT``): quality ``bad``, or a value outside the instrument's range.

A reading the gateway marks ``bad`` (an open loop, a failed sensor) or a value outside
``min``/``max`` (a 4–20 mA loop below 4 mA reads as a value below range) says the
instrument, not the process, is in trouble. FAULT is active while readings are faulty
and clears with the first sound reading. Outside range means strictly outside:
``min`` and ``max`` themselves are valid values.

The engine does not feed a faulty reading to the process detectors (limits, rate of
change, trend, stuck, suspended load): a broken transmitter reading 9999 must raise
one FAULT, not HH and ROC as well.

>>> from hazwatch.models import Point, Quality, Reading
>>> point = Point(enterprise="E001", installation="MH01", tag="PT101", name="Pressure 101",
...               kind="pressure", unit="kPa", min=0, max=50)
>>> fault = FaultDetector(point)
>>> [c.message for c in fault.update(Reading("E001", "gw", "PT101", 75.0, 1_000), 1_000)]
['Pressure 101: 75.0 kPa outside the instrument range [0.0, 50.0] kPa']
>>> fault.update(Reading("E001", "gw", "PT101", 0.0, 2_000, Quality.BAD), 2_000)
[]
>>> [c.message for c in fault.update(Reading("E001", "gw", "PT101", 12.0, 3_000), 3_000)]
['Pressure 101 instrument sound again (12.0 kPa)']
"""

from __future__ import annotations

import math

from detectors.base import format_value, point_condition
from hazwatch.models import AlarmType, Condition, Point, Quality, Reading


class FaultDetector:
    __slots__ = ("active", "hi", "lo", "point")

    def __init__(self, point: Point) -> None:
        self.point = point
        self.lo = -math.inf if point.min is None else point.min
        self.hi = math.inf if point.max is None else point.max
        self.active = False

    def faulty(self, reading: Reading) -> bool:
        value = reading.value
        return reading.quality is Quality.BAD or value < self.lo or value > self.hi

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:  # noqa: ARG002 - the Detector protocol
        faulty = self.faulty(reading)
        if faulty is self.active:
            return []
        self.active = faulty
        point = self.point
        value = format_value(reading.value, point.unit)
        if not faulty:
            message = f"{point.name} instrument sound again ({value})"
        elif reading.quality is Quality.BAD:
            message = f"{point.name}: instrument reports quality bad ({value})"
        else:
            lo = "-inf" if point.min is None else format_value(point.min)
            hi = "inf" if point.max is None else format_value(point.max)
            message = (
                f"{point.name}: {value} outside the instrument range [{lo}, {hi}] {point.unit}"
            ).rstrip()
        return [
            point_condition(
                point,
                AlarmType.FAULT,
                active=faulty,
                value=reading.value,
                limit=None,
                ts_ms=reading.ts_ms,
                message=message,
            )
        ]
