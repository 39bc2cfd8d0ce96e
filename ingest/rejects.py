"""The dead-letter list of the edge: recent rejections, bounded, and counted by reason.

DESIGN.md §1: a bad message is rejected with a reason, counted, kept in a list and
acknowledged — a poison message must not be redelivered forever. The list keeps the
newest ``IngestSettings.rejects_kept`` entries for the console
(``GET /api/ingest/rejects``); ``metrics.rejected{reason}`` counts every one.
"""

from __future__ import annotations

from collections import deque

import structlog

from hazwatch.metrics import Metrics
from hazwatch.settings import IngestSettings
from ingest.codec import Rejection, printable

log = structlog.get_logger(__name__)


class RejectLog:
    """Bounded (drop-oldest) list of recent rejections, plus ``metrics.rejected``."""

    def __init__(self, limits: IngestSettings, metrics: Metrics) -> None:
        self._kept: deque[Rejection] = deque(maxlen=limits.rejects_kept)
        self._metrics = metrics
        self._reasons_seen: set[str] = set()

    def record(self, rejection: Rejection) -> None:
        self._kept.append(rejection)
        self._metrics.rejected.labels(rejection.reason).inc()
        # A flood of one bad gateway must not flood the log: the first rejection of
        # each reason is a warning, the rest are debug (the counter has them all).
        first = rejection.reason not in self._reasons_seen
        self._reasons_seen.add(rejection.reason)
        (log.warning if first else log.debug)(
            "payload_rejected",
            topic=printable(rejection.topic),
            reason=rejection.reason,
            detail=rejection.detail,
        )

    def recent(self) -> list[Rejection]:
        """Newest first."""
        return list(reversed(self._kept))

    def __len__(self) -> int:
        return len(self._kept)
