"""LimitDetector: limits, deadband hysteresis, quality, messages — and properties."""

from __future__ import annotations

import doctest
from collections.abc import Iterable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import detectors.base
import detectors.stale
import detectors.threshold
from detectors.threshold import LimitDetector
from hazwatch.models import AlarmType, Condition, Point, PointKind, Quality, Reading

H, HH, L, LL = AlarmType.H, AlarmType.HH, AlarmType.L, AlarmType.LL
T0 = 1_763_820_000_000


def level_point(**limits: float | None) -> Point:
    values: dict[str, Any] = {"ll": 0.5, "l": 1.0, "h": 10.5, "hh": 11.0, "deadband": 0.05}
    values.update(limits)
    return Point(
        enterprise="E001",
        installation="MH01",
        tag="TK101_LT",
        name="Tank 101 level",
        kind=PointKind.LEVEL,
        unit="m",
        **values,
    )


def reading(value: float, n: int = 0, quality: Quality = Quality.GOOD) -> Reading:
    return Reading("E001", "gw1", "TK101_LT", value, T0 + n * 1000, quality)


def feed(detector: LimitDetector, values: Iterable[float]) -> list[list[tuple[AlarmType, bool]]]:
    """The changes each value caused, as (type, active) pairs."""
    out = []
    for n, value in enumerate(values):
        out.append([(c.type, c.active) for c in detector.update(reading(value, n), T0 + n)])
    return out


def test_crossing_h_then_hh_activates_h_then_hh() -> None:
    detector = LimitDetector(level_point())
    assert feed(detector, [5.0, 10.6, 11.2]) == [[], [(H, True)], [(HH, True)]]
    assert detector.active == {H, HH}


def test_a_jump_raises_upwards_and_clears_downwards() -> None:
    detector = LimitDetector(level_point())
    assert feed(detector, [12.0, 5.0]) == [
        [(H, True), (HH, True)],
        [(HH, False), (H, False)],
    ]


def test_inside_the_deadband_nothing_changes_and_below_it_clears() -> None:
    detector = LimitDetector(level_point())
    # H at 10.5, deadband 0.05: active at >= 10.5, inactive only below 10.45
    assert feed(detector, [10.5, 10.46, 10.499, 10.451, 10.44]) == [
        [(H, True)],
        [],
        [],
        [],
        [(H, False)],
    ]


def test_hh_clears_below_hh_minus_deadband_while_h_stays() -> None:
    detector = LimitDetector(level_point())
    assert feed(detector, [11.1, 10.96, 10.951, 10.94]) == [
        [(H, True), (HH, True)],
        [],
        [],
        [(HH, False)],
    ]
    assert detector.active == {H}


def test_low_limits_are_symmetric() -> None:
    detector = LimitDetector(level_point())
    # L 1.0 / LL 0.5, deadband 0.05: LL clears above 0.55, L above 1.05
    assert feed(detector, [2.0, 1.0, 0.4, 0.54, 0.56, 1.04, 1.06]) == [
        [],
        [(L, True)],
        [(LL, True)],
        [],
        [(LL, False)],
        [],
        [(L, False)],
    ]


def test_bad_quality_readings_are_ignored_by_limits() -> None:
    detector = LimitDetector(level_point())
    assert detector.update(reading(11.5, quality=Quality.BAD), T0) == []
    assert detector.active == frozenset()
    assert [c.type for c in detector.update(reading(11.5, 1), T0)] == [H, HH]
    # a bad reading inside the limits does not clear them either
    assert detector.update(reading(5.0, 2, quality=Quality.BAD), T0) == []
    assert detector.active == {H, HH}
    # uncertain quality still counts
    assert [c.type for c in detector.update(reading(5.0, 3, Quality.UNCERTAIN), T0)] == [HH, H]


def test_conditions_carry_the_reading_and_say_what_happened() -> None:
    detector = LimitDetector(level_point())
    raised = detector.update(reading(11.2, 3), T0 + 99_999)
    assert raised[1] == Condition(
        enterprise="E001",
        installation="MH01",
        tag="TK101_LT",
        type=HH,
        active=True,
        value=11.2,
        limit=11.0,
        ts_ms=T0 + 3000,
        message="Tank 101 level 11.2 m above HH 11.0 m",
    )
    cleared = detector.update(reading(10.4, 4), T0 + 99_999)
    assert [c.message for c in cleared] == [
        "Tank 101 level 10.4 m back below HH 11.0 m",
        "Tank 101 level 10.4 m back below H 10.5 m",
    ]
    low = detector.update(reading(0.3, 5), T0)
    assert [c.message for c in low] == [
        "Tank 101 level 0.3 m below L 1.0 m",
        "Tank 101 level 0.3 m below LL 0.5 m",
    ]
    assert [c.message for c in detector.update(reading(1.2, 6), T0)] == [
        "Tank 101 level 1.2 m back above LL 0.5 m",
        "Tank 101 level 1.2 m back above L 1.0 m",
    ]


def test_no_deadband_means_zero() -> None:
    detector = LimitDetector(level_point(deadband=None, hh=None, l=None, ll=None))
    assert feed(detector, [10.5, 10.5, 10.499_999]) == [[(H, True)], [], [(H, False)]]


def test_only_the_limits_that_are_set_exist() -> None:
    detector = LimitDetector(level_point(hh=None, ll=None))
    assert feed(detector, [50.0, -50.0]) == [[(H, True)], [(H, False), (L, True)]]


def test_doctests_run() -> None:
    for module in (detectors.base, detectors.threshold, detectors.stale):
        result = doctest.testmod(module)
        assert result.attempted > 0, module.__name__
        assert result.failed == 0, module.__name__


# --- properties -----------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(
    h=finite,
    deadband=st.floats(min_value=1e-3, max_value=100),
    data=st.data(),
)
def test_hysteresis_never_flaps_inside_the_deadband(
    h: float, deadband: float, data: st.DataObject
) -> None:
    detector = LimitDetector(level_point(h=h, hh=None, l=None, ll=None, deadband=deadband))
    assert [c.type for c in detector.update(reading(h), T0)] == [H]
    inside = st.floats(min_value=h - deadband, max_value=h, exclude_min=True)
    signal = data.draw(st.lists(inside, max_size=50))
    for n, value in enumerate(signal, start=1):
        assert detector.update(reading(value, n), T0) == [], value
    assert detector.active == {H}


@st.composite
def limited_point(draw: st.DrawFn) -> Point:
    values = sorted(draw(st.lists(finite, min_size=4, max_size=4)))
    keep = draw(st.lists(st.booleans(), min_size=4, max_size=4))
    limits = {
        name: value if on else None
        for name, value, on in zip(("ll", "l", "h", "hh"), values, keep, strict=True)
    }
    deadband = draw(st.none() | st.floats(min_value=0, max_value=1e3))
    return level_point(deadband=deadband, **limits)


@given(
    point=limited_point(),
    signal=st.lists(st.tuples(finite, st.sampled_from(list(Quality))), max_size=80),
)
def test_changes_alternate_per_type_and_follow_the_rule(
    point: Point, signal: list[tuple[float, Quality]]
) -> None:
    detector = LimitDetector(point)
    deadband = point.deadband or 0.0
    high = {H: point.h, HH: point.hh}
    low = {L: point.l, LL: point.ll}
    expected = dict.fromkeys((H, HH, L, LL), False)
    last_change: dict[AlarmType, bool] = {}
    for n, (value, quality) in enumerate(signal):
        changes = detector.update(reading(value, n, quality), T0 + n)
        for change in changes:
            # per type: active, inactive, active, ... — never twice the same
            assert last_change.get(change.type, False) is not change.active
            last_change[change.type] = change.active
        if quality is not Quality.BAD:  # the reference rule, per limit
            for t, limit in high.items():
                if limit is not None:
                    expected[t] = value >= limit or (expected[t] and value >= limit - deadband)
            for t, limit in low.items():
                if limit is not None:
                    expected[t] = value <= limit or (expected[t] and value <= limit + deadband)
        assert detector.active == {t for t, on in expected.items() if on}
        assert {c.type for c in changes} <= {H, HH, L, LL}
