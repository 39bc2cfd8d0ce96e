"""Time as a collaborator: code that needs "now" takes a ``Clock``, tests pass their own.

Times are integer epoch milliseconds, UTC (see ``hazwatch.models``).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to (tests, backtests, replays)."""

    def __init__(self, start_ms: int = 1_763_820_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms

    def set(self, ms: int) -> None:
        self._now = ms


class ScaledClock:
    """Time that runs ``rate`` times as fast as the wall clock, from ``start_ms``.

    Scenario runs, replays and their tests run the whole service on one: a 300 s
    scenario at ``rate=30`` takes 10 s, and every time-driven detector (STALE, STUCK,
    on/off delays, ROC/TREND windows) still sees 300 s pass — unlike publishing faster
    against a wall-clock service, which compresses the process instead.
    """

    def __init__(self, rate: float, start_ms: int | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.start_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        self._wall_start_ns = time.monotonic_ns()

    def now_ms(self) -> int:
        elapsed_ns = time.monotonic_ns() - self._wall_start_ns
        return self.start_ms + int(elapsed_ns * self.rate) // 1_000_000

    def wall_s_until(self, ms: int) -> float:
        """Wall-clock seconds until this clock reads ``ms`` (≤ 0: already past)."""
        return (ms - self.now_ms()) / 1000 / self.rate


class HeldClock:
    """A :class:`ScaledClock` that stands at ``start_ms`` until :meth:`start`.

    A service can start on it (which takes a while) and a scenario or a replay that
    follows the same clock still begins exactly at ``start_ms``: no scenario second
    passes while the service subscribes.
    """

    def __init__(self, rate: float, start_ms: int) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.start_ms = start_ms
        self._running: ScaledClock | None = None

    def start(self) -> None:
        """Let time run from ``start_ms`` (idempotent)."""
        if self._running is None:
            self._running = ScaledClock(self.rate, self.start_ms)

    def now_ms(self) -> int:
        return self.start_ms if self._running is None else self._running.now_ms()

    def wall_s_until(self, ms: int) -> float:
        """Wall-clock seconds until this clock reads ``ms`` (≤ 0: already past)."""
        return (ms - self.now_ms()) / 1000 / self.rate
