"""The contract every detector keeps, checked against each of them with the same inputs.

- pure: the same readings (and ticks) at the same times give the same conditions, and
  no clock is read — the time comes from the caller;
- only changes: per (point, type) the conditions alternate active, inactive, active...
  starting with active — never a repeat of the current state;
- conditions name the point they are about (or, for GATEWAY_OFFLINE, its gateway).
"""

from __future__ import annotations

import doctest
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import detectors.chatter
import detectors.electricity
import detectors.fault
import detectors.roc
import detectors.slope
import detectors.stale
import detectors.stuck
import detectors.trend
from detectors.electricity import SuspendedLoadDetector
from detectors.engine import DetectorEngine
from detectors.fault import FaultDetector
from detectors.roc import RocDetector
from detectors.stale import StaleDetector
from detectors.stuck import StuckDetector
from detectors.threshold import LimitDetector
from detectors.trend import TrendDetector
from hazwatch.models import (
    AlarmType,
    Condition,
    Enterprise,
    EnterpriseStatus,
    Installation,
    Point,
    PointKind,
    Quality,
    Reading,
    Registry,
)
from hazwatch.settings import DetectorSettings

T0 = 1_763_820_000_000

LEVEL = Point(
    enterprise="E001",
    installation="MH01",
    tag="LT1",
    name="Level 1",
    kind=PointKind.LEVEL,
    unit="m",
    min=0,
    max=20,
    ll=1,
    l=2,
    h=15,
    hh=18,
    deadband=0.2,
    roc_per_min=3,
    roc_window_s=16,
    stuck_s=6,
    trend_horizon_s=30,
    on_delay_s=2,
    off_delay_s=1,
    interval_s=1,
)
POWER = LEVEL.model_copy(update={"tag": "P1", "kind": PointKind.POWER, "unit": "kW"})


class _Engine:
    """The engine as a detector of its registry's points."""

    def __init__(self) -> None:
        installation = Installation(id="MH01", name="U", grade=1, points=(LEVEL, POWER))
        enterprise = Enterprise(
            id="E001",
            name="E",
            grid="G",
            status=EnterpriseStatus.SUSPENDED,
            installations=(installation,),
        )
        self.engine = DetectorEngine(
            Registry(enterprises={"E001": enterprise}),
            DetectorSettings(stale_factor=3, suspended_standby=5, suspended_delay_s=3),
            T0,
        )

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:
        return self.engine.update([reading], now_ms)

    def tick(self, now_ms: int) -> list[Condition]:
        return self.engine.tick(now_ms)


FACTORIES: dict[str, Callable[[], Any]] = {
    "limits": lambda: LimitDetector(LEVEL),
    "limits-no-delay": lambda: LimitDetector(
        LEVEL.model_copy(update={"on_delay_s": None, "off_delay_s": None})
    ),
    "fault": lambda: FaultDetector(LEVEL),
    "roc": lambda: RocDetector(LEVEL),
    "trend": lambda: TrendDetector(LEVEL),
    "stuck": lambda: StuckDetector(LEVEL, 6),
    "suspended-load": lambda: SuspendedLoadDetector(POWER, 5, 3),
    "stale": lambda: StaleDetector([LEVEL], 3, T0),
    "engine": _Engine,
}


@dataclass(frozen=True)
class Step:
    dt_ms: int
    value: float | None  # None: a clock tick, no reading
    quality: Quality
    gateway: str


values = st.one_of(
    st.sampled_from([0.0, 1.0, 1.9, 2.1, 5.0, 14.9, 15.0, 15.1, 17.9, 18.5, 25.0, -1.0]),
    st.floats(min_value=-5, max_value=25, allow_nan=False),
)
steps = st.lists(
    st.builds(
        Step,
        dt_ms=st.integers(min_value=0, max_value=4_000),
        value=st.none() | values,
        quality=st.sampled_from([Quality.GOOD, Quality.GOOD, Quality.UNCERTAIN, Quality.BAD]),
        gateway=st.sampled_from(["gw1", "gw1", "gw2"]),
    ),
    max_size=120,
)


def run(detector: Any, script: list[Step], tag: str) -> list[list[Condition]]:
    out = []
    now = T0
    for step in script:
        now += step.dt_ms
        if step.value is None:
            out.append(detector.tick(now) if hasattr(detector, "tick") else [])
        else:
            reading = Reading("E001", step.gateway, tag, step.value, now, step.quality)
            out.append(detector.update(reading, now))
    return out


def _no_clock() -> ExitStack:
    stack = ExitStack()
    for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter"):
        stack.enter_context(
            mock.patch.object(time, name, side_effect=AssertionError(f"clock read: {name}"))
        )
    return stack


@pytest.mark.parametrize("name", sorted(FACTORIES))
@settings(max_examples=60, deadline=None)
@given(script=steps)
def test_the_detector_contract(name: str, script: list[Step]) -> None:
    factory = FACTORIES[name]
    # single-point detectors trust their caller (the engine) to route readings to them
    tags = {"engine": ("LT1", "P1"), "stale": ("LT1", "P1"), "suspended-load": ("P1",)}
    for tag in tags.get(name, ("LT1",)):
        with _no_clock():
            first = run(factory(), script, tag)
            second = run(factory(), script, tag)
        assert first == second  # pure: same inputs, same outputs
        state: dict[tuple[str, AlarmType], bool] = {}
        for changes in first:
            for c in changes:
                key = (c.tag, c.type)
                assert state.get(key, False) is not c.active, (key, c.active)  # only changes
                state[key] = c.active
                assert c.enterprise == "E001"
                if c.type is AlarmType.GATEWAY_OFFLINE:
                    assert c.tag in ("gw1", "gw2")
                else:  # timed detectors watch every point, whichever is fed
                    assert c.tag == tag or (name in ("engine", "stale") and c.tag in ("LT1", "P1"))
                    assert c.installation == "MH01"
                assert c.message


def test_doctests_run() -> None:
    modules = (
        detectors.chatter,
        detectors.electricity,
        detectors.fault,
        detectors.roc,
        detectors.slope,
        detectors.stale,
        detectors.stuck,
        detectors.trend,
    )
    for module in modules:
        result = doctest.testmod(module)
        assert result.attempted > 0, module.__name__
        assert result.failed == 0, module.__name__
