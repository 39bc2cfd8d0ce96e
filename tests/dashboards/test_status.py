"""Risk colours and limit states as the console shows them."""

from __future__ import annotations

import pytest

from dashboards.status import limit_state, risk_colour
from hazwatch.models import Alarm, AlarmState, AlarmType, Point, PointKind, Priority


def _alarm(priority: Priority) -> Alarm:
    return Alarm(
        id=f"A-{priority.value}",
        enterprise="E001",
        installation="MH01",
        tag="TK101_LT",
        type=AlarmType.H,
        priority=priority,
        state=AlarmState.ACTIVE_UNACK,
        value=1.0,
        limit=1.0,
        raised_at="2025-11-22T14:00:00.000Z",
        cleared_at=None,
        message="m",
    )


@pytest.mark.parametrize(
    ("priorities", "colour"),
    [
        ([], "blue"),
        ([Priority.LOW], "yellow"),
        ([Priority.MEDIUM, Priority.LOW], "yellow"),
        ([Priority.LOW, Priority.HIGH, Priority.MEDIUM], "orange"),
        ([Priority.HIGH, Priority.CRITICAL, Priority.LOW], "red"),
    ],
)
def test_risk_colour_is_the_worst_open_priority(priorities: list[Priority], colour: str) -> None:
    assert risk_colour(_alarm(p) for p in priorities) == colour


TANK = Point(
    enterprise="E001",
    installation="MH01",
    tag="T",
    name="Tank",
    kind=PointKind.LEVEL,
    ll=0.5,
    l=1.0,
    h=10.5,
    hh=11.0,
)


@pytest.mark.parametrize(
    ("value", "state"),
    [
        (0.5, "LL"),
        (0.51, "L"),
        (1.0, "L"),
        (1.01, "normal"),
        (10.49, "normal"),
        (10.5, "H"),
        (10.99, "H"),
        (11.0, "HH"),
        (50.0, "HH"),
    ],
)
def test_limit_state_reaches_a_limit_at_equality(value: float, state: str) -> None:
    assert limit_state(TANK, value) == state


def test_points_without_limits_are_always_normal() -> None:
    valve = Point(
        enterprise="E001", installation="MH02", tag="V", name="Valve", kind=PointKind.STATE
    )
    assert limit_state(valve, 1.0) == "normal"
    only_high = Point(
        enterprise="E001", installation="MH01", tag="G", name="Gas", kind=PointKind.GAS_LEL, h=25
    )
    assert limit_state(only_high, -5.0) == "normal"
    assert limit_state(only_high, 25.0) == "H"
