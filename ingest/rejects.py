"""The dead-letter list of the edge: recent rejections, bounded, and counted by reason.

docs/architecture.md#rules-of-the-flow: a bad message is rejected with a reason, counted, kept in a
list and acknowledged — a poison message must not be redelivered forever. The list
keeps the newest ``IngestSettings.rejects_kept`` entries for the console
(``GET /api/ingest/rejects``); ``metrics.rejected{reason}`` counts every one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import structlog

from hazwatch.metrics import Metrics
from hazwatch.models import ms_to_iso
from hazwatch.settings import IngestSettings
from ingest.codec import Rejection, printable

log = structlog.get_logger(__name__)

WINDOW_MS = 60_000
SOURCES_TRACKED = 10_000
"""Sources whose log quota is tracked at once; past it, the rest share one quota."""
OTHER_SOURCES = "(other sources)"


@dataclass(slots=True)
class _Quota:
    started_ms: int
    logged: int = 0
    held_back: int = 0


class RejectLog:
    """Bounded (drop-oldest) list of recent rejections, plus ``metrics.rejected``.

    The service log gets at most ``[ingest] reject_logs_per_minute`` lines per source
    (a gateway: the topic's first four levels, ``hz/v1/E001/gw1``) and minute; the
    lines held back are counted and said in one line when that minute is over, so a
    gateway sending garbage a thousand times a second cannot flood the log. The list
    and the counter have every rejection.
    """

    def __init__(self, limits: IngestSettings, metrics: Metrics) -> None:
        self._kept: deque[Rejection] = deque(maxlen=limits.rejects_kept)
        self._metrics = metrics
        self._per_minute = limits.reject_logs_per_minute
        self._quotas: dict[str, _Quota] = {}
        self._swept_ms = 0

    def record(self, rejection: Rejection) -> None:
        self._kept.append(rejection)
        self._metrics.rejected.labels(rejection.reason).inc()
        now_ms = rejection.ts_ms
        self.sweep(now_ms)
        source = _source(rejection.topic)
        quota = self._quotas.get(source)
        if quota is None:
            if len(self._quotas) >= SOURCES_TRACKED:
                source = OTHER_SOURCES
                quota = self._quotas.get(source)
            if quota is None:
                quota = self._quotas[source] = _Quota(now_ms)
        elif now_ms - quota.started_ms >= WINDOW_MS:
            _report_held_back(source, quota)
            quota.started_ms, quota.logged, quota.held_back = now_ms, 0, 0
        if quota.logged >= self._per_minute:
            quota.held_back += 1
            return
        quota.logged += 1
        log.warning(
            "payload_rejected",
            topic=printable(rejection.topic),
            reason=rejection.reason,
            detail=rejection.detail,
        )

    def sweep(self, now_ms: int) -> None:
        """Report the lines held back of every minute that is over, and forget those
        sources. Does its work at most once a minute (the wiring's tick calls it)."""
        if now_ms - self._swept_ms < WINDOW_MS:
            return
        self._swept_ms = now_ms
        for source, quota in list(self._quotas.items()):
            if now_ms - quota.started_ms >= WINDOW_MS:
                _report_held_back(source, quota)
                del self._quotas[source]

    def recent(self) -> list[Rejection]:
        """Newest first."""
        return list(reversed(self._kept))

    def __len__(self) -> int:
        return len(self._kept)


def _source(topic: str) -> str:
    """Whose rejection it is, for the log quota: the topic's first four levels."""
    return printable("/".join(topic.split("/", 4)[:4]), 120)


def _report_held_back(source: str, quota: _Quota) -> None:
    if quota.held_back:
        log.warning(
            "payload_rejections_held_back",
            source=source,
            held_back=quota.held_back,
            minute_from=ms_to_iso(quota.started_ms),
            hint="every rejection is counted in hazwatch_ingest_rejected_total",
        )
