"""Scenario time: held until the run starts, then scaled; or compressed onto the wall."""

from __future__ import annotations

import time

import pytest

from simulators.timebase import ALIGN_MS, CompressedTime, ScenarioClock, aligned_start_ms


def test_scenario_clock_is_held_until_started_then_runs_at_its_speed() -> None:
    clock = ScenarioClock(40.0, start_ms=1_000_000)
    held = clock.now_ms()
    time.sleep(0.05)  # the quantity measured: wall time passing while the clock is held
    assert clock.now_ms() == held == 1_000_000
    clock.start()
    time.sleep(0.05)
    assert clock.now_s() >= 40 * 0.05
    assert clock.stamp_ms(12.5) == 1_012_500
    assert clock.scenario_s(1_012_500) == 12.5
    assert clock.wall_s_until(clock.now_s() + 40) == pytest.approx(1.0, abs=0.05)


def test_an_embedded_run_starts_on_the_hour() -> None:
    start = aligned_start_ms()
    now = time.time_ns() // 1_000_000
    assert start % ALIGN_MS == 0
    assert now - ALIGN_MS < start <= now


def test_compressed_time_stamps_scenario_seconds_at_wall_time() -> None:
    timebase = CompressedTime(10.0)
    before = time.time_ns() // 1_000_000
    timebase.start()
    assert before <= timebase.stamp_ms(0) <= before + 50
    assert timebase.stamp_ms(50) - timebase.stamp_ms(0) == 5_000  # 50 scenario s = 5 wall s
    assert timebase.wall_s_until(10) == pytest.approx(1.0, abs=0.05)


def test_speeds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScenarioClock(0)
    with pytest.raises(ValueError, match="speed"):
        CompressedTime(-1)
