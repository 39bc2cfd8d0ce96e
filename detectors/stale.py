"""Staleness: a point that stopped reporting (a deadman check).

A point with an expected reporting interval (``interval_s`` in the point table) is
STALE once ``now - last_seen > factor × interval_s``; the next reading of the point
clears it. Points never seen count from ``start_ms`` (the service start), so a point
that never reports becomes stale too — a missing point is a real problem in the field.

"Seen" is the time the platform received the reading (the ``now_ms`` passed with it),
not the reading's own timestamp: a gateway whose clock runs a minute behind still
reports, and must not look stale. Any reading counts, whatever its quality — the data
is arriving; bad quality is a fault, not staleness.

One detector watches every point, so ``tick`` is one pass over a dict. The condition
is reported once when it becomes active and once when it clears, never on every tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from detectors.base import format_value
from hazwatch.models import AlarmType, Condition, Point, Reading


@dataclass(slots=True)
class _Watch:
    point: Point
    interval_s: float
    allowed_ms: int
    last_seen_ms: int
    stale: bool = False


class StaleDetector:
    """Every point with ``interval_s``; a :class:`~detectors.base.TimedDetector`.

    >>> from hazwatch.models import Point, Reading
    >>> point = Point(enterprise="E001", installation="MH01", tag="GD101",
    ...               name="Gas detector 101", kind="gas_lel", unit="%LEL", interval_s=5)
    >>> stale = StaleDetector([point], factor=3, start_ms=0)
    >>> stale.tick(15_000)            # exactly 3 × 5 s: not yet
    []
    >>> [c.message for c in stale.tick(16_000)]
    ['Gas detector 101: no reading for 16.0 s (expected every 5.0 s)']
    >>> stale.tick(20_000)            # still stale: nothing new to say
    []
    >>> [c.message for c in stale.update(Reading("E001", "gw1", "GD101", 3.0, 21_000), 21_000)]
    ['Gas detector 101 reporting again after 21.0 s']
    """

    __slots__ = ("_watches",)

    def __init__(self, points: Iterable[Point], factor: float, start_ms: int) -> None:
        if factor <= 0:
            raise ValueError(f"stale factor must be > 0, got {factor}")
        self._watches: dict[tuple[str, str], _Watch] = {
            (p.enterprise, p.tag): _Watch(
                p, p.interval_s, round(factor * p.interval_s * 1000), start_ms
            )
            for p in points
            if p.interval_s is not None
        }

    def watches(self, enterprise: str, tag: str) -> bool:
        """Whether this point has an expected interval (and so can become stale)."""
        return (enterprise, tag) in self._watches

    def is_stale(self, enterprise: str, tag: str) -> bool:
        watch = self._watches.get((enterprise, tag))
        return watch is not None and watch.stale

    def assume_stale(self, enterprise: str, tag: str) -> None:
        """Start from a STALE condition known to be active (after a restart), so the
        point's next reading clears it instead of it staying open for ever."""
        watch = self._watches.get((enterprise, tag))
        if watch is not None:
            watch.stale = True

    def observe(self, reading: Reading, now_ms: int | None = None) -> list[Condition]:
        """Note a reading received at ``now_ms`` (default: the reading's own time).

        Returns the STALE condition turning inactive if the point was stale.
        """
        watch = self._watches.get((reading.enterprise, reading.tag))
        if watch is None:
            return []
        seen_ms = reading.ts_ms if now_ms is None else now_ms
        silent_ms = seen_ms - watch.last_seen_ms
        watch.last_seen_ms = max(watch.last_seen_ms, seen_ms)
        if not watch.stale:
            return []
        watch.stale = False
        point = watch.point
        return [
            _condition(
                watch,
                active=False,
                ts_ms=seen_ms,
                message=f"{point.name} reporting again after {format_value(silent_ms / 1000)} s",
            )
        ]

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:
        """The :class:`~detectors.base.Detector` protocol: ``observe`` at ``now_ms``."""
        return self.observe(reading, now_ms)

    def tick(self, now_ms: int) -> list[Condition]:
        """Report the points that just went silent for too long."""
        changes: list[Condition] = []
        for watch in self._watches.values():
            if watch.stale or now_ms - watch.last_seen_ms <= watch.allowed_ms:
                continue
            watch.stale = True
            silent_s = format_value((now_ms - watch.last_seen_ms) / 1000)
            interval_s = format_value(watch.interval_s)
            message = (
                f"{watch.point.name}: no reading for {silent_s} s (expected every {interval_s} s)"
            )
            changes.append(_condition(watch, active=True, ts_ms=now_ms, message=message))
        return changes


def _condition(watch: _Watch, *, active: bool, ts_ms: int, message: str) -> Condition:
    # value/limit stay empty: the alarm JSON's value is a process value in the point's
    # unit, and silence has none. The message carries the durations.
    point = watch.point
    return Condition(
        enterprise=point.enterprise,
        installation=point.installation,
        tag=point.tag,
        type=AlarmType.STALE,
        active=active,
        value=None,
        limit=None,
        ts_ms=ts_ms,
        message=message,
    )
