"""Alarm limits (HH / H / L / LL) with deadband hysteresis, from the point table.

Each limit is its own condition type, so a level above HH has both H and HH active and
operators see the escalation. A high limit becomes active when ``value >= limit`` and
inactive only when ``value < limit - deadband`` (low limits mirror this): a signal
hovering around a limit inside the deadband does not flap (ISA-18.2 deadband;
ThingsBoard users ask for exactly this, thingsboard/thingsboard#7943).

Optional ISA-18.2 delays from the point table: ``on_delay_s`` — the limit must be
exceeded by every reading for that long (reading timestamps) before the condition
becomes active, so a shorter excursion never alarms; ``off_delay_s`` — the value must
stay past the reset point that long before the condition clears, so a value hovering
at the reset point does not chatter. Any reading back on the other side restarts the
delay.

Readings of quality ``bad`` say nothing about the process, so limits ignore them (the
FAULT detector reports the instrument). The common case — a reading well inside
every limit on a point with nothing active or pending — costs two comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from detectors.base import format_value, point_condition
from detectors.defaults import off_delay_ms, on_delay_ms
from hazwatch.models import AlarmType, Condition, Point, Quality, Reading


@dataclass(frozen=True, slots=True)
class _Limit:
    type: AlarmType
    limit: float
    reset: float
    """Past this value (below for high limits, above for low ones) the condition clears."""
    high: bool

    def trips(self, value: float) -> bool:
        return value >= self.limit if self.high else value <= self.limit

    def resets(self, value: float) -> bool:
        return value < self.reset if self.high else value > self.reset


def limit_values(
    point: Point, defaults: Mapping[str, float] | None = None
) -> dict[str, float | None]:
    """The point's ``ll``/``l``/``h``/``hh``, or ``defaults`` instead when given."""
    if defaults is not None:
        return {name: defaults.get(name) for name in ("ll", "l", "h", "hh")}
    return {"ll": point.ll, "l": point.l, "h": point.h, "hh": point.hh}


class LimitDetector:
    """The alarm limits of one point.

    >>> from hazwatch.models import Point, Reading
    >>> point = Point(enterprise="E001", installation="MH01", tag="TK101_LT",
    ...               name="Tank 101 level", kind="level", unit="m",
    ...               l=1.0, h=10.5, hh=11.0, deadband=0.05)
    >>> level = LimitDetector(point)
    >>> def reading(value, ts_ms):
    ...     return Reading("E001", "gw1", "TK101_LT", value, ts_ms)
    >>> [c.message for c in level.update(reading(11.2, 1_000), now_ms=1_000)]
    ['Tank 101 level 11.2 m above H 10.5 m', 'Tank 101 level 11.2 m above HH 11.0 m']
    >>> level.update(reading(10.97, 2_000), now_ms=2_000)   # inside HH's deadband
    []
    >>> [c.message for c in level.update(reading(10.9, 3_000), now_ms=3_000)]
    ['Tank 101 level 10.9 m back below HH 11.0 m']
    >>> sorted(level.active)
    [<AlarmType.H: 'H'>]
    """

    __slots__ = (
        "_limits",
        "_off_ms",
        "_on_ms",
        "_point",
        "on",
        "pending",
        "quiet_above",
        "quiet_below",
    )

    def __init__(self, point: Point, defaults: Mapping[str, float] | None = None) -> None:
        """``defaults``: limits (``ll``/``l``/``h``/``hh``) to use instead of the point's
        (its kind's default limits, :mod:`detectors.electricity`)."""
        self._point = point
        self._limits = _limits_of(point, defaults)
        # With nothing active, a value strictly between these trips no limit.
        self.quiet_above, self.quiet_below = _quiet(self._limits)
        # Both None until first needed: most points never have a limit active, and two
        # empty dicts per point are 128 bytes × 100,000 points.
        self.on: dict[AlarmType, None] | None = None
        """The limit conditions active (read it through :attr:`active`)."""
        self.pending: dict[AlarmType, int] | None = None
        """Limits waiting out their on-delay (inactive) or off-delay (active): since when."""
        self._on_ms = on_delay_ms(point)
        self._off_ms = off_delay_ms(point)

    @property
    def point(self) -> Point:
        return self._point

    @property
    def active(self) -> frozenset[AlarmType]:
        """The limit conditions currently active."""
        return frozenset(self.on or ())

    def assume_active(self, types: Iterable[AlarmType]) -> None:
        """Start from conditions known to be active (after a restart, from the journal's
        open alarms), so the next reading inside the limits clears them. Types this
        point has no limit for are ignored."""
        own = {limit.type for limit in self._limits}
        self.on = (dict.fromkeys(t for t in types if t in own) | (self.on or {})) or None
        self.pending = None

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:  # noqa: ARG002 - the Detector protocol; limits go by reading time
        value = reading.value
        if not self.on and not self.pending and self.quiet_above < value < self.quiet_below:
            return []
        if reading.quality is Quality.BAD:
            return []
        if self.on is None:
            self.on = {}
        if self.pending is None:
            self.pending = {}
        active = self.on
        pending = self.pending
        ts_ms = reading.ts_ms
        changes: list[Condition] = []
        # Clear the most severe first, raise the least severe first: events then read
        # like the process moved (H, HH on the way up; HH, H on the way down).
        for limit in reversed(self._limits):
            if limit.type not in active:
                continue
            if not limit.resets(value):
                pending.pop(limit.type, None)
            elif self._held(limit.type, ts_ms, self._off_ms):
                del active[limit.type]
                changes.append(self._condition(limit, reading, active=False))
        for limit in self._limits:
            if limit.type in active:
                continue
            if not limit.trips(value):
                pending.pop(limit.type, None)
            elif self._held(limit.type, ts_ms, self._on_ms):
                active[limit.type] = None
                changes.append(self._condition(limit, reading, active=True))
        if not active:
            self.on = None
        if not pending:
            self.pending = None
        return changes

    def _held(self, type_: AlarmType, ts_ms: int, delay_ms: int) -> bool:
        """The new side has held for ``delay_ms`` (counting from its first reading)."""
        if delay_ms <= 0:
            return True
        pending = self.pending
        assert pending is not None  # made by update
        since = pending.setdefault(type_, ts_ms)
        if ts_ms - since >= delay_ms:
            del pending[type_]
            return True
        return False

    def _condition(self, limit: _Limit, reading: Reading, *, active: bool) -> Condition:
        point = self._point
        if active:
            where = "above" if limit.high else "below"
        else:
            where = "back below" if limit.high else "back above"
        message = (
            f"{point.name} {format_value(reading.value, point.unit)} {where} "
            f"{limit.type} {format_value(limit.limit, point.unit)}"
        )
        return point_condition(
            point,
            limit.type,
            active=active,
            value=reading.value,
            limit=limit.limit,
            ts_ms=reading.ts_ms,
            message=message,
        )


def quiet_band(point: Point, defaults: Mapping[str, float] | None = None) -> tuple[float, float]:
    """``(above, below)``: with nothing active or pending, a value strictly between them
    trips none of the point's limits — the same band as a :class:`LimitDetector`'s
    ``quiet_above`` / ``quiet_below``, without building one.

    >>> from hazwatch.models import Point
    >>> quiet_band(Point(enterprise="E001", installation="MH01", tag="TK101_LT",
    ...                  name="Tank 101 level", kind="level", l=1.0, h=10.5, hh=11.0))
    (1.0, 10.5)
    """
    return _quiet(_limits_of(point, defaults))


def _limits_of(point: Point, defaults: Mapping[str, float] | None) -> tuple[_Limit, ...]:
    given = limit_values(point, defaults)
    return _limit_set(
        _exact(given["h"]),
        _exact(given["hh"]),
        _exact(given["l"]),
        _exact(given["ll"]),
        _exact(point.deadband or 0.0),
    )


def _quiet(limits: tuple[_Limit, ...]) -> tuple[float, float]:
    above = max((x.limit for x in limits if not x.high), default=-math.inf)
    below = min((x.limit for x in limits if x.high), default=math.inf)
    return above, below


_Key = tuple[float, str] | None


def _exact(value: float | None) -> _Key:
    """A float as a cache key that tells ``-0.0`` from ``0.0`` (equal as dict keys, but
    not in an alarm message)."""
    return None if value is None else (value, float(value).hex())


@lru_cache(maxsize=4096)
def _limit_set(h: _Key, hh: _Key, l: _Key, ll: _Key, deadband: _Key) -> tuple[_Limit, ...]:  # noqa: E741
    """The limits of one point, shared (immutable) by every point with the same values:
    a point table repeats the same few limit sets, and three ``_Limit`` records and their
    reset values are ~330 bytes per point."""
    band = 0.0 if deadband is None else deadband[0]
    limits: list[_Limit] = []
    for type_, key in ((AlarmType.H, h), (AlarmType.HH, hh)):
        if key is not None:
            limits.append(_Limit(type_, key[0], key[0] - band, high=True))
    for type_, key in ((AlarmType.L, l), (AlarmType.LL, ll)):
        if key is not None:
            limits.append(_Limit(type_, key[0], key[0] + band, high=False))
    return tuple(limits)
