"""Smart electricity (智慧用电): default limits, and load drawn by suspended enterprises.

**Default limits.** A ``residual_current`` or ``cable_temp`` point with no limit of its
own gets :data:`DEFAULT_LIMITS` (when its unit is the one the defaults are written in,
or empty): residual current H 300 mA / HH 500 mA — the common setting of residual-
current electrical-fire monitors (GB 14287.2 allows 20–1000 mA) — and cable
temperature H 70 °C (the limit of PVC insulation) / HH 90 °C (XLPE). A point with any
limit set keeps exactly its own.

**SUSPENDED_LOAD.** An enterprise ordered to stop production (``status = "suspended"``)
should draw no more than standby power; load above it reveals illegal production. Each
``power`` point of a suspended enterprise raises SUSPENDED_LOAD when its value stays
above ``[detectors] suspended_standby`` (default 5, in the point's unit — kW) for
``suspended_delay_s`` (default 600 s, on reading timestamps), and clears once a
reading is back at or below the standby level.

>>> from hazwatch.models import Point, Reading
>>> point = Point(enterprise="E009", installation="DB01", tag="P01", name="Main power",
...               kind="power", unit="kW")
>>> load = SuspendedLoadDetector(point, standby=5.0, delay_s=60)
>>> def at(value, s):
...     return load.update(Reading("E009", "gw", "P01", value, s * 1000), s * 1000)
>>> at(80.0, 0), at(85.0, 30)
([], [])
>>> [c.message for c in at(82.0, 60)]
['Main power: suspended enterprise drawing 82.0 kW (standby 5.0 kW) for 60.0 s']
>>> [c.message for c in at(3.0, 90)]
['Main power back to standby (3.0 kW)']
>>> with_default_limits(Point(enterprise="E", installation="I", tag="RC1", name="RC",
...                           kind="residual_current", unit="mA")).h
300.0
"""

from __future__ import annotations

from detectors.base import format_value, point_condition
from hazwatch.models import AlarmType, Condition, Point, PointKind, Quality, Reading

DEFAULT_LIMITS: dict[PointKind, tuple[frozenset[str], dict[str, float]]] = {
    PointKind.RESIDUAL_CURRENT: (frozenset({"mA", ""}), {"h": 300.0, "hh": 500.0}),
    PointKind.CABLE_TEMP: (
        frozenset({"degC", "°C", "℃", "C", ""}),
        {"h": 70.0, "hh": 90.0},
    ),
}
"""Per kind: the units the defaults are written in, and the limits."""


def default_limits(point: Point) -> dict[str, float] | None:
    """The limits its kind gives a point without limits of its own (else ``None``)."""
    defaults = DEFAULT_LIMITS.get(point.kind)
    if defaults is None or point.has_limits or point.unit not in defaults[0]:
        return None
    return defaults[1]


def with_default_limits(point: Point) -> Point:
    """The point, with its kind's default limits if it has none of its own."""
    defaults = default_limits(point)
    return point if defaults is None else point.model_copy(update=defaults)


class SuspendedLoadDetector:
    __slots__ = ("_delay_ms", "_since_ms", "active", "point", "standby")

    def __init__(self, point: Point, standby: float, delay_s: float) -> None:
        self.point = point
        self.standby = standby
        self._delay_ms = round(delay_s * 1000)
        self._since_ms: int | None = None
        self.active = False

    def assume_active(self) -> None:
        """After a restart: SUSPENDED_LOAD was active; a reading at standby clears it."""
        self.active = True

    def update(self, reading: Reading, now_ms: int) -> list[Condition]:  # noqa: ARG002 - the Detector protocol
        if reading.quality is Quality.BAD:
            return []
        above = reading.value > self.standby
        if not above:
            self._since_ms = None
            if not self.active:
                return []
            self.active = False
            value = format_value(reading.value, self.point.unit)
            return [self._condition(reading, f"{self.point.name} back to standby ({value})")]
        if self.active:
            return []
        if self._since_ms is None:
            self._since_ms = reading.ts_ms
        held_ms = reading.ts_ms - self._since_ms
        if held_ms < self._delay_ms:
            return []
        self.active = True
        unit = self.point.unit
        message = (
            f"{self.point.name}: suspended enterprise drawing "
            f"{format_value(reading.value, unit)} (standby {format_value(self.standby, unit)}) "
            f"for {format_value(held_ms / 1000)} s"
        )
        return [self._condition(reading, message)]

    def _condition(self, reading: Reading, message: str) -> Condition:
        point = self.point
        return point_condition(
            point,
            AlarmType.SUSPENDED_LOAD,
            active=self.active,
            value=reading.value,
            limit=self.standby,
            ts_ms=reading.ts_ms,
            message=message,
        )
