"""A least-squares slope over a sliding time window, O(1) per reading, fixed memory.

The window of ``W`` seconds is cut into :data:`BUCKETS` buckets of ``W / BUCKETS``. A
reading is appended to the current bucket (two appends to an ``array('d')``), as time
and value relative to the window's origin — a time and a value moved to the newest
bucket every window, so the numbers stay small and Σv² keeps its precision. When a
reading opens a new bucket, the closed one is reduced to its sums (n, Σt, Σv, Σt², Σtv,
Σv²) in a ring of four, over the bucket leaving the window — O(1) per reading — and
the line through the window (the last ``W`` seconds, up to the bucket boundary) is
fitted once from the four buckets' sums. The fit is evaluated once per bucket (every
``W / 4``) — and, for TREND, between bucket ends when the last fit said a limit was
coming within reach (:meth:`SlopeWindow.refit`, which adds the current bucket's
readings). The common reading costs a comparison and two appends (running sums, six
float additions, measured ~10 % slower at 100,000 points: each makes a float object);
memory is one array: four buckets of six sums, then one bucket's readings.

A fit is *reliable* only when it has at least :data:`MIN_SAMPLES` readings covering at
least half the window, and its slope is significant: ``|slope| / stderr ≥``
:data:`MIN_T`. That last test makes the slope robust to one noisy sample: a single
outlier of any size among ``n ≥ 6`` evenly spaced readings moves the slope, but it
inflates the residuals as much, and its t-statistic stays below √(3(n−2)/(n−4)) ≤ 3 —
while a real ramp has small residuals and a large t. "Covering" counts each reading as
standing for its share of the time: ``n`` evenly spaced readings ``Δ`` apart cover
``n·Δ`` seconds (the spread test compares the readings' time variance with that of
``n`` such readings over half the window).

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
REBASE_WINDOWS = 4
"""The origin moves every this many windows (a rebase costs as much as a fit): times in
the sums stay below ~4 windows of milliseconds, whose squares keep 13 digits."""
_FIELDS = 6  # n, Σt, Σv, Σt², Σtv, Σv² — t in ms relative to the origin
_NO_BUCKET = -(2**62)
_ZEROS = array("d", bytes(8 * _FIELDS))
RING = _FIELDS * BUCKETS
"""``buf[:RING]``: the closed buckets' sums."""
FIT = 5
"""``buf[RING:HEAD]``: the last fit — n, slope (per second), value at ``end_ms``,
Σ(t−t̄)² (s²), the residuals' Σ²."""
HEAD = RING + FIT
"""``buf[HEAD:]``: the current bucket's readings."""
_EMPTY = array("d", bytes(8 * HEAD))


class SlopeWindow:
    """The running sums, and the fit of the window that last closed (``add`` returns
    the window itself as the fit: no object per evaluation).

    The engine's hot path appends a reading to ``buf`` inline while ``ts < due_ms``
    (the bucket's end, or earlier when TREND asked to be judged sooner)."""

    __slots__ = (
        "_bucket_ms",
        "_head",
        "buf",
        "due_ms",
        "end_bucket_ms",
        "end_ms",
        "o_ms",
        "o_v",
        "window_s",
    )

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"slope window must be > 0 s, got {window_s}")
        self.window_s = window_s
        self._bucket_ms = shared(max(1, round(window_s * 1000 / BUCKETS)))
        self._head = 0
        self.end_bucket_ms = self.due_ms = self.o_ms = _NO_BUCKET
        self.o_v = 0.0
        """The origin: readings are kept as (ms after ``o_ms``, value − ``o_v``)."""
        # One array per point holds it all, floats without an object each: the ring of
        # the closed buckets' sums (RING doubles), the last fit (FIT doubles: n, slope,
        # value, Σ(t−t̄)², SSE), then the current bucket's readings: time, value,
        # time... relative to the origin. Repeated, not built from bytes: sized exactly
        # (``frombytes`` over-allocates by 7 doubles).
        self.buf = _EMPTY * 1
        self.end_ms = 0
        """The end of the window of the last fit (epoch ms)."""

    @property
    def n(self) -> int:
        """Readings in the last fit."""
        return int(self.buf[RING])

    @property
    def slope(self) -> float:
        """The last fit's slope, units per second."""
        return self.buf[RING + 1]

    @property
    def value(self) -> float:
        """The last fit's line at ``end_ms`` (the window's end)."""
        return self.buf[RING + 2]

    @property
    def _sxx(self) -> float:
        return self.buf[RING + 3]

    @property
    def _sse(self) -> float:
        return self.buf[RING + 4]

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
        """Enough readings, covering half the window, and a significant slope."""
        half = self.window_s / 2
        n = self.n
        return (
            n >= MIN_SAMPLES
            and self._sxx * 12 * n >= half * half * (n * n - 1)
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

        The engine inlines the common case (``ts_ms < due_ms``: two appends)."""
        fit = self._roll(ts_ms, value) if ts_ms >= self.end_bucket_ms else None
        self.buf.append(ts_ms - self.o_ms)
        self.buf.append(value - self.o_v)
        return fit

    def accumulate(self, ts_ms: int, value: float) -> None:
        """Add a reading to the current bucket, nothing more (its bucket is open)."""
        self.buf.append(ts_ms - self.o_ms)
        self.buf.append(value - self.o_v)

    def refit(self, end_ms: int) -> SlopeWindow:
        """Fit the window up to ``end_ms``, the current bucket's readings included (the
        oldest bucket, partly out of the window by now, still counts): the judgement
        between bucket ends. The next bucket end fits the usual window again."""
        self._fit(end_ms, current=True)
        return self

    def _roll(self, ts_ms: int, value: float) -> SlopeWindow | None:
        bucket_ms = self._bucket_ms
        # the same boundaries for every window of this width: one int object, not one
        # per point (start, end and origin would be ~100 bytes a point)
        start_ms = shared(ts_ms - ts_ms % bucket_ms)
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
        self.end_bucket_ms = self.due_ms = shared(start_ms + bucket_ms)
        if not closed:
            return None
        self._fit(start_ms)
        return self

    def _close(self) -> None:
        """Move the current bucket's sums (nothing, after the first call) into the ring,
        over the bucket leaving the window."""
        buf = self.buf
        at = self._head * _FIELDS
        self._head = (self._head + 1) % BUCKETS
        if len(buf) == HEAD:
            buf[at : at + _FIELDS] = _ZEROS
            return
        tb = buf[HEAD::2]
        vb = buf[HEAD + 1 :: 2]
        buf[at] = len(tb)
        buf[at + 1] = sum(tb)
        buf[at + 2] = sum(vb)
        buf[at + 3] = sum(map(mul, tb, tb))
        buf[at + 4] = sum(map(mul, tb, vb))
        buf[at + 5] = sum(map(mul, vb, vb))
        # CPython's array shrinks its allocation here (by more than 16 items it
        # reallocates): the next bucket grows it again, a few reallocations per bucket
        del buf[HEAD:]

    def _rebase(self, o_ms: int, o_v: float) -> None:
        """Move the origin to (``o_ms``, ``o_v``); the current bucket is empty."""
        ring = self.buf
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

    def _fit(self, end_ms: int, *, current: bool = False) -> None:
        # Summed afresh from the buckets each time (4 × 6 additions), not kept by adding
        # and subtracting: an outlier of 1e6 would leave rounding residue in Σv² after
        # it left the window, and a flat signal would then show a "perfect" tiny slope.
        r = self.buf  # BUCKETS = 4
        n = r[0] + r[6] + r[12] + r[18]
        st = r[1] + r[7] + r[13] + r[19]
        sv = r[2] + r[8] + r[14] + r[20]
        stt = r[3] + r[9] + r[15] + r[21]
        stv = r[4] + r[10] + r[16] + r[22]
        svv = r[5] + r[11] + r[17] + r[23]
        if current and len(self.buf) > HEAD:
            cn, ct, cv, ctt, ctv, cvv = _sums(self.buf[HEAD:])
            n += cn
            st += ct
            sv += cv
            stt += ctt
            stv += ctv
            svv += cvv
        self.end_ms = end_ms
        count = round(n)
        fit = self.buf
        if count < 2:
            fit[RING : RING + FIT] = array(
                "d", (count, 0.0, self.o_v + (sv / n if count else 0.0), 0.0, 0.0)
            )
            return
        mean_t = st / n
        sxx = stt - st * mean_t
        sxy = stv - mean_t * sv
        slope = sxy / sxx if sxx > 0 else 0.0  # per ms
        syy = svv - sv * sv / n
        sse = syy - slope * sxy
        fit[RING] = count
        fit[RING + 1] = slope * 1000
        fit[RING + 2] = self.o_v + sv / n + slope * (end_ms - self.o_ms - mean_t)
        fit[RING + 3] = sxx * 1e-6  # in s²
        fit[RING + 4] = sse if sse > 1e-12 * syy else 0.0


def _sums(buf: array[float]) -> array[float]:
    """n, Σt, Σv, Σt², Σtv, Σv² of a bucket's readings (time, value, time...)."""
    if not buf:
        return _ZEROS
    tb = buf[0::2]
    vb = buf[1::2]
    return array(
        "d",
        (
            len(tb),
            sum(tb),
            sum(vb),
            sum(map(mul, tb, tb)),
            sum(map(mul, tb, vb)),
            sum(map(mul, vb, vb)),
        ),
    )


Fit = SlopeWindow
"""What ROC and TREND judge: a window just after ``add`` closed a bucket (or a
:meth:`~SlopeWindow.refit`)."""
