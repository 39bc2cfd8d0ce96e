"""Silence: a point that stopped reporting (``STALE``), or a whole gateway (``GATEWAY_OFFLINE``).

A point with an expected reporting interval (``interval_s`` in the point table) is
overdue once ``now - last_seen > factor × interval_s``. Points never seen count from
``start_ms`` (the service start), so a point that never reports becomes overdue too —
a missing point is a real problem in the field.

"Seen" is the time the platform received the reading (the ``now_ms`` passed with it),
not the reading's own timestamp: a gateway whose clock runs a minute behind still
reports, and must not look stale. Any reading counts, whatever its quality — the data
is arriving; bad quality is a fault, not staleness.

**Root-cause suppression.** Each point's gateway is the point table's ``gateway``
column, or learned from its readings (``Reading.gateway``; a reading from another
gateway moves the point there). When a gateway goes quiet, its points fall overdue one
by one; raising a STALE for each is the classic flood (thingsboard/thingsboard-gateway#1014).
Instead:

- an overdue point whose gateway still delivers other points' readings is STALE;
- an overdue point whose gateway has been silent at least as long waits; when *all*
  the gateway's watched points are overdue, ONE ``GATEWAY_OFFLINE`` is raised (tag =
  the gateway id, installation = that of its points) and their STALE are suppressed;
- a gateway's ``offline`` status message raises GATEWAY_OFFLINE at once;
- the next reading from the gateway, or its ``online`` status, clears GATEWAY_OFFLINE;
  its suppressed points get a fresh allowance from that moment (no flood on recovery
  either), and any still silent after it become STALE on their own.

A gateway declared in the point table that never connects is one GATEWAY_OFFLINE once
all its points are overdue, not a STALE per point. A point not seen since the service
started with no ``gateway`` column has no known gateway and goes STALE on its own —
unless the journal says a gateway of its enterprise was offline when the service
stopped (:meth:`StaleDetector.assume_offline`): then the enterprise's unseen points are
provisionally put behind that gateway, and a reading re-assigns them.

Conditions are reported once when they become active and once when they clear.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from detectors.base import format_value, point_condition, shared
from hazwatch.models import AlarmType, Condition, GatewayState, GatewayStatus, Point, Reading


@dataclass(slots=True, eq=False)
class Gateway:
    enterprise: str
    gateway: str
    installation: str
    watches: list[Watch] = field(default_factory=list)
    offline: bool = False
    heard: bool = False
    """Anything came from it (a reading or a status) since the service started."""

    def last_seen_ms(self) -> int:
        """When any of its points last reported (computed: the hot path only touches
        the point's watch)."""
        return max((w.last_seen_ms for w in self.watches), default=-(2**62))


@dataclass(slots=True, eq=False)
class Watch:
    point: Point
    interval_s: float
    allowed_ms: int
    last_seen_ms: int
    gateway: Gateway | None = None
    stale: bool = False
    suppressed: bool = False
    """Overdue behind an offline gateway: no STALE of its own."""
    ok: bool = False
    """Not stale, not suppressed, its gateway known and online: a reading from gateway
    ``gw_id`` only needs ``last_seen_ms`` set (the engine's fast path). Kept false
    whenever in doubt — the slow path, :meth:`StaleDetector.seen`, sets it again."""
    gw_id: str = ""


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
    >>> [c.message for c in stale.tick(40_000)]   # its gateway is known now
    ['Gateway gw1: no data from its 1 point(s) for 19.0 s']
    """

    __slots__ = ("_all", "_gateways", "_watches")

    def __init__(self, points: Iterable[Point], factor: float, start_ms: int) -> None:
        if factor <= 0:
            raise ValueError(f"stale factor must be > 0, got {factor}")
        watches = {
            (p.enterprise, p.tag): Watch(
                p, p.interval_s, shared(round(factor * p.interval_s * 1000)), start_ms
            )
            for p in points
            if p.interval_s is not None
        }
        # the watches in the points' order for the scan; enterprise → tag → watch for
        # look-ups only once one is asked for (the engine keeps each point's watch on
        # its monitor and asks for none: a dictionary entry fewer per point)
        self._all = list(watches.values())
        self._watches: dict[str, dict[str, Watch]] | None = None
        self._gateways: dict[tuple[str, str], Gateway] = {}
        for watch in self._all:  # the point table's gateway column
            point = watch.point
            if point.gateway is not None:
                self._attach(watch, self._gateway(point.enterprise, point.gateway, ""))

    def watch(self, enterprise: str, tag: str) -> Watch | None:
        index = self._watches
        if index is None:
            index = self._watches = {}
            for w in self._all:
                index.setdefault(w.point.enterprise, {})[w.point.tag] = w
        tags = index.get(enterprise)
        return None if tags is None else tags.get(tag)

    def watched(self) -> list[Watch]:
        """Every watch, in the points' order."""
        return list(self._all)

    def watches(self, enterprise: str, tag: str) -> bool:
        """Whether this point has an expected interval (and so can become stale)."""
        return self.watch(enterprise, tag) is not None

    def is_stale(self, enterprise: str, tag: str) -> bool:
        watch = self.watch(enterprise, tag)
        return watch is not None and watch.stale

    def offline_gateways(self) -> list[tuple[str, str]]:
        """``(enterprise, gateway)`` of the gateways with GATEWAY_OFFLINE active."""
        return sorted(k for k, g in self._gateways.items() if g.offline)

    def assume_stale(self, enterprise: str, tag: str) -> None:
        """Start from a STALE condition known to be active (after a restart), so the
        point's next reading clears it instead of it staying open for ever."""
        watch = self.watch(enterprise, tag)
        if watch is not None:
            self.assume_watch_stale(watch)

    def assume_watch_stale(self, watch: Watch) -> None:
        """:meth:`assume_stale` for a watch already looked up."""
        watch.stale = True
        watch.ok = False

    def assume_offline(self, enterprise: str, gateway: str, installation: str = "") -> None:
        """Start from a GATEWAY_OFFLINE known to be active (after a restart): it is not
        raised again, and clears with the gateway's next reading or ``online`` status.
        The enterprise's points with no known gateway are put behind it until their
        readings say otherwise, so they do not each go STALE meanwhile."""
        gw = self._gateway(enterprise, gateway, installation)
        gw.installation = installation  # the open alarm's: its clear must match it
        gw.offline = True
        for watch in self._all:
            if watch.gateway is None and watch.point.enterprise == enterprise:
                self._attach(watch, gw)
        for watch in gw.watches:
            watch.ok = False

    def observe(self, reading: Reading, now_ms: int | None = None) -> list[Condition]:
        """Note a reading received at ``now_ms`` (default: the reading's own time).

        Returns the STALE / GATEWAY_OFFLINE conditions that this reading clears.
        """
        watch = self.watch(reading.enterprise, reading.tag)
        if watch is None:
            return []
        return self.seen(watch, reading, reading.ts_ms if now_ms is None else now_ms)

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:
        """The :class:`~detectors.base.Detector` protocol: ``observe`` at ``now_ms``."""
        return self.observe(reading, now_ms)

    def seen(self, watch: Watch, reading: Reading, now_ms: int) -> list[Condition]:
        """``observe`` for a watch already looked up (the engine's hot path)."""
        silent_ms = now_ms - watch.last_seen_ms
        watch.last_seen_ms = max(watch.last_seen_ms, now_ms)
        gw = watch.gateway
        if gw is None or gw.gateway != reading.gateway:
            gw = self._gateway(reading.enterprise, reading.gateway, watch.point.installation)
            self._attach(watch, gw)
        gw.heard = True
        changes: list[Condition] = []
        if gw.offline:
            changes.append(self._back(gw, now_ms, "data again"))
        watch.suppressed = False
        watch.ok = True
        if watch.stale:
            watch.stale = False
            point = watch.point
            message = f"{point.name} reporting again after {format_value(silent_ms / 1000)} s"
            changes.append(
                _condition(point, AlarmType.STALE, active=False, ts_ms=now_ms, message=message)
            )
        return changes

    def tick(self, now_ms: int) -> list[Condition]:
        """Report the points (or gateways) that just went silent for too long."""
        changes: list[Condition] = []
        silent_gateways: list[Gateway] = []
        gateway_seen: dict[int, int] = {}
        for watch in self._all:
            if watch.stale or watch.suppressed or now_ms - watch.last_seen_ms <= watch.allowed_ms:
                continue
            gw = watch.gateway
            if gw is not None:
                if gw.offline:
                    watch.suppressed = True
                    watch.ok = False
                    continue
                seen = gateway_seen.get(id(gw))
                if seen is None:
                    seen = gateway_seen[id(gw)] = gw.last_seen_ms()
                if now_ms - seen > watch.allowed_ms:
                    silent_gateways.append(gw)  # maybe the whole gateway: wait and see
                    continue
            watch.stale = True
            watch.ok = False
            silent_s = format_value((now_ms - watch.last_seen_ms) / 1000)
            point = watch.point
            message = (
                f"{point.name}: no reading for {silent_s} s "
                f"(expected every {format_value(watch.interval_s)} s)"
            )
            changes.append(
                _condition(point, AlarmType.STALE, active=True, ts_ms=now_ms, message=message)
            )
        for gw in dict.fromkeys(silent_gateways):
            overdue = [w for w in gw.watches if now_ms - w.last_seen_ms > w.allowed_ms]
            if len(overdue) < len(gw.watches):
                continue
            gw.offline = True
            for watch in overdue:
                watch.suppressed = not watch.stale
                watch.ok = False
            silent_s = format_value((now_ms - gw.last_seen_ms()) / 1000)
            message = (
                f"Gateway {gw.gateway}: no data from its {len(gw.watches)} point(s) "
                f"for {silent_s} s"
                if gw.heard
                else f"Gateway {gw.gateway}: not heard from since the service started "
                f"{silent_s} s ago ({len(gw.watches)} point(s))"
            )
            changes.append(_gateway_condition(gw, active=True, ts_ms=now_ms, message=message))
        return changes

    def gateway_status(self, status: GatewayStatus, now_ms: int) -> list[Condition]:
        """A gateway's retained status message: ``offline`` raises GATEWAY_OFFLINE at
        once, ``online`` clears it."""
        key = (status.enterprise, status.gateway)
        gw = self._gateways.get(key)
        if gw is not None:
            gw.heard = True
        if status.state is GatewayState.OFFLINE:
            if gw is None:
                gw = self._gateway(status.enterprise, status.gateway, "")
            if gw.offline:
                return []
            gw.offline = True
            for watch in gw.watches:
                watch.ok = False
            message = f"Gateway {gw.gateway} reports offline"
            return [_gateway_condition(gw, active=True, ts_ms=now_ms, message=message)]
        if gw is None or not gw.offline:
            return []
        return [self._back(gw, now_ms, "online again")]

    def _back(self, gw: Gateway, now_ms: int, how: str) -> Condition:
        gw.offline = False
        for watch in gw.watches:
            if watch.suppressed:
                watch.suppressed = False
                watch.last_seen_ms = max(watch.last_seen_ms, now_ms)
        return _gateway_condition(
            gw, active=False, ts_ms=now_ms, message=f"Gateway {gw.gateway} {how}"
        )

    def _gateway(self, enterprise: str, gateway: str, installation: str) -> Gateway:
        key = (enterprise, gateway)
        gw = self._gateways.get(key)
        if gw is None:
            gw = self._gateways[key] = Gateway(enterprise, gateway, installation)
        elif not gw.installation and not gw.offline:
            gw.installation = installation
        return gw

    def _attach(self, watch: Watch, gw: Gateway) -> None:
        if watch.gateway is not None:
            watch.gateway.watches.remove(watch)
        watch.gateway = gw
        watch.gw_id = gw.gateway
        watch.ok = False
        gw.watches.append(watch)
        if not gw.installation and not gw.offline:  # an open alarm keeps its identity
            gw.installation = watch.point.installation


def _condition(
    point: Point, type_: AlarmType, *, active: bool, ts_ms: int, message: str
) -> Condition:
    # value/limit stay empty: the alarm JSON's value is a process value in the point's
    # unit, and silence has none. The message carries the durations.
    return point_condition(
        point,
        type_,
        active=active,
        value=None,
        limit=None,
        ts_ms=ts_ms,
        message=message,
    )


def _gateway_condition(gw: Gateway, *, active: bool, ts_ms: int, message: str) -> Condition:
    return Condition(
        enterprise=gw.enterprise,
        installation=gw.installation,
        tag=gw.gateway,
        type=AlarmType.GATEWAY_OFFLINE,
        active=active,
        value=None,
        limit=None,
        ts_ms=ts_ms,
        message=message,
    )
