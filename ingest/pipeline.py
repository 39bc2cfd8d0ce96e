"""One batch of decoded messages, from the edge into the durable spool and on to the detectors.

``MqttSource`` calls :meth:`IngestPipeline.handle` with a batch and acknowledges the
batch's MQTT messages only when it returns. So everything that must not be lost
happens inside ``handle``, in this order:

1. validate (time window, registry) and record rejections — counted, listed;
2. track gateways (last seen, status, seq gaps and repeats);
3. append the valid readings, one row per message, to the spool in **one**
   transaction (``synchronous=FULL``). Once that returned they survive a crash;
   the sink writer (:mod:`ingest.writer`) takes them to storage on its own pace,
   so a slow or absent InfluxDB never holds the acks back;
4. update the latest values and hand the readings to ``downstream`` (detectors,
   alerting), then move the spool's ``delivered`` cursor.

After a crash, :meth:`IngestPipeline.replay` (run before the source starts) hands
the detectors what was spooled but not yet delivered, so they see each reading
once (at most the last batch twice; the alarm journal makes a repeated condition a
no-op).

Metrics counted here, once: ``messages{codec}`` per decoded message and ``readings``
per reading accepted by validation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import GatewayStatus, Reading
from ingest.codec import Decoded
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.spool import Message, Spool
from ingest.validation import ReadingValidator

log = structlog.get_logger(__name__)

REPLAY_BATCH = 20_000
"""Readings per detector hand-over when replaying after a crash."""


class IngestPipeline:
    def __init__(
        self,
        *,
        validator: ReadingValidator,
        spool: Spool,
        rejects: RejectLog,
        gateways: GatewayTracker,
        latest: LatestValues,
        metrics: Metrics,
        clock: Clock,
        downstream: Callable[[list[Reading]], Awaitable[None]],
        on_status: Callable[[GatewayStatus], Awaitable[None]] | None = None,
    ) -> None:
        self._validator = validator
        self._spool = spool
        self._rejects = rejects
        self._gateways = gateways
        self._latest = latest
        self._metrics = metrics
        self._clock = clock
        self._downstream = downstream
        self._on_status = on_status

    async def handle(self, batch: list[Decoded]) -> None:
        """Process one batch; returns when its readings are durable in the spool."""
        now_ms = self._clock.now_ms()
        messages: list[Message] = []
        readings: list[Reading] = []
        for message in batch:
            self._metrics.messages.labels(message.codec).inc()
            checked = self._validator.check(message, now_ms)
            for rejection in checked.rejections:
                self._rejects.record(rejection)
            self._gateways.observe(checked)
            if checked.status is not None and self._on_status is not None:
                await self._on_status(checked.status)
            if checked.readings:
                messages.append((checked.received_ms, checked.readings))
                readings.extend(checked.readings)
        if not readings:
            return
        self._metrics.readings.inc(len(readings))
        last_id = await self._spool.append(messages)  # an error here: no acks, redelivery
        await self._deliver(readings, last_id)

    async def replay(self) -> int:
        """Deliver what the spool holds above the delivered cursor; the readings replayed."""
        replayed = 0
        while (batch := await self._spool.read_undelivered(REPLAY_BATCH)) is not None:
            await self._deliver(batch.readings, batch.last_id)
            replayed += len(batch.readings)
        await self._spool.flush()
        if replayed:
            log.info("ingest_replayed_to_detectors", readings=replayed)
        return replayed

    async def _deliver(self, readings: list[Reading], last_id: int) -> None:
        self._latest.update(readings)
        try:
            await self._downstream(readings)
        except Exception:
            # The readings are durable and will be stored; a detector bug must not
            # turn into redelivery (and so duplicates) of the whole batch.
            log.exception("downstream_failed", readings=len(readings))
        self._spool.mark_delivered(last_id)
