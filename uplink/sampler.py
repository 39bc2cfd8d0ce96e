"""Which readings go upstream: a subset of the points, thinned by period and deadband.

The sampler sees readings in the order the ingest delivers them (after the spool
commit) and remembers, per point, the last reading it forwarded. A reading is
forwarded when

- it is its point's first;
- ``period_s`` > 0 and it is at least ``period_s`` newer than the last forwarded;
- a ``deadband`` is set and the value moved more than that from the last forwarded;
- its quality differs from the last forwarded one;
- or neither a period nor a deadband is set (every reading).

A reading **not newer** than the last forwarded one of its point is never forwarded.
That is what makes a crash harmless: the queue stores the forwarded readings and
this state in one transaction, the state is restored from it at start, and what the
spool replays or the broker redelivers after a crash is then either forwarded
exactly as it would have been, or skipped as already seen.

Pure and synchronous, like a detector: no clock, no I/O.

>>> from hazwatch.models import Reading
>>> s = ReadingSampler(period_s=10, deadband=0.5, select=lambda enterprise, tag: True)
>>> r = lambda v, ts: Reading("E1", "gw", "T1", v, ts)
>>> [(x.value, x.ts_ms) for x in s.sample([r(1, 0), r(1.2, 5_000), r(2, 6_000), r(2, 16_000)])]
[(1, 0), (2, 6000), (2, 16000)]
>>> s.sample([r(9, 16_000)])  # not newer than the last forwarded: a replay
[]
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Final

from hazwatch.models import SYSTEM_ENTERPRISE, PointKind, Quality, Reading, Registry

_EXCLUDED: Final = (0, 0.0, Quality.GOOD, False)
"""A point not in the uplink's subset (remembered, so it is decided once)."""

_State = tuple[int, float, Quality, bool]
"""Per point: last forwarded (ts_ms, value, quality), and whether it is selected."""


class PointSelection:
    """The points an uplink forwards: enterprises, tag patterns and kinds (each empty
    = all). Points unknown to the registry match no kind filter."""

    def __init__(
        self,
        registry: Registry,
        enterprises: Iterable[str] = (),
        tags: Iterable[str] = (),
        kinds: Iterable[PointKind] = (),
    ) -> None:
        self._registry = registry
        self._enterprises = frozenset(enterprises)
        patterns = [fnmatch.translate(p) for p in tags]
        self._tags = re.compile("|".join(patterns)) if patterns else None
        self._kinds = frozenset(kinds)

    def enterprise(self, enterprise: str) -> bool:
        if enterprise == SYSTEM_ENTERPRISE:
            return False
        return not self._enterprises or enterprise in self._enterprises

    def __call__(self, enterprise: str, tag: str) -> bool:
        if not self.enterprise(enterprise):
            return False
        if self._tags is not None and not self._tags.fullmatch(tag):
            return False
        if self._kinds:
            point = self._registry.point(enterprise, tag)
            return point is not None and point.kind in self._kinds
        return True


class ReadingSampler:
    """``sample(readings)`` → those to forward, in order; ``restore(...)`` at start."""

    def __init__(
        self,
        *,
        period_s: float,
        deadband: float | None,
        select: Callable[[str, str], bool],
    ) -> None:
        self._period_ms = round(period_s * 1000)
        self._deadband = deadband
        self._every = self._period_ms == 0 and deadband is None
        self._select = select
        self._points: dict[str, dict[str, _State]] = {}

    def restore(self, forwarded: Iterable[Reading]) -> None:
        """The last reading forwarded per point, as the queue kept it."""
        for r in forwarded:
            self._points.setdefault(r.enterprise, {})[r.tag] = (r.ts_ms, r.value, r.quality, True)

    def sample(self, readings: Iterable[Reading]) -> list[Reading]:
        forwarded: list[Reading] = []
        points = self._points
        for r in readings:
            tags = points.get(r.enterprise)
            if tags is None:
                tags = points[r.enterprise] = {}
            last = tags.get(r.tag)
            if last is None:
                if not self._select(r.enterprise, r.tag):
                    tags[r.tag] = _EXCLUDED
                    continue
            elif not last[3] or r.ts_ms <= last[0] or not self._due(r, last):
                continue
            tags[r.tag] = (r.ts_ms, r.value, r.quality, True)
            forwarded.append(r)
        return forwarded

    def _due(self, r: Reading, last: _State) -> bool:
        if self._every or r.quality != last[2]:
            return True
        if self._period_ms and r.ts_ms - last[0] >= self._period_ms:
            return True
        return self._deadband is not None and abs(r.value - last[1]) > self._deadband
