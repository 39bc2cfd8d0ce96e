"""Scenario time: when a scenario second is published, and the timestamp it carries.

Two ways to run a timeline faster than real time (docs/scenarios.md, "Time"):

- :class:`ScenarioClock` — **faithful**. The service runs on this clock too (it is a
  :class:`hazwatch.clock.Clock`), a :class:`~hazwatch.clock.HeldClock` of the run's
  speed. Scenario second ``t`` is stamped ``start_ms + t·1000`` and published when the
  clock reads that, so every time-driven detector (STALE, STUCK, on/off delays,
  ROC/TREND windows, SUSPENDED_LOAD) sees scenario time. The clock is *held* at
  ``start_ms`` until :meth:`ScenarioClock.start` — the service can take its time to
  start up without the run's first seconds passing (points never seen count from the
  service's start). ``hazwatch scenario run`` uses it; at speed 1 it is the wall clock.
- :class:`CompressedTime` — for a service on the wall clock (``hazwatch simulate``,
  the demo): scenario second ``t`` is published ``t / speed`` wall seconds after the
  start and stamped with that wall time. The process is compressed: a 10-minute
  transient takes a minute, and time-driven detectors see it take a minute.
"""

from __future__ import annotations

import time
from typing import Protocol

from hazwatch.clock import HeldClock, SystemClock


class Timebase(Protocol):
    speed: float

    def start(self) -> None:
        """Scenario second 0 is now (idempotent)."""
        ...

    def stamp_ms(self, t_s: float) -> int:
        """The epoch milliseconds a gateway writes for scenario second ``t_s``."""
        ...

    def now_s(self) -> float:
        """The scenario second it is now."""
        ...

    def wall_s_until(self, t_s: float) -> float:
        """Wall-clock seconds until scenario second ``t_s`` (≤ 0: already past)."""
        ...


ALIGN_MS = 3_600_000


def aligned_start_ms() -> int:
    """The last top of the hour: where an embedded run's scenario time starts.

    The detectors' slope windows are cut into buckets aligned to the epoch
    (:mod:`detectors.slope`), and ROC and TREND are judged when a bucket closes. Started
    on the hour, every bucket width that divides an hour falls at the same scenario
    seconds in every run, so the same seed gives the same report. Only a service on the
    same clock may use it: its readings are up to an hour old by the wall clock.
    """
    now = SystemClock().now_ms()
    return now - now % ALIGN_MS


class ScenarioClock:
    """The faithful timebase, and the service's clock (``now_ms``)."""

    def __init__(self, speed: float, start_ms: int | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.start_ms = SystemClock().now_ms() if start_ms is None else start_ms
        self._clock = HeldClock(speed, self.start_ms)

    def start(self) -> None:
        self._clock.start()

    def now_ms(self) -> int:
        return self._clock.now_ms()

    def stamp_ms(self, t_s: float) -> int:
        return self.start_ms + round(t_s * 1000)

    def now_s(self) -> float:
        return (self.now_ms() - self.start_ms) / 1000

    def scenario_s(self, ms: int) -> float:
        """The scenario second of an epoch-ms time on this clock."""
        return (ms - self.start_ms) / 1000

    def wall_s_until(self, t_s: float) -> float:
        return (t_s - self.now_s()) / self.speed


class CompressedTime:
    """Scenario time squeezed onto the wall clock (readings stamped when sent)."""

    def __init__(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._start_ms: int | None = None
        self._start_mono = 0.0

    def start(self) -> None:
        if self._start_ms is None:
            self._start_ms = SystemClock().now_ms()
            self._start_mono = time.monotonic()

    def stamp_ms(self, t_s: float) -> int:
        assert self._start_ms is not None, "start() first"
        return self._start_ms + round(t_s * 1000 / self.speed)

    def now_s(self) -> float:
        return (time.monotonic() - self._start_mono) * self.speed

    def wall_s_until(self, t_s: float) -> float:
        return (t_s - self.now_s()) / self.speed
