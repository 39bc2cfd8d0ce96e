"""One point's detectors, composed for the hot path.

:class:`PointMonitor` holds the detectors the point's table row asks for and feeds a
reading through them in a fixed order, skipping what cannot change:

1. silence — the point (and its gateway) was seen; clears STALE / GATEWAY_OFFLINE;
2. FAULT — a ``bad`` or out-of-range reading raises FAULT and goes no further: a
   faulty instrument does not also raise process alarms from its bad values;
3. limits — skipped while the value is strictly inside every limit and nothing is
   active or pending (two comparisons);
4. the slope window (ROC, TREND) — two appends; the detectors judge it when a
   bucket closes, TREND also when the last fit's predicted crossing comes within its
   horizon;
5. STUCK — a comparison; SUSPENDED_LOAD (suspended enterprises' power points only).

A reading older than the newest one the point has had (a gateway flushing its buffer out
of order) only proves the point alive: the detectors judge the present, so a late
value must not clear or re-raise an alarm (it is stored at its own time all the same).
Such readings are counted in ``late.count``. "Newest" is capped at the receive time, so
a gateway whose clock runs ahead cannot make its later, correct readings look late.

The common case — a good reading far from every limit, nothing active — is a handful of
attribute reads and comparisons and one call into the slope window.

The FAULT and limit detectors are built on first need (:attr:`PointMonitor.fault`,
:attr:`PointMonitor.limits`): a reading inside the quiet band cannot change either, and
most points never leave it — two objects fewer per point (~160 bytes × 100,000 points).
The quiet band itself comes from the point's row (:func:`~detectors.threshold.quiet_band`).
"""

from __future__ import annotations

import math

from detectors.anomaly import AnomalyDetector
from detectors.electricity import SuspendedLoadDetector, default_limits
from detectors.fault import FaultDetector
from detectors.roc import RocDetector
from detectors.slope import SlopeWindow
from detectors.stale import StaleDetector, Watch
from detectors.stuck import StuckDetector
from detectors.threshold import LimitDetector, quiet_band
from detectors.trend import TrendDetector
from hazwatch.models import Condition, Point, Quality, Reading

_BAD = Quality.BAD


class LateCount:
    """Readings older than their point's newest, shared by every monitor of an engine."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class PointMonitor:
    __slots__ = (
        "_fault",
        "_limits",
        "calm",
        "late",
        "newest_ms",
        "point",
        "q_hi",
        "q_lo",
        "roc",
        "stale",
        "stuck",
        "suspended",
        "trend",
        "watch",
        "window",
    )

    def __init__(
        self,
        point: Point,
        *,
        stale: StaleDetector,
        watch: Watch | None,
        limits: bool,
        window: SlopeWindow | None,
        roc: RocDetector | None,
        trend: TrendDetector | None,
        stuck: StuckDetector | None,
        suspended: SuspendedLoadDetector | None,
        late: LateCount | None = None,
    ) -> None:
        """``limits``: whether the point has limits (its own or its kind's defaults);
        ``watch``: its staleness watch in ``stale``, if it has an interval."""
        self.point = point
        self.newest_ms = -(2**63)
        self.late = late or LateCount()
        self.stale = stale
        self.watch = watch
        self._fault: FaultDetector | None = None
        self._limits: LimitDetector | bool = limits
        """``True``: the point has limits, not needed yet; ``False``: it has none."""
        # Strictly inside this band, with FAULT and every limit inactive and no delay
        # pending ("calm"), a good reading can change neither.
        self.q_lo = -math.inf if point.min is None else point.min
        self.q_hi = math.inf if point.max is None else point.max
        if limits:
            above, below = quiet_band(point, default_limits(point))
            self.q_lo = max(self.q_lo, above)
            self.q_hi = min(self.q_hi, below)
        self.calm = True
        self.window = window
        self.roc = roc
        self.trend = trend
        self.stuck = stuck
        self.suspended = suspended

    @property
    def fault(self) -> FaultDetector:
        """The point's FAULT detector (built on first use)."""
        fault = self._fault
        if fault is None:
            fault = self._fault = FaultDetector(self.point)
        return fault

    @property
    def limits(self) -> LimitDetector | None:
        """The point's limit detector (built on first use); ``None`` without limits."""
        limits = self._limits
        if limits is True:
            point = self.point
            limits = self._limits = LimitDetector(point, default_limits(point))
        return limits or None

    def update(
        self, r: Reading, now_ms: int, _bad: Quality = Quality.BAD
    ) -> list[Condition] | None:
        """Feed one reading; the conditions that changed, or ``None`` for none."""
        out: list[Condition] | None = None
        watch = self.watch
        if watch is not None:
            if watch.ok and watch.gw_id == r.gateway:
                watch.last_seen_ms = now_ms
            else:
                out = self.stale.seen(watch, r, now_ms) or None
        ts = r.ts_ms
        if ts < self.newest_ms:
            self.late.count += 1
            return out
        # A gateway clock running ahead must not blind the point until real time
        # catches up with it: "newest" is never later than the receive time.
        self.newest_ms = ts if ts < now_ms else now_ms  # noqa: FURB136 - hot path, no call
        value = r.value
        if not (self.calm and self.q_lo < value < self.q_hi and r.quality is not _BAD):
            fault = self._fault or self.fault
            found = fault.update(r, now_ms)
            if found:
                out = found if out is None else out + found
            if fault.active:
                self.calm = False
                return out
            limits = self.limits
            if limits is not None:
                found = limits.update(r, now_ms)
                if found:
                    out = found if out is None else out + found
                self.calm = not (limits.on or limits.pending)
            else:
                self.calm = True
        window = self.window
        if window is not None:
            if ts < window.due_ms:  # SlopeWindow.accumulate, inlined
                buf = window.buf
                buf.append(ts - window.o_ms)
                buf.append(value - window.o_v)
            elif found := self._judge(window, r):
                out = found if out is None else out + found
        stuck = self.stuck
        if stuck is not None:
            if value != stuck.last and not stuck.active:
                stuck.last = value
                stuck.since_ms = r.ts_ms
            elif found := stuck.update(r, now_ms):
                out = found if out is None else out + found
        suspended = self.suspended
        if suspended is not None and (found := suspended.update(r, now_ms)):
            out = found if out is None else out + found
        return out

    def _judge(self, window: SlopeWindow, r: Reading) -> list[Condition]:
        """A reading at or past the window's ``due_ms``: a bucket closes (ROC and TREND
        judge the fit), or TREND asked to be judged before the bucket ends."""
        if r.ts_ms < window.end_bucket_ms:
            window.accumulate(r.ts_ms, r.value)
            return self.trend.rejudge(r) if self.trend is not None else []
        fit = window.add(r.ts_ms, r.value)
        if fit is None:
            return []
        found = self.roc.evaluate(fit, r) if self.roc is not None else []
        if self.trend is not None:
            found += self.trend.evaluate(fit, r)
        return found


class SampledPointMonitor(PointMonitor):
    """A point in an installation's model of normal operation: after its own detectors,
    its reading goes to the installation's :class:`~detectors.anomaly.AnomalyDetector`
    (not when late; marked unsound when bad or outside its range). A subclass, so that
    the other points' hot path does not pay for it."""

    __slots__ = ("anomaly", "index")
    anomaly: AnomalyDetector
    """Set by the engine after construction, with :attr:`index`: the point's place in
    the model."""
    index: int

    def update(
        self, r: Reading, now_ms: int, _bad: Quality = Quality.BAD
    ) -> list[Condition] | None:
        late = r.ts_ms < self.newest_ms
        out = PointMonitor.update(self, r, now_ms)
        if late:
            return out
        fault = self._fault
        sound = r.quality is not _bad and not (fault is not None and fault.active)
        found = self.anomaly.observe(self.index, r.value, r.ts_ms, sound=sound)
        if found:
            out = found if out is None else out + found
        return out
