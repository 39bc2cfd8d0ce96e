"""The detector engine: each registered point mapped to the detectors its table row asks for.

Built once from the registry (docs/detectors.md lists which row asks for what). Each
point gets a :class:`~detectors.monitor.PointMonitor`: FAULT always; limits if it has
any (or its kind's default limits, :mod:`detectors.electricity`); one slope window
shared by ROC (``roc_per_min``) and TREND (any limit, and a horizon); STUCK if its
kind or row sets a window; SUSPENDED_LOAD for the ``power`` points of suspended
enterprises. One :class:`~detectors.stale.StaleDetector` watches every point with
``interval_s`` and their gateways. Readings of points not in the registry are ignored
(ingest already counted and listed them).

Installations with a model of normal operation (``models``, :mod:`detectors.normal_model`)
get an :class:`~detectors.anomaly.AnomalyDetector` (ANOMALY); their modelled points a
:class:`~detectors.monitor.SampledPointMonitor` that feeds it.

Every condition change is counted in ``metrics.conditions{type, active}`` and feeds the
chattering guard (:mod:`detectors.chatter`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from detectors.anomaly import AnomalyDetector
from detectors.base import Detector, shared
from detectors.chatter import ChatterGuard, Chattering
from detectors.defaults import roc_window_s, stuck_s, trend_horizon_s
from detectors.electricity import SuspendedLoadDetector, default_limits
from detectors.monitor import LateCount, PointMonitor, SampledPointMonitor
from detectors.normal_model import InstallationModel
from detectors.roc import RocDetector
from detectors.slope import SlopeWindow
from detectors.stale import StaleDetector
from detectors.stuck import StuckDetector
from detectors.threshold import LimitDetector
from detectors.trend import TrendDetector
from hazwatch.metrics import Metrics
from hazwatch.models import (
    AlarmType,
    Condition,
    EnterpriseStatus,
    GatewayStatus,
    Point,
    PointKind,
    Reading,
    Registry,
)
from hazwatch.settings import DetectorSettings

_LIMIT_TYPES = frozenset({AlarmType.H, AlarmType.HH, AlarmType.L, AlarmType.LL})


class DetectorEngine:
    """Feeds readings, gateway statuses and clock ticks to every point's detectors;
    returns the changes."""

    def __init__(
        self,
        registry: Registry,
        settings: DetectorSettings,
        start_ms: int,
        metrics: Metrics | None = None,
        models: Sequence[InstallationModel] = (),
    ) -> None:
        self._metrics = metrics
        self._settings = settings
        self._now_ms = start_ms
        self._disabled = frozenset(settings.disabled)
        self.late = LateCount()
        self._late_counted = 0
        points = registry.points()
        self._stale = StaleDetector(points, settings.stale_factor, start_ms)
        self._chatter = ChatterGuard(settings.chatter_flips, settings.chatter_window_s)
        suspended = {
            e.id for e in registry.enterprises.values() if e.status is EnterpriseStatus.SUSPENDED
        }
        # (enterprise, model name) → its installation's ANOMALY detector, and where each
        # modelled point sits in it
        self._anomalies: dict[tuple[str, str], AnomalyDetector] = {}
        modelled: dict[tuple[str, str], tuple[AnomalyDetector, int]] = {}
        for model in models:
            detector = AnomalyDetector(
                model,
                _installation_name(registry, model),
                settings.anomaly,
                settings.stale_factor,
            )
            self._anomalies[model.enterprise, model.name] = detector
            for index, tag in enumerate(model.tags):
                modelled[model.enterprise, tag] = (detector, index)
        self._anomalies_counted = (0, 0)
        # enterprise → tag → monitor: no tuple key to build per reading, nor to keep
        self._monitors: dict[str, dict[str, PointMonitor]] = {}
        for p in points:
            monitor = self._monitor(
                p, p.enterprise in suspended, modelled.get((p.enterprise, p.tag))
            )
            self._monitors.setdefault(p.enterprise, {})[p.tag] = monitor

    def _monitor(
        self, point: Point, suspended: bool, anomaly: tuple[AnomalyDetector, int] | None
    ) -> PointMonitor:
        defaults = default_limits(point)
        limits = LimitDetector(point, defaults) if point.has_limits or defaults else None
        window_s = roc_window_s(point)
        window = SlopeWindow(shared(window_s)) if window_s is not None else None
        roc = trend = None
        if window is not None and point.roc_per_min:
            roc = RocDetector(point, window)
        horizon = trend_horizon_s(point)
        if window is not None and limits is not None and horizon is not None:
            trend = TrendDetector(point, window, horizon, defaults)
        if roc is None and trend is None:
            window = None
        stuck_window = stuck_s(point)
        s = self._settings
        monitor = (PointMonitor if anomaly is None else SampledPointMonitor)(
            point,
            stale=self._stale,
            limits=limits,
            window=window,
            roc=roc,
            trend=trend,
            stuck=StuckDetector(point, stuck_window) if stuck_window is not None else None,
            suspended=(
                SuspendedLoadDetector(point, s.suspended_standby, s.suspended_delay_s)
                if suspended and point.kind is PointKind.POWER
                else None
            ),
            late=self.late,
        )
        if isinstance(monitor, SampledPointMonitor) and anomaly is not None:
            monitor.anomaly, monitor.index = anomaly
        return monitor

    def restore(
        self, active: Iterable[tuple[str, str, AlarmType] | tuple[str, str, AlarmType, str]]
    ) -> None:
        """Warm start: ``(enterprise, tag, type[, installation])`` of conditions still
        active when the service stopped (the wiring reads them from the journal's open,
        not yet cleared alarms; for GATEWAY_OFFLINE the tag is the gateway id, and the
        installation is needed so its clear matches the open alarm). Each detector starts
        with its condition active, so it is not raised again, and clears when the
        process says so — without this, an alarm whose value returned to normal while
        the service was down would never clear. Unknown points or types a point has no
        detector for are ignored."""
        for item in active:
            enterprise, tag, alarm_type = item[0], item[1], item[2]
            if alarm_type is AlarmType.GATEWAY_OFFLINE:
                installation = item[3] if len(item) > 3 else ""
                self._stale.assume_offline(enterprise, tag, installation)
                continue
            if alarm_type is AlarmType.STALE:
                self._stale.assume_stale(enterprise, tag)
                continue
            if alarm_type is AlarmType.ANOMALY:
                if (anomaly := self._anomalies.get((enterprise, tag))) is not None:
                    anomaly.assume_active()
                continue
            monitor = self.monitor(enterprise, tag)
            if monitor is None:
                continue
            if alarm_type in _LIMIT_TYPES and monitor.limits is not None:
                monitor.limits.assume_active([alarm_type])
                monitor.calm = False  # the next reading, however normal, must reach the limits
            elif alarm_type is AlarmType.FAULT:
                monitor.fault.active = True
            elif alarm_type is AlarmType.ROC and monitor.roc is not None:
                monitor.roc.active = True
            elif alarm_type is AlarmType.TREND and monitor.trend is not None:
                monitor.trend.active = True
            elif alarm_type is AlarmType.STUCK and monitor.stuck is not None:
                monitor.stuck.assume_active()
            elif alarm_type is AlarmType.SUSPENDED_LOAD and monitor.suspended is not None:
                monitor.suspended.assume_active()

    def monitor(self, enterprise: str, tag: str) -> PointMonitor | None:
        return self._monitors.get(enterprise, {}).get(tag)

    def detectors(self, enterprise: str, tag: str) -> Sequence[Detector | AnomalyDetector]:
        """The detectors of one point, in the order readings meet them (empty for
        unknown points)."""
        m = self.monitor(enterprise, tag)
        if m is None:
            return ()
        found: list[Detector | AnomalyDetector | None] = [
            self._stale if m.watch is not None else None,
            m.fault,
            m.limits,
            m.roc,
            m.trend,
            m.stuck,
            m.suspended,
            m.anomaly if isinstance(m, SampledPointMonitor) else None,
        ]
        return tuple(d for d in found if d is not None)

    def anomalies(self) -> list[AnomalyDetector]:
        """The installations' ANOMALY detectors (one per loaded model)."""
        return list(self._anomalies.values())

    def update(self, readings: Iterable[Reading], now_ms: int) -> list[Condition]:
        """Feed readings received at ``now_ms``; return every condition that changed."""
        self._now_ms = now_ms
        changes: list[Condition] = []
        monitors = self._monitors
        enterprise = None
        tags: dict[str, PointMonitor] = {}
        for reading in readings:
            if reading.enterprise != enterprise:  # a batch is mostly one enterprise
                enterprise = reading.enterprise
                tags = monitors.get(enterprise, {})
            monitor = tags.get(reading.tag)
            if monitor is not None and (found := monitor.update(reading, now_ms)):
                changes.extend(found)
        return self._changed(changes, now_ms) if changes else changes

    def tick(self, now_ms: int) -> list[Condition]:
        """Let time pass (the wiring calls this every ``tick_s``); return the changes."""
        self._now_ms = now_ms
        changes = self._stale.tick(now_ms)
        if changes:
            changes = self._changed(changes, now_ms)
        self._chatter.expire(now_ms)
        if self._metrics is not None:
            self._metrics.chattering_points.set(len(self._chatter.chattering(now_ms)))
            self._metrics.late_readings.inc(self.late.count - self._late_counted)
            self._late_counted = self.late.count
            if self._anomalies:
                judged = sum(a.judged for a in self._anomalies.values())
                blind = sum(a.blind for a in self._anomalies.values())
                periods = self._metrics.anomaly_periods
                periods.labels(result="judged").inc(judged - self._anomalies_counted[0])
                periods.labels(result="blind").inc(blind - self._anomalies_counted[1])
                self._anomalies_counted = (judged, blind)
        return changes

    def gateway_status(self, status: GatewayStatus, now_ms: int) -> list[Condition]:
        """A gateway's ``online`` / ``offline`` status message; returns GATEWAY_OFFLINE
        changes (tag = the gateway id, installation = that of its points, or "")."""
        self._now_ms = now_ms
        changes = self._stale.gateway_status(status, now_ms)
        return self._changed(changes, now_ms) if changes else changes

    def chattering(self, now_ms: int | None = None) -> list[Chattering]:
        """Points whose conditions changed ``chatter_flips``+ times within
        ``chatter_window_s`` (default 3 in 60 s), as of ``now_ms`` (default: the last
        time the engine was given)."""
        return self._chatter.chattering(self._now_ms if now_ms is None else now_ms)

    def offline_gateways(self) -> list[tuple[str, str]]:
        return self._stale.offline_gateways()

    def _changed(self, changes: list[Condition], now_ms: int) -> list[Condition]:
        """Count the changes and feed the chattering guard; returns those of the types
        not disabled in ``[detectors] disabled``."""
        if self._disabled:
            changes = [c for c in changes if c.type not in self._disabled]
        started = self._chatter.record(
            ((c.enterprise, c.tag, c.type.value) for c in changes if c.active), now_ms
        )
        if self._metrics is None:
            return changes
        counter = self._metrics.conditions
        for change in changes:
            active = "true" if change.active else "false"
            counter.labels(type=change.type.value, active=active).inc()
        if started:
            self._metrics.chattering.inc(len(started))
        return changes


def _installation_name(registry: Registry, model: InstallationModel) -> str:
    enterprise = registry.enterprises.get(model.enterprise)
    found = enterprise and next(
        (i.name for i in enterprise.installations if i.id == model.installation), None
    )
    return found or model.installation
