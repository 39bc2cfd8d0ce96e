"""Per-kind defaults for the detector columns of the point table (docs/detectors.md).

An empty cell means "the kind's default"; ``0`` switches a detector off where that makes
sense (``stuck_s``, ``trend_horizon_s``). Defaults are conservative: a detector that
cries wolf is worse than one that is off, because operators stop looking.

- ``stuck_s``: off for kinds whose value legitimately sits still for hours (a tank at
  rest, no gas, no load, a state), on for instruments that always wander a little.
- ``roc_window_s``: the sliding window of the least-squares slope behind ROC and TREND.
  It is widened to hold at least :data:`MIN_READINGS_PER_WINDOW` expected readings when
  the point has ``interval_s`` and no explicit window.
- ``trend_horizon_s``: warn when a limit is predicted within this time. Widened to
  :data:`HORIZON_READINGS` expected readings when the point has ``interval_s`` and no
  explicit horizon: a point read every 3 minutes (a DCS historian, an analyser) gets an
  hour's warning, not ten minutes it could never see coming in three samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from hazwatch.models import Point, PointKind

MIN_READINGS_PER_WINDOW = 24
"""A default slope window holds at least this many expected readings (6 per bucket): a
fit needs 6 readings over half the window, so a point read every 3 minutes says
something after 36 minutes — 48 readings made that 2.4 hours."""
HORIZON_READINGS = 20
"""A default TREND horizon spans at least this many expected readings."""


@dataclass(frozen=True, slots=True)
class KindDefaults:
    stuck_s: float | None
    """``None``: STUCK off for this kind unless the point sets ``stuck_s``."""
    roc_window_s: float | None
    """``None``: no slope (no ROC, no TREND) for this kind — states."""
    trend_horizon_s: float | None


_HOUR = 3600.0
_ANALOG = KindDefaults(stuck_s=None, roc_window_s=120.0, trend_horizon_s=600.0)

DEFAULTS: dict[PointKind, KindDefaults] = {
    PointKind.TEMPERATURE: KindDefaults(_HOUR, 300.0, 600.0),
    PointKind.PRESSURE: KindDefaults(1800.0, 120.0, 600.0),
    PointKind.LEVEL: KindDefaults(None, 120.0, 600.0),
    PointKind.FLOW: KindDefaults(1800.0, 120.0, 600.0),
    PointKind.GAS_LEL: KindDefaults(None, 60.0, 300.0),
    PointKind.GAS_TOXIC: KindDefaults(None, 60.0, 300.0),
    PointKind.RESIDUAL_CURRENT: _ANALOG,
    PointKind.CABLE_TEMP: KindDefaults(_HOUR, 300.0, 600.0),
    PointKind.POWER: _ANALOG,
    PointKind.CURRENT: _ANALOG,
    PointKind.VOLTAGE: KindDefaults(_HOUR, 120.0, 600.0),
    PointKind.STATE: KindDefaults(None, None, None),
    PointKind.OTHER: _ANALOG,
}


def _positive_or_off(value: float | None, default: float | None) -> float | None:
    chosen = default if value is None else value
    return chosen or None


def stuck_s(point: Point) -> float | None:
    """STUCK window of a point in seconds; ``None`` = off (always off for states)."""
    if point.kind is PointKind.STATE:
        return None
    return _positive_or_off(point.stuck_s, DEFAULTS[point.kind].stuck_s)


def roc_window_s(point: Point) -> float | None:
    """The slope window of a point; ``None`` for states."""
    default = DEFAULTS[point.kind].roc_window_s
    if point.kind is PointKind.STATE or default is None:
        return None
    if point.roc_window_s is not None:
        return point.roc_window_s
    if point.interval_s is not None:
        return max(default, MIN_READINGS_PER_WINDOW * point.interval_s)
    return default


def trend_horizon_s(point: Point) -> float | None:
    """How far ahead TREND looks; ``None`` = off."""
    if point.kind is PointKind.STATE:
        return None
    default = DEFAULTS[point.kind].trend_horizon_s
    if default is not None and point.interval_s is not None:
        default = max(default, HORIZON_READINGS * point.interval_s)
    return _positive_or_off(point.trend_horizon_s, default)


def on_delay_ms(point: Point) -> int:
    return round((point.on_delay_s or 0.0) * 1000)


def off_delay_ms(point: Point) -> int:
    return round((point.off_delay_s or 0.0) * 1000)
