"""Focused cases per detector: the edges the contract suite and properties do not name."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.chatter import ChatterGuard
from detectors.defaults import roc_window_s, stuck_s, trend_horizon_s
from detectors.electricity import SuspendedLoadDetector, default_limits, with_default_limits
from detectors.fault import FaultDetector
from detectors.roc import RocDetector
from detectors.slope import SlopeWindow
from detectors.stuck import StuckDetector
from detectors.threshold import LimitDetector
from detectors.trend import TrendDetector
from hazwatch.errors import RegistryError
from hazwatch.models import AlarmType, Condition, Point, PointKind, Quality, Reading
from hazwatch.registry import load_point_table

T0 = 1_763_820_000_000


def point(kind: PointKind = PointKind.LEVEL, **columns: float | str | None) -> Point:
    values: dict[str, object] = {"unit": "m", **columns}
    return Point(
        enterprise="E001",
        installation="MH01",
        tag="X1",
        name="X1",
        kind=kind,
        **values,  # type: ignore[arg-type]
    )


def at(value: float, s: float, quality: Quality = Quality.GOOD) -> Reading:
    return Reading("E001", "gw1", "X1", value, T0 + round(s * 1000), quality)


def feed(detector: object, signal: list[tuple[float, float]]) -> list[Condition]:
    out: list[Condition] = []
    for value, s in signal:
        r = at(value, s)
        out += detector.update(r, r.ts_ms)  # type: ignore[attr-defined]
    return out


# --- slope window ----------------------------------------------------------------


def test_slope_window_forgets_what_left_the_window_and_survives_gaps() -> None:
    window = SlopeWindow(40.0)  # buckets of 10 s
    fits = [window.add(T0 + k * 1000, 100.0 + k) for k in range(60)]
    last = [f for f in fits if f is not None][-1]
    assert last.n == 40
    assert last.slope == pytest.approx(1.0)
    assert last.reliable
    # an hour of silence: the next fit has only what came since
    fit = window.add(T0 + 3_600_000, 5.0)
    assert fit is not None
    assert fit.n == 0
    assert not fit.reliable
    for k in range(1, 30):
        window.add(T0 + 3_600_000 + k * 1000, 5.0)
    fit = window.add(T0 + 3_600_000 + 30_000, 5.0)
    assert fit is not None
    assert fit.slope == 0
    assert fit.t == 0
    assert not fit.reliable


def test_slope_window_needs_readings_spread_over_half_the_window() -> None:
    window = SlopeWindow(80.0)  # buckets of 20 s
    # ten readings packed into the last 5 s of an 80 s window: steep, but no spread
    for k in range(10):
        window.add(T0 + 75_000 + k * 500, float(k))
    fit = window.add(T0 + 80_000, 10.0)
    assert fit is not None
    assert fit.n == 10
    assert fit.slope > 0
    assert not fit.reliable


def test_slope_window_refuses_a_non_positive_window() -> None:
    with pytest.raises(ValueError, match="> 0"):
        SlopeWindow(0)


# --- ROC and TREND ---------------------------------------------------------------


def ramp(start: float, per_s: float, seconds: int, t0: float = 0) -> list[tuple[float, float]]:
    return [(start + per_s * k, t0 + k) for k in range(seconds)]


def test_roc_falls_both_ways_and_clears_below_80_percent_of_its_limit() -> None:
    roc = RocDetector(point(roc_per_min=6, roc_window_s=40))
    raised = feed(roc, ramp(50, -0.2, 60))  # falling 12 m/min
    assert [(c.type, c.active) for c in raised] == [(AlarmType.ROC, True)]
    assert "falling 12.0 m/min (ROC limit 6.0 m/min)" in raised[0].message
    # 5.4 m/min: below the limit, above 80 % of it: stays active
    assert feed(roc, ramp(38, -0.09, 60, t0=60)) == []
    cleared = feed(roc, ramp(32.6, -0.05, 60, t0=120))  # 3 m/min
    assert [(c.type, c.active) for c in cleared] == [(AlarmType.ROC, False)]


def test_roc_and_trend_need_what_they_judge() -> None:
    with pytest.raises(ValueError, match="roc_per_min"):
        RocDetector(point())
    with pytest.raises(ValueError, match="limit"):
        TrendDetector(point(trend_horizon_s=60))
    with pytest.raises(ValueError, match="horizon"):
        TrendDetector(point(h=1.0, trend_horizon_s=0))


def test_trend_warns_of_l_when_falling_then_ll_past_l_and_clears_when_it_turns() -> None:
    trend = TrendDetector(point(l=10.0, ll=5.0, roc_window_s=40, trend_horizon_s=60))
    warned = feed(trend, ramp(30, -0.25, 50))  # reaches L at 80 s
    assert [(c.active, c.limit) for c in warned] == [(True, 10.0)]
    assert "falling 15.0 m/min: L 10.0 m predicted in" in warned[0].message
    assert trend.predicted_ms == T0 + 80_000
    # past L, still falling: now heading for LL, within the horizon: still active
    assert feed(trend, ramp(17.5, -0.25, 50, t0=50)) == []
    # flat at 6: no longer heading anywhere
    cleared = feed(trend, [(6.0, 100 + k) for k in range(60)])
    assert [(c.active, c.limit) for c in cleared] == [(False, None)]


# --- FAULT, STUCK, SUSPENDED_LOAD ------------------------------------------------------


def test_fault_range_is_inclusive_and_bad_quality_faults_without_a_range() -> None:
    fault = FaultDetector(point(min=0, max=10))
    assert feed(fault, [(0.0, 0), (10.0, 1)]) == []
    [raised] = feed(fault, [(-0.001, 2)])
    assert raised.active
    assert "outside the instrument range [0.0, 10.0] m" in raised.message
    no_range = FaultDetector(point())
    assert feed(no_range, [(1e12, 0)]) == []
    [bad] = no_range.update(at(1.0, 1, Quality.BAD), T0)
    assert "quality bad" in bad.message
    # uncertain is not bad
    assert [c.active for c in no_range.update(at(1.0, 2, Quality.UNCERTAIN), T0)] == [False]


def test_stuck_ignores_bad_readings_and_rises_again_after_moving() -> None:
    stuck = StuckDetector(point(), 10)
    assert stuck.update(at(3.0, 0), T0) == []
    assert stuck.update(at(9.9, 5, Quality.BAD), T0) == []  # not a move
    assert [c.active for c in feed(stuck, [(3.0, 10)])] == [True]
    assert [c.active for c in feed(stuck, [(3.1, 11)])] == [False]
    assert feed(stuck, [(3.1, 20)]) == []  # 9 s: not yet
    assert [c.active for c in feed(stuck, [(3.1, 21)])] == [True]


def test_suspended_load_on_delay_restarts_when_the_load_drops() -> None:
    load = SuspendedLoadDetector(point(PointKind.POWER, unit="kW"), standby=5, delay_s=10)
    assert feed(load, [(50, 0), (50, 9), (4, 9.5), (50, 10), (50, 19)]) == []
    [raised] = feed(load, [(50, 20)])
    assert (raised.type, raised.active, raised.limit) == (AlarmType.SUSPENDED_LOAD, True, 5)


def test_default_limits_only_for_points_without_limits_in_the_defaults_unit() -> None:
    cable = point(PointKind.CABLE_TEMP, unit="degC")
    assert default_limits(cable) == {"h": 70.0, "hh": 90.0}
    assert with_default_limits(cable).hh == 90.0
    assert default_limits(point(PointKind.CABLE_TEMP, unit="degC", h=60)) is None
    assert default_limits(point(PointKind.CABLE_TEMP, unit="degF")) is None
    assert default_limits(point(PointKind.PRESSURE, unit="kPa")) is None
    limits = LimitDetector(cable, default_limits(cable))
    assert [c.type for c in feed(limits, [(95.0, 0)])] == [AlarmType.H, AlarmType.HH]


# --- defaults, columns, chattering ---------------------------------------------------


def test_defaults_per_kind_and_overrides() -> None:
    assert stuck_s(point(PointKind.PRESSURE)) == 1800
    assert stuck_s(point(PointKind.PRESSURE, stuck_s=0)) is None
    assert stuck_s(point(PointKind.LEVEL)) is None
    assert stuck_s(point(PointKind.STATE, stuck_s=60)) is None  # never for states
    assert roc_window_s(point(PointKind.GAS_LEL)) == 60
    assert roc_window_s(point(PointKind.GAS_LEL, interval_s=5)) == 120  # 24 readings
    assert roc_window_s(point(PointKind.LEVEL, interval_s=180)) == 24 * 180
    assert roc_window_s(point(PointKind.GAS_LEL, interval_s=5, roc_window_s=30)) == 30
    assert roc_window_s(point(PointKind.STATE)) is None
    assert trend_horizon_s(point(PointKind.LEVEL)) == 600
    assert trend_horizon_s(point(PointKind.LEVEL, interval_s=5)) == 600
    assert trend_horizon_s(point(PointKind.LEVEL, interval_s=180)) == 3600  # 20 readings
    assert trend_horizon_s(point(PointKind.LEVEL, interval_s=180, trend_horizon_s=900)) == 900
    assert trend_horizon_s(point(PointKind.LEVEL, trend_horizon_s=0)) is None


HEADER = (
    "installation,tag,name,kind,unit,on_delay_s,off_delay_s,stuck_s,roc_window_s,trend_horizon_s"
)


def test_the_point_table_takes_the_detector_columns(tmp_path: Path) -> None:
    table = tmp_path / "p.csv"
    table.write_text(f"{HEADER}\nU1,T1,T,level,m,5,2.5,0,60,\n")
    [p] = load_point_table(table, "E001")
    assert (p.on_delay_s, p.off_delay_s, p.stuck_s, p.roc_window_s, p.trend_horizon_s) == (
        5.0,
        2.5,
        0.0,
        60.0,
        None,
    )


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("U1,T1,T,level,m,-1,,,,", "on_delay_s", ">= 0"),
        ("U1,T1,T,level,m,,,,0,", "roc_window_s", "> 0"),
        ("U1,T1,T,level,m,,,-5,,", "stuck_s", ">= 0"),
    ],
)
def test_the_detector_columns_are_checked(
    tmp_path: Path, row: str, column: str, message: str
) -> None:
    table = tmp_path / "p.csv"
    table.write_text(f"{HEADER}\n{row}\n")
    with pytest.raises(RegistryError, match=message) as caught:
        load_point_table(table, "E001")
    assert column in str(caught.value)


def test_chatter_guard_counts_an_episode_once_and_forgets_quiet_points() -> None:
    guard = ChatterGuard(flips=3, window_s=60)
    key, point = ("E001", "X1", "H"), ("E001", "X1")
    assert guard.record([key, key], 0) == []
    assert guard.record([key], 10_000) == [point]
    assert guard.record([key], 20_000) == []  # same episode
    assert guard.record([key], 200_000) == []  # the old activations are gone
    guard.expire(261_000)
    assert guard.chattering(261_000) == []
    assert guard.record([key, key, key], 300_000) == [point]  # a new episode


def test_chatter_guard_counts_activations_of_one_alarm_not_types_together() -> None:
    guard = ChatterGuard(flips=3, window_s=60)
    # Up through H and HH, twice: each alarm activated twice, the point not chattering.
    excursion = [("E001", "LT", "H"), ("E001", "LT", "HH")]
    assert guard.record(excursion, 0) == []
    assert guard.record(excursion, 20_000) == []
    assert guard.chattering(30_000) == []
    assert guard.record([("E001", "LT", "HH")], 40_000) == [("E001", "LT")]
    [found] = guard.chattering(50_000)
    assert (found.tag, found.type, found.flips, found.since_ms) == ("LT", "HH", 3, 0)
    with pytest.raises(ValueError, match="2 flips"):
        ChatterGuard(flips=1)
