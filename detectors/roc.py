"""Rate of change (``ROC``): the value moves faster than ``roc_per_min``, either way.

The rate is the least-squares slope over the point's sliding window (``roc_window_s``,
:mod:`detectors.slope`), not the difference of two samples — so one noisy sample, of
any size, does not raise ROC: the fit must be *reliable* (enough readings, spread over
the window, a significant slope). ROC becomes active when a reliable fit's
``|slope| ≥ roc_per_min`` and clears when the rate falls below
:data:`RESET_FRACTION` × the limit (a deadband on the rate) or the fit is no longer
reliable. It is evaluated once per window bucket (every ``roc_window_s / 4``).

>>> from hazwatch.models import Point, Reading
>>> point = Point(enterprise="E001", installation="MH01", tag="TT101", name="Temperature 101",
...               kind="temperature", unit="degC", roc_per_min=2.0, roc_window_s=80)
>>> roc = RocDetector(point)
>>> changes = []
>>> for k in range(0, 200):   # flat for 100 s, then rising 3 degC/min
...     value = 20.0 + max(0, k - 100) * 0.05
...     changes += roc.update(Reading("E001", "gw", "TT101", value, k * 1000), k * 1000)
>>> [(c.ts_ms, c.message) for c in changes]  # 60 s into the ramp; the window was half flat
[(160000, 'Temperature 101 rising 2.51 degC/min (ROC limit 2.0 degC/min)')]
"""

from __future__ import annotations

from detectors.base import format_value, point_condition
from detectors.defaults import roc_window_s
from detectors.slope import Fit, SlopeWindow
from hazwatch.models import AlarmType, Condition, Point, Quality, Reading

RESET_FRACTION = 0.8
"""ROC clears when the rate falls below this fraction of ``roc_per_min``."""


class RocDetector:
    __slots__ = ("_limit", "_reset", "_window", "active", "point")

    def __init__(self, point: Point, window: SlopeWindow | None = None) -> None:
        if point.roc_per_min is None or point.roc_per_min <= 0:
            raise ValueError(f"{point.tag}: ROC needs roc_per_min > 0")
        self.point = point
        self._limit = point.roc_per_min
        self._reset = point.roc_per_min * RESET_FRACTION
        if window is None:
            seconds = roc_window_s(point)
            window = SlopeWindow(seconds if seconds is not None else 120.0)
        self._window = window
        self.active = False

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:  # noqa: ARG002 - the Detector protocol
        if reading.quality is Quality.BAD:
            return []
        fit = self._window.add(reading.ts_ms, reading.value)
        return [] if fit is None else self.evaluate(fit, reading)

    def evaluate(self, fit: Fit, reading: Reading) -> list[Condition]:
        """Judge a window that just closed (the engine shares one window with TREND)."""
        rate = abs(fit.slope) * 60
        if not self.active:
            if not (rate >= self._limit and fit.reliable):
                return []
            self.active = True
        elif rate >= self._reset and fit.reliable:
            return []
        else:
            self.active = False
        point = self.point
        unit = f"{point.unit}/min" if point.unit else "/min"
        direction = "rising" if fit.slope > 0 else "falling"
        if self.active:
            message = (
                f"{point.name} {direction} {format_value(rate, digits=3)} {unit} "
                f"(ROC limit {format_value(self._limit)} {unit})"
            )
        else:
            message = f"{point.name} rate of change back to {format_value(rate, digits=3)} {unit}"
        return [
            point_condition(
                point,
                AlarmType.ROC,
                active=self.active,
                value=reading.value,
                limit=self._limit,
                ts_ms=reading.ts_ms,
                message=message,
            )
        ]
