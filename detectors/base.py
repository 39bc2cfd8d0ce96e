"""What every detector is: a per-point state machine fed one reading at a time.

Detectors are synchronous and pure: no I/O, no clock reads. ``update(reading, now_ms)``
takes the time from its caller (the wiring's clock, a replay's, a test's), so the same
stream gives the same conditions at any speed. They return only *changes* — a condition
became active or inactive — never a repeat of the current state; alerting turns those
changes into alarms (docs/architecture.md#rules-of-the-flow).

Two shapes exist:

- :class:`Detector`: driven by readings (limits, fault, rate of change, trend, stuck,
  suspended load).
- :class:`TimedDetector`: also driven by the passing of time (staleness and gateway
  silence), through ``tick(now_ms)``.

Delays (on/off delay, stuck, suspended load) count in reading timestamps, so they need
no tick. docs/detectors.md lists every detector and the columns that tune it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol, TypeVar

from hazwatch.models import AlarmType, Condition, Point, Reading

_N = TypeVar("_N", int, float)


class Detector(Protocol):
    def update(self, reading: Reading, now_ms: int) -> list[Condition]:
        """Feed one reading; return the conditions that changed (usually ``[]``)."""
        ...


class TimedDetector(Detector, Protocol):
    def tick(self, now_ms: int) -> list[Condition]:
        """Let time pass without a reading; return the conditions that changed."""
        ...


def point_condition(
    point: Point,
    type_: AlarmType,
    *,
    active: bool,
    value: float | None,
    limit: float | None,
    ts_ms: int,
    message: str,
) -> Condition:
    """A condition of one registered point (every detector but the gateway's)."""
    return Condition(
        enterprise=point.enterprise,
        installation=point.installation,
        tag=point.tag,
        type=type_,
        active=active,
        value=value,
        limit=limit,
        ts_ms=ts_ms,
        message=message,
    )


def format_value(value: float, unit: str = "", digits: int = 6) -> str:
    """A value as an operator reads it in an alarm message.

    Six significant digits (a reading as sent), always with a decimal point, then the
    unit; ``digits=3`` for what hazwatch derived (a rate, a predicted time), where more
    digits would be noise.

    >>> format_value(11.0, "m")
    '11.0 m'
    >>> format_value(0.1 + 0.2, "MPa")
    '0.3 MPa'
    >>> format_value(25, "%LEL")
    '25.0 %LEL'
    >>> format_value(1.5)
    '1.5'
    >>> format_value(0.848112, "m/min", digits=3)
    '0.848 m/min'
    """
    text = f"{value:.{digits}g}"
    if text.lstrip("-").isdigit():
        text += ".0"
    return f"{text} {unit}" if unit else text


def shared(value: _N) -> _N:
    """One object for equal numbers of detector state (a window's size, a delay in ms):
    every point of a kind has the same ones, and each int or float is 24-32 bytes.
    Equal and of the same type, so nothing computed from it changes. For positive
    values (``-0.0`` could come back as ``0.0``).

    >>> shared(180_000) is shared(int("180000"))
    True
    >>> type(shared(5.0)), type(shared(5))
    (<class 'float'>, <class 'int'>)
    """
    found: _N = _shared(value)
    return found


@lru_cache(maxsize=4096, typed=True)
def _shared(value: object) -> Any:
    return value
