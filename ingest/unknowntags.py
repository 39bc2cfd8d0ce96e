"""The unknown-tag list: tags gateways send that the registry does not know, bounded.

An operator reads it to register points (``GET /api/ingest/rejects``,
``unknown_tags``). It must stay small and useful when one gateway misbehaves — a
firmware bug that invents a new tag name per reading sends a thousand new tags a
second — so it is bounded twice:

- at most ``per_gateway`` entries per gateway (its least recently seen go first), so
  one flooding gateway cannot push every other gateway's entries out;
- at most ``total`` entries in all (the least recently seen go first).

Every entry pushed out is counted (``hazwatch_ingest_unknown_tags_evicted_total``)
and raises the ``unknown_tags_flood`` SYSTEM condition, which clears after
``quiet_ms`` without one. The readings themselves are counted per enterprise in
``hazwatch_ingest_unknown_tag_readings_total`` whatever the list keeps.

>>> from hazwatch.metrics import Metrics
>>> table = UnknownTagTable(Metrics(), per_gateway=3, total=10)
>>> for n, tag in enumerate(["A", "B", "A", "C"]):
...     table.remember("E001", "gw1", tag, n)
>>> [(u.tag, u.count) for u in table.listing()]
[('C', 1), ('A', 2), ('B', 1)]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from hazwatch.metrics import Metrics
from hazwatch.models import Condition, system_condition

log = structlog.get_logger(__name__)

MAX_UNKNOWN_TAGS = 1000
"""Distinct unknown (enterprise, gateway, tag) kept in all."""
MAX_UNKNOWN_PER_GATEWAY = 100
"""... and per gateway."""
FLOOD_QUIET_MS = 600_000
"""The flood condition clears after this long without an entry pushed out."""
FLOOD_TAG = "unknown_tags_flood"

_Gateway = tuple[str, str]


@dataclass(frozen=True, slots=True)
class UnknownTag:
    """A tag some gateway sends that the registry does not know."""

    enterprise: str
    gateway: str
    tag: str
    count: int
    last_seen_ms: int


class UnknownTagTable:
    def __init__(
        self,
        metrics: Metrics,
        *,
        per_gateway: int = MAX_UNKNOWN_PER_GATEWAY,
        total: int = MAX_UNKNOWN_TAGS,
        quiet_ms: int = FLOOD_QUIET_MS,
        on_system: Callable[[list[Condition]], object] | None = None,
    ) -> None:
        self._metrics = metrics
        self._per_gateway = per_gateway
        self._total = total
        self._quiet_ms = quiet_ms
        self._on_system = on_system
        # (enterprise, gateway, tag) -> (count, last_seen_ms), least recently seen first
        self._entries: OrderedDict[tuple[str, str, str], tuple[int, int]] = OrderedDict()
        # per gateway: its tags, least recently seen first (the values are unused)
        self._by_gateway: dict[_Gateway, OrderedDict[str, None]] = {}
        self._flood_since_ms: int | None = None
        self._last_eviction_ms = 0

    def remember(self, enterprise: str, gateway: str, tag: str, now_ms: int) -> None:
        """One reading of an unknown tag: counted, and listed within the bounds."""
        self._metrics.unknown_tags.labels(enterprise).inc()
        key = (enterprise, gateway, tag)
        tags = self._by_gateway.setdefault((enterprise, gateway), OrderedDict())
        count, _ = self._entries.pop(key, (0, 0))
        self._entries[key] = (count + 1, now_ms)
        tags.pop(tag, None)
        tags[tag] = None
        evicted = 0
        if len(tags) > self._per_gateway:
            oldest, _ = tags.popitem(last=False)
            del self._entries[(enterprise, gateway, oldest)]
            evicted += 1
        if len(self._entries) > self._total:
            (e, g, t), _ = self._entries.popitem(last=False)
            others = self._by_gateway[(e, g)]
            del others[t]
            if not others:
                del self._by_gateway[(e, g)]
            evicted += 1
        if evicted:
            self._evicted(enterprise, gateway, evicted, now_ms)

    def check_quiet(self, now_ms: int) -> None:
        """Clear the flood condition once nothing was pushed out for ``quiet_ms``."""
        if self._flood_since_ms is not None and now_ms - self._last_eviction_ms > self._quiet_ms:
            self._flood_since_ms = None
            log.info("unknown_tags_flood_over")
            self._report(
                active=False,
                now_ms=now_ms,
                message="no gateway sends more unknown tags than the list keeps",
            )

    def listing(self) -> list[UnknownTag]:
        """Most recently seen first."""
        return [
            UnknownTag(enterprise, gateway, tag, count, last_seen_ms)
            for (enterprise, gateway, tag), (count, last_seen_ms) in reversed(self._entries.items())
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def _evicted(self, enterprise: str, gateway: str, evicted: int, now_ms: int) -> None:
        self._metrics.unknown_tags_evicted.inc(evicted)
        self._last_eviction_ms = now_ms
        if self._flood_since_ms is not None:
            return
        self._flood_since_ms = now_ms
        log.warning(
            "unknown_tags_flood",
            enterprise=enterprise,
            gateway=gateway,
            kept_per_gateway=self._per_gateway,
            kept_total=self._total,
        )
        self._report(
            active=True,
            now_ms=now_ms,
            message=(
                f"gateway {enterprise}/{gateway} sends more unknown tags than the list keeps "
                f"({self._per_gateway} per gateway, {self._total} in all): the least recently "
                "seen are dropped from the list (their readings are counted, never stored)"
            ),
        )

    def _report(self, *, active: bool, now_ms: int, message: str) -> None:
        if self._on_system is not None:
            self._on_system(
                [
                    system_condition(
                        FLOOD_TAG,
                        active=active,
                        ts_ms=now_ms,
                        message=message,
                        value=float(len(self._entries)),
                        limit=float(self._total),
                    )
                ]
            )
