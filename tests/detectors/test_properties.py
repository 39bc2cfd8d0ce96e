"""The issue's properties, checked by hypothesis.

- hysteresis never flaps inside the deadband (also with delays; the plain case is in
  test_threshold.py);
- an on-delay never fires on a shorter excursion (and does fire on a long enough one);
- a flat noisy signal never gives TREND or ROC — nor does one outlier of any size;
- a linear ramp gives TREND before H is crossed, predicting the crossing within 10 %,
  and as soon as the crossing comes within reach — the horizon, or 3 windows if less —
  (one reading later at most): TREND is judged between bucket ends too.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from detectors.roc import RocDetector
from detectors.threshold import LimitDetector
from detectors.trend import REACH_WINDOWS, TrendDetector
from hazwatch.models import AlarmType, Condition, Point, PointKind, Reading

T0 = 1_763_820_000_000


def level(**columns: Any) -> Point:
    return Point(
        enterprise="E001",
        installation="MH01",
        tag="LT1",
        name="Level 1",
        kind=PointKind.LEVEL,
        unit="m",
        **columns,
    )


def at(value: float, ts_ms: int) -> Reading:
    return Reading("E001", "gw1", "LT1", value, ts_ms)


@settings(max_examples=200)
@given(
    h=st.floats(min_value=-1e4, max_value=1e4),
    deadband=st.floats(min_value=1e-2, max_value=100),
    off_delay_s=st.sampled_from([None, 0.5, 5.0]),
    data=st.data(),
)
def test_hysteresis_with_delays_never_flaps_inside_the_deadband(
    h: float, deadband: float, off_delay_s: float | None, data: st.DataObject
) -> None:
    detector = LimitDetector(level(h=h, deadband=deadband, off_delay_s=off_delay_s))
    assert [c.type for c in detector.update(at(h, T0), T0)] == [AlarmType.H]
    inside = st.floats(min_value=h - deadband, max_value=h, exclude_min=True)
    signal = data.draw(st.lists(st.tuples(inside, st.integers(0, 10_000)), max_size=50))
    ts = T0
    for value, dt in signal:
        ts += dt
        assert detector.update(at(value, ts), ts) == []
    assert detector.active == {AlarmType.H}


@settings(max_examples=200)
@given(
    on_delay_s=st.floats(min_value=0.5, max_value=600),
    h=st.floats(min_value=-1e3, max_value=1e3),
    gaps=st.lists(st.integers(min_value=1, max_value=60_000), min_size=1, max_size=40),
    # one value per reading of the excursion: its start and up to 40 gaps
    above=st.lists(st.floats(min_value=0, max_value=1e3), min_size=41, max_size=41),
)
def test_on_delay_never_fires_on_a_shorter_excursion(
    on_delay_s: float, h: float, gaps: list[int], above: list[float]
) -> None:
    delay_ms = round(on_delay_s * 1000)
    detector = LimitDetector(level(h=h, on_delay_s=on_delay_s))
    ts = T0
    assert detector.update(at(h - 1, ts), ts) == []
    start = ts + 1
    excursion = [start]
    for gap in gaps:  # the readings above H, all within less than the delay
        if excursion[-1] + gap - start >= delay_ms:
            break
        excursion.append(excursion[-1] + gap)
    for n, ts in enumerate(excursion):
        assert detector.update(at(h + above[n], ts), ts) == [], (n, ts - start)
    ts += 1
    assert detector.update(at(h - 1, ts), ts) == []  # back below: the excursion ended
    # the same excursion, held for the delay, does fire — once
    changes: list[Condition] = []
    for k in range(3):
        ts_k = ts + 1 + k * delay_ms // 2
        changes += detector.update(at(h + 1, ts_k), ts_k)
    assert [(c.type, c.active) for c in changes] == [(AlarmType.H, True)]


@st.composite
def flat_noisy(draw: st.DrawFn) -> tuple[Point, list[Reading]]:
    """A flat signal with bounded noise, its H far enough above for the worst slope the
    noise can fake over a reliable window (|slope| <= 6 a / W), ROC limit likewise."""
    dt_ms = draw(st.integers(min_value=500, max_value=5_000))
    window_s = draw(st.floats(min_value=16 * dt_ms / 1000, max_value=600))
    horizon_s = draw(st.floats(min_value=10, max_value=1800))
    a = draw(st.floats(min_value=1e-3, max_value=10))
    level_c = draw(st.floats(min_value=-1e3, max_value=1e3))
    worst_slope = 6 * a / window_s
    margin = a + worst_slope * (window_s / 2 + horizon_s + dt_ms / 1000)
    point = level(
        h=level_c + 1.2 * margin,
        l=level_c - 1.2 * margin,
        roc_per_min=1.2 * worst_slope * 60,
        roc_window_s=window_s,
        trend_horizon_s=horizon_s,
    )
    count = round(3 * window_s * 1000 / dt_ms)
    noise = draw(
        st.lists(
            st.floats(min_value=-a, max_value=a) | st.sampled_from([-a, a]),
            min_size=count,
            max_size=count,
        )
    )
    readings = [at(level_c + e, T0 + k * dt_ms) for k, e in enumerate(noise)]
    return point, readings


@settings(max_examples=150, deadline=None)
@given(case=flat_noisy())
def test_a_flat_noisy_signal_never_gives_trend_or_roc(case: tuple[Point, list[Reading]]) -> None:
    point, readings = case
    roc, trend = RocDetector(point), TrendDetector(point)
    for r in readings:
        assert roc.update(r, r.ts_ms) == []
        assert trend.update(r, r.ts_ms) == []


@settings(max_examples=150, deadline=None)
@given(
    dt_ms=st.integers(min_value=200, max_value=5_000),
    n=st.integers(min_value=30, max_value=300),
    spike=st.floats(min_value=-1e6, max_value=1e6),
    where=st.floats(min_value=0, max_value=1),
)
def test_one_outlier_of_any_size_never_gives_roc_or_trend(
    dt_ms: int, n: int, spike: float, where: float
) -> None:
    window_s = 16 * dt_ms / 1000
    point = level(h=50.0, hh=60.0, roc_per_min=1e-6, roc_window_s=window_s, trend_horizon_s=1e6)
    roc, trend = RocDetector(point), TrendDetector(point)
    outlier = int(where * (n - 1))
    for k in range(n):
        r = at(10.0 + (spike if k == outlier else 0.0), T0 + k * dt_ms)
        assert roc.update(r, r.ts_ms) == []
        assert trend.update(r, r.ts_ms) == []


@settings(max_examples=200, deadline=None)
@given(
    dt_ms=st.integers(min_value=500, max_value=10_000),
    window_factor=st.floats(min_value=16, max_value=60),
    horizon_factor=st.floats(min_value=0.5, max_value=4),
    start=st.floats(min_value=-1e3, max_value=1e3),
    slope_per_s=st.floats(min_value=1e-3, max_value=10),
)
def test_a_linear_ramp_gives_trend_before_h_with_a_prediction_within_10_percent(
    dt_ms: int, window_factor: float, horizon_factor: float, start: float, slope_per_s: float
) -> None:
    window_s = window_factor * dt_ms / 1000
    horizon_s = horizon_factor * window_s + 2 * dt_ms / 1000
    assume(horizon_s >= 10)
    to_h_s = 2 * window_s + horizon_s  # a full window of ramp before the warning
    h = start + slope_per_s * to_h_s
    point = level(h=h, roc_window_s=window_s, trend_horizon_s=horizon_s)
    trend = TrendDetector(point)
    crossing_ms = T0 + to_h_s * 1000
    warned: list[tuple[int, int]] = []
    k = 0
    while (ts := T0 + k * dt_ms) < crossing_ms:
        for c in trend.update(at(start + slope_per_s * k * dt_ms / 1000, ts), ts):
            assert (c.type, c.active, c.limit) == (AlarmType.TREND, True, h)
            assert trend.predicted_ms is not None
            warned.append((ts, trend.predicted_ms))
        k += 1
    assert len(warned) == 1, "TREND before H is crossed, once"
    [(ts, predicted_ms)] = warned
    reach_ms = min(horizon_s, REACH_WINDOWS * window_s) * 1000
    assert crossing_ms - ts <= reach_ms + 1
    assert crossing_ms - ts > reach_ms - dt_ms - 1, "not a bucket late"
    assert abs(predicted_ms - crossing_ms) <= 0.1 * (crossing_ms - ts)
