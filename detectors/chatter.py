"""Chattering guard: points whose conditions flip too often (ISA-18.2: 3+ in 60 s).

Every condition change the engine reports is a *flip* of its point (any type). A point
with ``flips`` or more within ``window_s`` is chattering: it is counted once when it
starts (``hazwatch_detector_chattering_total``), listed by
:meth:`ChatterGuard.chattering` while it lasts, and the number of chattering points
is a gauge. The guard only reports — it does not hide conditions, because hiding a
real alarm is worse than a noisy one; the cure is the point's ``deadband`` and
``on_delay_s``/``off_delay_s`` (docs/detectors.md), which the list tells operators
where to apply. Gateway-level conditions count against the gateway id.

Only points that flipped recently hold state (a few timestamps each).

>>> guard = ChatterGuard(flips=3, window_s=60)
>>> guard.record([("E001", "TK101_LT")] * 2, now_ms=0)
[]
>>> guard.record([("E001", "TK101_LT")], now_ms=30_000)
[('E001', 'TK101_LT')]
>>> [(c.tag, c.flips) for c in guard.chattering(now_ms=59_000)]
[('TK101_LT', 3)]
>>> guard.chattering(now_ms=61_000)
[]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chattering:
    enterprise: str
    tag: str
    flips: int
    """Condition changes within the window (counted up to 4 × ``flips``)."""
    since_ms: int
    """The oldest of those changes."""


class ChatterGuard:
    __slots__ = ("_flips", "_recent", "_window_ms")

    def __init__(self, flips: int = 3, window_s: float = 60.0) -> None:
        if flips < 2:
            raise ValueError(f"chattering needs at least 2 flips, got {flips}")
        self._flips = flips
        self._window_ms = round(window_s * 1000)
        self._recent: dict[tuple[str, str], deque[int]] = {}

    def record(self, points: Iterable[tuple[str, str]], now_ms: int) -> list[tuple[str, str]]:
        """Note one flip per item at ``now_ms``; return the points that *started*
        chattering with it."""
        started: list[tuple[str, str]] = []
        horizon = now_ms - self._window_ms
        for key in points:
            times = self._recent.get(key)
            if times is None:
                times = self._recent[key] = deque(maxlen=4 * self._flips)
            while times and times[0] <= horizon:
                times.popleft()
            was = len(times) >= self._flips
            times.append(now_ms)
            if not was and len(times) >= self._flips:
                started.append(key)
        return started

    def chattering(self, now_ms: int) -> list[Chattering]:
        """The points chattering now (``flips`` or more changes in the window)."""
        horizon = now_ms - self._window_ms
        found = []
        for (enterprise, tag), times in sorted(self._recent.items()):
            recent = [t for t in times if t > horizon]
            if len(recent) >= self._flips:
                found.append(Chattering(enterprise, tag, len(recent), recent[0]))
        return found

    def expire(self, now_ms: int) -> None:
        """Forget points with no flip in the window (call from the tick)."""
        horizon = now_ms - self._window_ms
        for key in [k for k, times in self._recent.items() if not times or times[-1] <= horizon]:
            del self._recent[key]
