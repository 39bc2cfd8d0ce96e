"""The detector engine: each registered point mapped to the detectors its table row asks for.

Built once from the registry. A point gets a :class:`~detectors.threshold.LimitDetector`
only if it has a limit, and is watched for staleness only if it has ``interval_s``; a
point with neither costs one dict lookup per reading. Readings of points not in the
registry are ignored (ingest already counted and listed them).

Every condition change is counted in ``metrics.conditions{type, active}``. Later
detectors (rate of change, trend, stuck, fault) slot in as more entries per point;
time-driven ones (gateway offline, on/off delays) join the ticked list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from detectors.base import Detector, TimedDetector
from detectors.stale import StaleDetector
from detectors.threshold import LimitDetector
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmType, Condition, Reading, Registry
from hazwatch.settings import DetectorSettings


class DetectorEngine:
    """Feeds readings and clock ticks to every point's detectors; returns the changes."""

    def __init__(
        self,
        registry: Registry,
        settings: DetectorSettings,
        start_ms: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        points = registry.points()
        self._stale = StaleDetector(points, settings.stale_factor, start_ms)
        self._timed: tuple[TimedDetector, ...] = (self._stale,)
        self._limits: dict[tuple[str, str], LimitDetector] = {}
        self._by_point: dict[tuple[str, str], tuple[Detector, ...]] = {}
        for point in points:
            key = (point.enterprise, point.tag)
            detectors: list[Detector] = []
            if point.has_limits:
                self._limits[key] = LimitDetector(point)
                detectors.append(self._limits[key])
            if self._stale.watches(*key):
                detectors.append(self._stale)
            self._by_point[key] = tuple(detectors)

    def restore(self, active: Iterable[tuple[str, str, AlarmType]]) -> None:
        """Warm start: ``(enterprise, tag, type)`` of conditions still active when the
        service stopped (the wiring reads them from the journal's open, not yet cleared
        alarms). Without this, an alarm whose value returned to normal while the service
        was down would never clear — the fresh detectors would have nothing to clear."""
        for enterprise, tag, alarm_type in active:
            if alarm_type is AlarmType.STALE:
                self._stale.assume_stale(enterprise, tag)
            elif (limits := self._limits.get((enterprise, tag))) is not None:
                limits.assume_active([alarm_type])

    def detectors(self, enterprise: str, tag: str) -> Sequence[Detector]:
        """The detectors of one point (empty for unknown points)."""
        return self._by_point.get((enterprise, tag), ())

    def update(self, readings: Iterable[Reading], now_ms: int) -> list[Condition]:
        """Feed readings received at ``now_ms``; return every condition that changed."""
        changes: list[Condition] = []
        by_point = self._by_point
        for reading in readings:
            detectors = by_point.get((reading.enterprise, reading.tag))
            if not detectors:
                continue
            for detector in detectors:
                found = detector.update(reading, now_ms)
                if found:
                    changes.extend(found)
        if changes:
            self._count(changes)
        return changes

    def tick(self, now_ms: int) -> list[Condition]:
        """Let time pass (the wiring calls this every ``tick_s``); return the changes."""
        changes: list[Condition] = []
        for detector in self._timed:
            changes.extend(detector.tick(now_ms))
        if changes:
            self._count(changes)
        return changes

    def _count(self, changes: list[Condition]) -> None:
        if self._metrics is None:
            return
        counter = self._metrics.conditions
        for change in changes:
            active = "true" if change.active else "false"
            counter.labels(type=change.type.value, active=active).inc()
