"""Chattering guard: alarms that come back too often (ISA-18.2: 3+ activations in 60 s).

What counts is an *activation* of one alarm — a condition of one type going active on
one point. Clears do not count, nor do different types: a level that rises through H
and HH and falls back is one excursion (two alarms, each activated once), not four
flips. A point with one alarm activated ``flips`` or more times within ``window_s`` is
chattering: it is counted once when it starts
(``hazwatch_detector_chattering_total``), listed by :meth:`ChatterGuard.chattering`
while it lasts, and the number of chattering points is a gauge. The guard only
reports — it does not hide conditions, because hiding a real alarm is worse than a
noisy one; the cure is the point's ``deadband`` and ``on_delay_s``/``off_delay_s``
(docs/detectors.md), which the list tells operators where to apply. Gateway-level
conditions count against the gateway id.

Only points with a recent activation hold state (a few timestamps per alarm type).

>>> guard = ChatterGuard(flips=3, window_s=60)
>>> guard.record([("E001", "TK101_LT", "H"), ("E001", "TK101_LT", "HH")], now_ms=0)
[]
>>> guard.record([("E001", "TK101_LT", "H")] * 2, now_ms=30_000)
[('E001', 'TK101_LT')]
>>> [(c.tag, c.type, c.flips) for c in guard.chattering(now_ms=59_000)]
[('TK101_LT', 'H', 3)]
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
    """Activations of its most frequent alarm within the window (up to 4 × ``flips``)."""
    since_ms: int
    """The oldest of those activations."""
    type: str
    """That alarm's type."""


class ChatterGuard:
    __slots__ = ("_flips", "_recent", "_window_ms")

    def __init__(self, flips: int = 3, window_s: float = 60.0) -> None:
        if flips < 2:
            raise ValueError(f"chattering needs at least 2 flips, got {flips}")
        self._flips = flips
        self._window_ms = round(window_s * 1000)
        # (enterprise, tag) → type → activation times; only recently active points
        self._recent: dict[tuple[str, str], dict[str, deque[int]]] = {}

    def record(
        self, activations: Iterable[tuple[str, str, str]], now_ms: int
    ) -> list[tuple[str, str]]:
        """Note one activation per ``(enterprise, tag, type)`` at ``now_ms``; return the
        points that *started* chattering with them."""
        started: list[tuple[str, str]] = []
        horizon = now_ms - self._window_ms
        for enterprise, tag, alarm_type in activations:
            point = (enterprise, tag)
            alarms = self._recent.get(point)
            if alarms is None:
                alarms = self._recent[point] = {}
            was = self._worst(alarms, horizon)[0] >= self._flips
            times = alarms.get(alarm_type)
            if times is None:
                times = alarms[alarm_type] = deque(maxlen=4 * self._flips)
            times.append(now_ms)
            if not was and self._worst(alarms, horizon)[0] >= self._flips:
                started.append(point)
        return started

    @staticmethod
    def _worst(alarms: dict[str, deque[int]], horizon: int) -> tuple[int, int, str]:
        """(activations in the window, the oldest of them, type) of the point's most
        frequent alarm; expired times are dropped on the way."""
        worst = (0, 0, "")
        for alarm_type, times in alarms.items():
            while times and times[0] <= horizon:
                times.popleft()
            if len(times) > worst[0]:
                worst = (len(times), times[0], alarm_type)
        return worst

    def chattering(self, now_ms: int) -> list[Chattering]:
        """The points chattering now, each with its most frequent alarm."""
        horizon = now_ms - self._window_ms
        found = []
        for (enterprise, tag), alarms in sorted(self._recent.items()):
            count, since_ms, alarm_type = self._worst(alarms, horizon)
            if count >= self._flips:
                found.append(Chattering(enterprise, tag, count, since_ms, alarm_type))
        return found

    def expire(self, now_ms: int) -> None:
        """Forget points with no activation in the window (call from the tick)."""
        horizon = now_ms - self._window_ms
        quiet = [
            point
            for point, alarms in self._recent.items()
            if all(not times or times[-1] <= horizon for times in alarms.values())
        ]
        for point in quiet:
            del self._recent[point]
