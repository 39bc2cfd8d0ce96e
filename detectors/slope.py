"""A least-squares slope over a sliding time window, O(1) per reading, fixed memory.

The window of ``W`` seconds is cut into :data:`BUCKETS` buckets of ``W / BUCKETS``. A
reading is appended to the current bucket (two appends to an ``array('d')``), as time
and value relative to the window's origin — a time and a value moved to the newest
bucket every window, so the numbers stay small and Σv² keeps its precision. When a
reading opens a new bucket, the closed one is reduced to its sums (n, Σt, Σv, Σt², Σtv,
Σv²) in a ring of four, over the bucket leaving the window — O(1) per reading — and
the line through the window (the last ``W`` seconds, up to the bucket boundary) is
fitted once from the four buckets' sums. So the fit is evaluated once per bucket
(every ``W / 4``), not per reading: the common reading costs a comparison and two
appends; memory is four buckets of six sums plus one bucket's readings.

A fit is *reliable* only when it has at least :data:`MIN_SAMPLES` readings spread over
at least half the window, and its slope is significant: ``|slope| / stderr ≥``
:data:`MIN_T`. That last test makes the slope robust to one noisy sample: a single
outlier of any size among ``n ≥ 6`` evenly spaced readings moves the slope, but it
inflates the residuals as much, and its t-statistic stays below √(3(n−2)/(n−4)) ≤ 3 —
while a real ramp has small residuals and a large t.

>>> window = SlopeWindow(80.0)          # 4 buckets of 20 s
>>> fits = [window.add(k * 1000, 2.0 + 0.1 * k) for k in range(0, 101)]
>>> fit = [f for f in fits if f is not None][-1]
>>> (fit.end_ms, fit.n, round(fit.slope * 60, 6), round(fit.value, 6), fit.reliable)
(100000, 80, 6.0, 12.0, True)
"""

from __future__ import annotations

import math
from array import array
from operator import mul

from detectors.base import shared

BUCKETS = 4
MIN_SAMPLES = 6
MIN_T = 4.0
REBASE_WINDOWS = 1
_FIELDS = 6  # n, Σt, Σv, Σt², Σtv, Σv² — t in ms relative to the origin
_NO_BUCKET = -(2**62)
_ZEROS = array("d", bytes(8 * _FIELDS))


class SlopeWindow:
    """The running sums, and the fit of the window that last closed (``add`` returns
    the window itself as the fit: no object per evaluation)."""

    __slots__ = (
        "_bucket_ms",
        "_head",
        "_ring",
        "_sse",
        "_sxx",
        "buf",
        "end_bucket_ms",
        "end_ms",
        "n",
        "o_ms",
        "o_v",
        "slope",
        "start_ms",
        "value",
        "window_s",
    )

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"slope window must be > 0 s, got {window_s}")
        self.window_s = window_s
        self._bucket_ms = shared(max(1, round(window_s * 1000 / BUCKETS)))
        # repeated, not built from bytes: sized exactly (``frombytes`` over-allocates
        # by 7 doubles, 56 bytes per point)
        self._ring = _ZEROS * BUCKETS
        self._head = 0
        self.start_ms = self.end_bucket_ms = self.o_ms = _NO_BUCKET
        self.o_v = 0.0
        """The origin: readings are kept as (ms after ``o_ms``, value − ``o_v``)."""
        self.buf = array("d")
        """The current bucket's readings: time, value, time... relative to the origin."""
        # the fit of the window that last closed
        self.n = 0
        self.slope = 0.0
        """Units per second."""
        self.value = 0.0
        """The line's value at ``end_ms`` (the window's end)."""
        self.end_ms = 0
        self._sxx = self._sse = 0.0

    @property
    def t(self) -> float:
        """``|slope| / stderr(slope)``: ``inf`` for a perfect line, 0 for a flat one."""
        if self.slope == 0:
            return 0.0
        if self.n <= 2 or self._sse <= 0:
            return math.inf
        return abs(self.slope) * math.sqrt(self._sxx * (self.n - 2) / self._sse)

    @property
    def reliable(self) -> bool:
        """Enough readings, spread over half the window, and a significant slope."""
        half = self.window_s / 2
        return (
            self.n >= MIN_SAMPLES
            and self._sxx / self.n >= half * half / 12
            # a rise over the window below rounding is no slope at all
            and abs(self.slope) * self.window_s > 1e-9 * max(1.0, abs(self.value))
            and self.t >= MIN_T
        )

    def crossing_ms(self, limit: float) -> float:
        """When the line reaches ``limit`` (epoch ms; ``inf`` if it never does)."""
        if self.slope == 0:
            return math.inf
        return self.end_ms + (limit - self.value) / self.slope * 1000

    def add(self, ts_ms: int, value: float) -> SlopeWindow | None:
        """Add one reading; returns the window, fitted, when this reading closed a bucket.

        The engine inlines the common case (``ts_ms < end_bucket_ms``: two appends)."""
        fit = self._roll(ts_ms, value) if ts_ms >= self.end_bucket_ms else None
        self.buf.append(ts_ms - self.o_ms)
        self.buf.append(value - self.o_v)
        return fit

    def _roll(self, ts_ms: int, value: float) -> SlopeWindow | None:
        bucket_ms = self._bucket_ms
        start_ms = ts_ms - ts_ms % bucket_ms
        if self.end_bucket_ms == _NO_BUCKET:
            closed = 0
            self.o_ms, self.o_v = start_ms, value
        else:
            # the current bucket, then one empty bucket per bucket width of silence —
            # after a window or more of it, nothing old is left in the ring
            closed = 1 + min(BUCKETS, (start_ms - self.end_bucket_ms) // bucket_ms)
            for _ in range(closed):
                self._close()
            if start_ms - self.o_ms > REBASE_WINDOWS * BUCKETS * bucket_ms:
                self._rebase(start_ms, value)
        self.start_ms = start_ms
        self.end_bucket_ms = start_ms + bucket_ms
        if not closed:
            return None
        self._fit(start_ms)
        return self

    def _close(self) -> None:
        """Move the current bucket's sums (nothing, after the first call) into the ring,
        over the bucket leaving the window."""
        ring = self._ring
        at = self._head * _FIELDS
        self._head = (self._head + 1) % BUCKETS
        buf = self.buf
        n = len(buf) // 2
        if n == 0:
            st = sv = stt = stv = svv = 0.0
        else:
            tb = buf[0::2]
            vb = buf[1::2]
            st = sum(tb)
            sv = sum(vb)
            stt = sum(map(mul, tb, tb))
            stv = sum(map(mul, tb, vb))
            svv = sum(map(mul, vb, vb))
            self.buf = array("d")
        ring[at] = n
        ring[at + 1] = st
        ring[at + 2] = sv
        ring[at + 3] = stt
        ring[at + 4] = stv
        ring[at + 5] = svv

    def _rebase(self, o_ms: int, o_v: float) -> None:
        """Move the origin to (``o_ms``, ``o_v``)."""
        ring = self._ring
        dt = self.o_ms - o_ms
        dv = self.o_v - o_v
        for at in range(0, _FIELDS * BUCKETS, _FIELDS):
            n, st, sv, stt, stv, svv = ring[at : at + _FIELDS]
            if n == 0:
                continue
            shifted = (
                n,
                st + n * dt,
                sv + n * dv,
                stt + 2 * dt * st + n * dt * dt,
                stv + dv * st + dt * sv + n * dt * dv,
                svv + 2 * dv * sv + n * dv * dv,
            )
            ring[at : at + _FIELDS] = array("d", shifted)
        self.o_ms, self.o_v = o_ms, o_v

    def _fit(self, end_ms: int) -> None:
        # Summed afresh from the buckets each time (4 × 6 additions), not kept by adding
        # and subtracting: an outlier of 1e6 would leave rounding residue in Σv² after
        # it left the window, and a flat signal would then show a "perfect" tiny slope.
        ring = self._ring
        n, st, sv, stt, stv, svv = (sum(ring[i::_FIELDS]) for i in range(_FIELDS))
        self.end_ms = end_ms
        self.n = count = round(n)
        if count < 2:
            self.slope = self._sxx = self._sse = 0.0
            self.value = self.o_v + (sv / n if count else 0.0)
            return
        mean_t = st / n
        sxx = stt - st * mean_t
        sxy = stv - mean_t * sv
        slope = sxy / sxx if sxx > 0 else 0.0  # per ms
        self.slope = slope * 1000
        self.value = self.o_v + sv / n + slope * (end_ms - self.o_ms - mean_t)
        self._sxx = sxx * 1e-6  # in s²
        syy = svv - sv * sv / n
        sse = syy - slope * sxy
        self._sse = sse if sse > 1e-12 * syy else 0.0


Fit = SlopeWindow
"""What ROC and TREND judge: a window just after ``add`` closed a bucket."""
