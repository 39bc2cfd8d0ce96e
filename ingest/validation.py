"""Codec-independent checks of decoded readings, against the registry and the clock.

Codecs check form (is ``ts`` a timestamp?); this checks meaning, which needs
collaborators a codec must not hold:

- **time window**: a reading's time must lie in ``[now - max_past_s, now + max_future_s]``
  (docs/contract.md §1: 7 days back, 5 minutes ahead by default). A clock that is off by
  a year, or a timestamp in seconds instead of milliseconds, is rejected with
  ``ts_out_of_window`` — stored, it would land in a shard nobody looks at.
- **registry**: a tag that is not registered for the topic's enterprise is not
  stored as a series (docs/architecture.md#security: the ingest checks again that the topic's
  enterprise owns the tag). It is counted in ``metrics.unknown_tags`` and listed by
  :meth:`ReadingValidator.unknown_tags`, so an operator can register it (a bounded
  list: :mod:`ingest.unknowntags`). A message of an enterprise the registry does
  not hold at all is rejected (``unknown_enterprise``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hazwatch.metrics import Metrics
from hazwatch.models import Condition, Reading, Registry, ms_to_iso
from hazwatch.settings import IngestSettings
from ingest.codec import Decoded, Rejection, reading_head
from ingest.unknowntags import UnknownTag, UnknownTagTable

__all__ = ["ReadingValidator", "UnknownTag"]


class ReadingValidator:
    def __init__(
        self,
        registry: Registry,
        limits: IngestSettings,
        metrics: Metrics,
        on_system: Callable[[list[Condition]], object] | None = None,
    ) -> None:
        self._registry = registry
        self._past_ms = round(limits.max_past_s * 1000)
        self._future_ms = round(limits.max_future_s * 1000)
        self._metrics = metrics
        self._unknown = UnknownTagTable(metrics, on_system=on_system)

    def check(self, decoded: Decoded, now_ms: int) -> Decoded:
        """``decoded`` holding only the readings that may be stored (itself, if
        that is all of them; else a copy).

        Readings outside the window move to ``rejections``; readings of unknown tags
        are dropped, counted and listed. A message of an enterprise the registry does
        not hold is rejected whole (``unknown_enterprise``): its gateway is not tracked
        and its ids never become metric labels.
        """
        enterprise = decoded.enterprise
        if enterprise is not None and enterprise not in self._registry.enterprises:
            return self._unknown_enterprise(decoded, enterprise)
        if not decoded.readings:
            return decoded
        earliest = now_ms - self._past_ms
        latest = now_ms + self._future_ms
        point = self._registry.point
        if all(
            earliest <= r.ts_ms <= latest and point(r.enterprise, r.tag) is not None
            for r in decoded.readings
        ):
            return decoded  # the common case: nothing to take out, nothing to copy
        kept: list[Reading] = []
        rejections = list(decoded.rejections)
        remember = self._unknown.remember
        for reading in decoded.readings:
            if point(reading.enterprise, reading.tag) is None:
                remember(reading.enterprise, reading.gateway, reading.tag, now_ms)
            elif earliest <= reading.ts_ms <= latest:
                kept.append(reading)
            else:
                rejections.append(
                    Rejection(
                        ts_ms=decoded.received_ms,
                        topic=decoded.topic,
                        reason="ts_out_of_window",
                        detail=self._window_detail(reading, earliest, latest),
                        payload_head=reading_head(reading),
                    )
                )
        return dataclasses.replace(decoded, readings=kept, rejections=rejections)

    def _unknown_enterprise(self, decoded: Decoded, enterprise: str) -> Decoded:
        rejection = Rejection(
            ts_ms=decoded.received_ms,
            topic=decoded.topic,
            reason="unknown_enterprise",
            detail=(
                f"enterprise {enterprise!r} is not in the registry: expected one of its "
                f"{len(self._registry.enterprises)} enterprise ids (registry/enterprises/)"
            ),
            payload_head=f"{len(decoded.readings)} readings" if decoded.readings else "",
        )
        return Decoded(
            codec=decoded.codec,
            topic=decoded.topic,
            received_ms=decoded.received_ms,
            rejections=[*decoded.rejections, rejection],
        )

    def unknown_tags(self) -> list[UnknownTag]:
        """Unknown tags seen, most recently seen first (bounded: ``ingest.unknowntags``)."""
        return self._unknown.listing()

    def check_quiet(self, now_ms: int) -> None:
        """Clear the unknown-tag flood condition once it is over (the wiring's tick)."""
        self._unknown.check_quiet(now_ms)

    def _window_detail(self, reading: Reading, earliest: int, latest: int) -> str:
        detail = (
            f"{reading.tag}: expected ts within {_span(self._past_ms)} before and "
            f"{_span(self._future_ms)} after now ({_iso(earliest)} .. {_iso(latest)}), "
            f"got {_iso(reading.ts_ms)}"
        )
        if earliest <= reading.ts_ms * 1000 <= latest:
            detail += " (it looks like epoch seconds; ts is epoch milliseconds)"
        return detail


def _iso(ts_ms: int) -> str:
    try:
        return ms_to_iso(ts_ms)
    except (OverflowError, OSError, ValueError):  # beyond what datetime can show
        return f"{ts_ms} ms"


def _span(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"
