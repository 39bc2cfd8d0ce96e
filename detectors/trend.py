"""Predicted breach (``TREND``, 预警): a limit will be reached within the horizon.

From the point's sliding-window fit (:mod:`detectors.slope`) the line is extended to
the next limit in the direction it moves — H, then HH once the value is past H (L,
then LL, when falling) — and TREND becomes active when that crossing is predicted
within ``trend_horizon_s`` of the reading, and no further ahead than
:data:`REACH_WINDOWS` windows. The message gives the predicted time.

It must not fire on noise around a flat signal, so only a *reliable* fit counts
(enough readings spread over the window, and a significant slope: the t-statistic
test of :mod:`detectors.slope` rejects the wobble of noise and single outliers).
TREND clears when no reliable fit predicts a crossing within
:data:`RESET_FACTOR` × the horizon, or when the value is past every limit on its way.

When it is judged: at every window bucket end (every ``roc_window_s / 4``), and in
between at the first reading from the moment the last reliable fit's crossing comes
within the horizon — the line is then fitted again with the readings so far
(:meth:`~detectors.slope.SlopeWindow.refit`), and TREND raised if that fit agrees. So
a warning comes as soon as the readings support it, not up to a bucket later, while
the common reading still costs no fit.

>>> from hazwatch.models import Point, Reading
>>> point = Point(enterprise="E001", installation="MH01", tag="TK101_LT", name="Tank 101 level",
...               kind="level", unit="m", h=10.5, hh=11.0, roc_window_s=200, trend_horizon_s=600)
>>> trend = TrendDetector(point)
>>> changes = []
>>> for k in range(0, 300):   # rising 0.6 m/min from 2.0 m: H at 850 s
...     changes += trend.update(Reading("E001", "gw", "TK101_LT", 2.0 + k * 0.01, k * 1000), 0)
>>> [(c.ts_ms, c.limit) for c in changes]
[(250000, 10.5)]
>>> changes[0].message   # judged again as soon as H came within the 600 s horizon
'Tank 101 level rising 0.6 m/min: H 10.5 m predicted in 10.0 min (at 1970-01-01T00:14:10.000Z)'
>>> trend.predicted_ms
850000
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

from detectors.base import format_value, point_condition, shared
from detectors.defaults import roc_window_s, trend_horizon_s
from detectors.slope import Fit, SlopeWindow
from detectors.threshold import _exact, _Key, limit_values
from hazwatch.models import AlarmType, Condition, Point, Quality, Reading, ms_to_iso

RESET_FACTOR = 1.5
"""TREND clears when the predicted crossing is further away than this × the horizon."""
REACH_WINDOWS = 3
"""A line is extended at most this many windows ahead: a two-minute wiggle of a wandering
value says nothing about ten minutes from now (measured: with 120 s windows and a 600 s
horizon, a power draw wandering ±15 kW around 120 kW "predicted" H 400 kW)."""


def _lead(remaining_ms: float) -> str:
    """How long until the predicted crossing: seconds under two minutes, else minutes.

    >>> _lead(3_485), _lead(600_000), _lead(-1)
    ('3 s', '10.0 min', '0 s')
    """
    seconds = max(0.0, remaining_ms) / 1000
    if seconds < 120:
        return f"{round(seconds)} s"
    return format_value(seconds / 60, "min", digits=3)


class TrendDetector:
    __slots__ = (
        "_horizon_ms",
        "_limits",
        "_window",
        "active",
        "point",
        "predicted_ms",
    )

    def __init__(
        self,
        point: Point,
        window: SlopeWindow | None = None,
        horizon_s: float | None = None,
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        horizon = horizon_s if horizon_s is not None else trend_horizon_s(point)
        if horizon is None or horizon <= 0:
            raise ValueError(f"{point.tag}: TREND needs a horizon > 0")
        self.point = point
        if window is None:
            seconds = roc_window_s(point)
            window = SlopeWindow(seconds if seconds is not None else 120.0)
        self._horizon_ms = shared(min(horizon, REACH_WINDOWS * window.window_s) * 1000)
        given = limit_values(point, defaults)
        self._limits = _limits(
            _exact(given["h"]), _exact(given["hh"]), _exact(given["l"]), _exact(given["ll"])
        )
        """H, HH, L, LL (``None`` where not set): one tuple for every point with the same."""
        if all(v is None for v in given.values()):
            raise ValueError(f"{point.tag}: TREND needs a limit")
        self._window = window
        self.active = False
        self.predicted_ms: int | None = None
        """When the last reliable fit predicted the next limit would be reached."""

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:  # noqa: ARG002 - the Detector protocol
        if reading.quality is Quality.BAD:
            return []
        window = self._window
        ts = reading.ts_ms
        if ts < window.due_ms:
            window.accumulate(ts, reading.value)
            return []
        if ts >= window.end_bucket_ms:
            fit = window.add(ts, reading.value)
            return [] if fit is None else self.evaluate(fit, reading)
        window.accumulate(ts, reading.value)
        return self.rejudge(reading)

    def rejudge(self, reading: Reading) -> list[Condition]:
        """Between bucket ends, once the last fit's crossing came within the horizon
        (the window's ``due_ms``): judge a fit that includes the readings so far."""
        window = self._window
        window.due_ms = window.end_bucket_ms  # judged now; evaluate may ask again
        return self.evaluate(window.refit(reading.ts_ms), reading)

    def evaluate(self, fit: Fit, reading: Reading) -> list[Condition]:
        """Judge a window that just closed (the engine shares one window with ROC)."""
        target = self._target(fit, reading.value)
        remaining = math.inf
        horizon_ms = self._horizon_ms
        if target is not None:
            crossing = fit.crossing_ms(target[1])
            remaining = crossing - reading.ts_ms
            # judge reliability only when it matters: the common fit is far from any
            # limit, and one whose crossing comes within the horizon only after the
            # next bucket end is judged again there
            window = self._window
            soon = crossing - horizon_ms < window.end_bucket_ms
            if (remaining <= horizon_ms * RESET_FACTOR or soon) and fit.reliable:
                self.predicted_ms = round(crossing)
                if remaining > horizon_ms and soon and not self.active:
                    window.due_ms = math.ceil(crossing - horizon_ms)
            else:
                remaining = math.inf
        if not self.active:
            if remaining > horizon_ms:
                return []
            self.active = True
        elif remaining <= horizon_ms * RESET_FACTOR:
            return []
        else:
            self.active = False
        point = self.point
        unit = point.unit
        if self.active:
            assert target is not None
            name, limit = target
            direction = "rising" if fit.slope > 0 else "falling"
            rate = format_value(abs(fit.slope) * 60, f"{unit}/min" if unit else "/min", digits=3)
            message = (
                f"{point.name} {direction} {rate}: {name} {format_value(limit, unit)} "
                f"predicted in {_lead(remaining)} (at {ms_to_iso(self.predicted_ms or 0)})"
            )
            limit_value: float | None = limit
        else:
            message = f"{point.name} no longer heading for a limit"
            limit_value = None
        return [
            point_condition(
                point,
                AlarmType.TREND,
                active=self.active,
                value=reading.value,
                limit=limit_value,
                ts_ms=reading.ts_ms,
                message=message,
            )
        ]

    def _target(self, fit: Fit, value: float) -> tuple[str, float] | None:
        """The next limit in the direction the line moves, not yet reached."""
        h, hh, l, ll = self._limits  # noqa: E741
        if fit.slope > 0:
            level = max(fit.value, value)
            if h is not None and level < h:
                return "H", h
            if hh is not None and level < hh:
                return "HH", hh
        elif fit.slope < 0:
            level = min(fit.value, value)
            if l is not None and level > l:
                return "L", l
            if ll is not None and level > ll:
                return "LL", ll
        return None


_Limits = tuple[float | None, float | None, float | None, float | None]


@lru_cache(maxsize=4096)
def _limits(h: _Key, hh: _Key, l: _Key, ll: _Key) -> _Limits:  # noqa: E741
    """One tuple per distinct set of limits (keys tell ``-0.0`` from ``0.0``, which an
    alarm message shows)."""
    return (
        None if h is None else h[0],
        None if hh is None else hh[0],
        None if l is None else l[0],
        None if ll is None else ll[0],
    )
