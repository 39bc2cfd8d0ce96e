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
