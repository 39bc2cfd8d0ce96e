"""Time parameters of the HTTP API: instants, steps, and the window of a history query.

The API accepts an instant as ISO 8601 *with* a UTC offset (``2025-11-22T14:00:00Z``,
``2025-11-22T22:00:00+08:00``) or as integer epoch milliseconds (``1763820000000``).
A time without an offset is refused: the operators' browsers are in UTC+8 and the
pipeline is in UTC, so a guess would move a trend by eight hours.

A step is integer milliseconds or a number with a unit (``500ms``, ``15s``, ``5m``,
``1h``, ``1d``). Without a step a history query gets a "nice" one that gives about
:data:`TARGET_BUCKETS` buckets.

>>> parse_instant("1763820000123", "start")
1763820000123
>>> parse_instant("2025-11-22T22:00:00.123+08:00", "start")
1763820000123
>>> parse_step("15s")
15000
>>> auto_step(3_600_000)  # one hour -> 15 s buckets (240 of them)
15000
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.sink import MAX_HISTORY_BUCKETS as MAX_BUCKETS

TARGET_BUCKETS = 300
DEFAULT_SPAN_MS = 3_600_000
MAX_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant ``ms_to_iso`` can print."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS = re.compile(r"[0-9]{1,15}", re.ASCII)
_STEP = re.compile(r"([0-9]{1,12})(ms|s|m|h|d)?", re.ASCII)
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1}
_SECOND = 1_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_NICE_STEPS_MS = (
    *(n * _SECOND for n in (1, 2, 5, 10, 15, 30)),
    *(n * _MINUTE for n in (1, 2, 5, 10, 15, 30)),
    *(n * _HOUR for n in (1, 2, 3, 6, 12)),
    _DAY,
)


class TimeParamError(ValueError):
    """A time parameter is malformed or the window it asks for is impossible.

    The message names the parameter and says what was expected; the API returns it
    as a 422 ``detail``.
    """


def parse_instant(raw: str, name: str) -> int:
    """ISO 8601 with an offset, or epoch milliseconds -> epoch milliseconds."""
    text = raw.strip()
    if _EPOCH_MS.fullmatch(text):
        ms = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise TimeParamError(
                f"{name}: expected ISO 8601 with an offset (2025-11-22T14:00:00Z) "
                f"or epoch milliseconds, got {raw!r}"
            ) from exc
        if moment.tzinfo is None:
            raise TimeParamError(
                f"{name}: expected a UTC offset (Z or +08:00) in {raw!r}; "
                "a time without one is ambiguous"
            )
        ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise TimeParamError(f"{name}: expected a time between 1970 and 9999, got {raw!r}")
    return ms


def parse_step(raw: str) -> int:
    """``"15s"`` -> ``15000``; a bare number is milliseconds."""
    match = _STEP.fullmatch(raw.strip())
    if match is None:
        raise TimeParamError(
            f"step: expected milliseconds or a number with ms/s/m/h/d (15s, 5m), got {raw!r}"
        )
    step = int(match[1]) * _UNIT_MS[match[2]]
    if step <= 0:
        raise TimeParamError(f"step: expected a step above zero, got {raw!r}")
    return step


def auto_step(span_ms: int) -> int:
    """The smallest nice step giving at most :data:`TARGET_BUCKETS` buckets over ``span_ms``."""
    wanted = math.ceil(span_ms / TARGET_BUCKETS)
    for step in _NICE_STEPS_MS:
        if step >= wanted:
            return step
    return math.ceil(wanted / _DAY) * _DAY


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    start_ms: int
    end_ms: int
    step_ms: int

    @property
    def buckets(self) -> int:
        return math.ceil((self.end_ms - self.start_ms) / self.step_ms)


def history_window(
    start: str | None, end: str | None, step: str | None, now_ms: int
) -> HistoryWindow:
    """Resolve the query parameters of a history request.

    Defaults: ``end`` = now, ``start`` = ``end`` − 1 h, ``step`` = :func:`auto_step`.
    Refuses ``start >= end`` and more than :data:`MAX_BUCKETS` buckets.
    """
    end_ms = parse_instant(end, "end") if end is not None else now_ms
    start_ms = parse_instant(start, "start") if start is not None else end_ms - DEFAULT_SPAN_MS
    if start_ms >= end_ms:
        raise TimeParamError(f"expected start before end, got start={start_ms} end={end_ms} (ms)")
    step_ms = parse_step(step) if step is not None else auto_step(end_ms - start_ms)
    window = HistoryWindow(start_ms, end_ms, step_ms)
    if window.buckets > MAX_BUCKETS:
        raise TimeParamError(
            f"step: {step_ms} ms over {end_ms - start_ms} ms gives {window.buckets} buckets; "
            f"expected at most {MAX_BUCKETS} (use a larger step or a shorter range)"
        )
    return window
