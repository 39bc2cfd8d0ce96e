"""ScaledClock: time for scenario runs and replays, faster than the wall."""

from __future__ import annotations

import time

import pytest

from hazwatch.clock import HeldClock, ScaledClock


def test_scaled_clock_runs_rate_times_as_fast_from_its_start() -> None:
    clock = ScaledClock(50.0, start_ms=1_000_000)
    wall_start = time.monotonic()
    first = clock.now_ms()
    time.sleep(0.2)  # the quantity measured: wall time passing, not synchronisation
    elapsed_wall_ms = (time.monotonic() - wall_start) * 1000
    advanced = clock.now_ms() - first
    assert first >= 1_000_000
    assert 50 * 200 <= advanced <= 50 * (elapsed_wall_ms + 5)
    assert clock.wall_s_until(clock.now_ms() + 50_000) == pytest.approx(1.0, abs=0.05)


def test_scaled_clock_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        ScaledClock(0)


def test_held_clock_stands_still_until_started() -> None:
    clock = HeldClock(100.0, start_ms=5_000)
    time.sleep(0.05)  # wall time passing is what is under test
    assert clock.now_ms() == 5_000
    assert clock.wall_s_until(6_000) == pytest.approx(0.01)
    clock.start()
    time.sleep(0.05)
    assert clock.now_ms() >= 5_000 + 100 * 50
