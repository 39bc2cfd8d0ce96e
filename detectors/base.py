"""What every detector is: a per-point state machine fed one reading at a time.

Detectors are synchronous and pure: no I/O, no clock reads. ``update(reading, now_ms)``
takes the time from its caller (the wiring's clock, a replay's, a test's), so the same
stream gives the same conditions at any speed. They return only *changes* — a condition
became active or inactive — never a repeat of the current state; alerting turns those
changes into alarms (DESIGN.md §1).

Two shapes exist:

- :class:`Detector`: driven by readings (limits, fault, rate of change, trend, stuck,
  suspended load).
- :class:`TimedDetector`: also driven by the passing of time (staleness and gateway
  silence), through ``tick(now_ms)``.

Delays (on/off delay, stuck, suspended load) count in reading timestamps, so they need
no tick. docs/detectors.md lists every detector and the columns that tune it.
"""

from __future__ import annotations

from typing import Protocol

from hazwatch.models import Condition, Reading


class Detector(Protocol):
    def update(self, reading: Reading, now_ms: int) -> list[Condition]:
        """Feed one reading; return the conditions that changed (usually ``[]``)."""
        ...


class TimedDetector(Detector, Protocol):
    def tick(self, now_ms: int) -> list[Condition]:
        """Let time pass without a reading; return the conditions that changed."""
        ...


def format_value(value: float, unit: str = "") -> str:
    """A value as an operator reads it in an alarm message.

    Six significant digits, always with a decimal point, then the unit.

    >>> format_value(11.0, "m")
    '11.0 m'
    >>> format_value(0.1 + 0.2, "MPa")
    '0.3 MPa'
    >>> format_value(25, "%LEL")
    '25.0 %LEL'
    >>> format_value(1.5)
    '1.5'
    """
    text = f"{value:.6g}"
    if text.lstrip("-").isdigit():
        text += ".0"
    return f"{text} {unit}" if unit else text
