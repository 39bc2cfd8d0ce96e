"""One batch of decoded messages, from the edge to storage and on to the detectors.

``MqttSource`` calls :meth:`IngestPipeline.handle` with a batch and acknowledges the
batch's MQTT messages only when it returns. So everything that must not be lost
happens inside ``handle``, in this order:

1. validate (time window, registry) and record rejections — counted, listed;
2. track gateways (last seen, status, seq gaps and repeats);
3. write the readings to the sink. ``SinkUnavailable`` is retried with jittered
   exponential backoff (0.1 s doubling to ~5 s, never a hot loop) for as long as it
   takes: meanwhile no acks go out, the broker stops sending (its in-flight window
   is full) and queues for us — backpressure instead of loss.
   ``SinkRejected`` is permanent: the readings are recorded as ``sink_rejected``
   rejections, counted, logged, and the batch goes on;
4. update the latest values, call ``on_readings_stored`` (only if the sink took
   them), then hand the readings to ``downstream`` (detectors) — refused ones too.

Metrics counted here, once: ``messages{codec}`` per decoded message and ``readings``
per reading accepted by validation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import structlog

from hazwatch.clock import Clock
from hazwatch.errors import SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import GatewayStatus, Reading
from ingest.codec import Decoded, Rejection, reading_head
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.sink import ReadingSink
from ingest.validation import ReadingValidator

log = structlog.get_logger(__name__)

DETAIL_CHARS = 300


class IngestPipeline:
    def __init__(
        self,
        *,
        validator: ReadingValidator,
        sink: ReadingSink,
        rejects: RejectLog,
        gateways: GatewayTracker,
        latest: LatestValues,
        metrics: Metrics,
        clock: Clock,
        downstream: Callable[[list[Reading]], Awaitable[None]],
        on_status: Callable[[GatewayStatus], Awaitable[None]] | None = None,
        on_readings_stored: Callable[[list[Reading]], None] | None = None,
        retry_base_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self._validator = validator
        self._sink = sink
        self._rejects = rejects
        self._gateways = gateways
        self._latest = latest
        self._metrics = metrics
        self._clock = clock
        self._downstream = downstream
        self._on_status = on_status
        self._on_readings_stored = on_readings_stored
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s

    async def handle(self, batch: list[Decoded]) -> None:
        """Process one batch; returns when its readings are stored (or refused for good)."""
        now_ms = self._clock.now_ms()
        readings: list[Reading] = []
        topics: list[str] = []  # parallel to readings, for sink rejections
        for message in batch:
            self._metrics.messages.labels(message.codec).inc()
            checked = self._validator.check(message, now_ms)
            for rejection in checked.rejections:
                self._rejects.record(rejection)
            self._gateways.observe(checked)
            if checked.status is not None and self._on_status is not None:
                await self._on_status(checked.status)
            readings.extend(checked.readings)
            topics.extend(checked.topic for _ in checked.readings)
        if not readings:
            return
        self._metrics.readings.inc(len(readings))
        stored = await self._store(readings, topics)
        self._latest.update(readings)
        if stored and self._on_readings_stored is not None:
            self._on_readings_stored(readings)
        # Refused readings go on too: the historian's refusal (say, a field type
        # conflict) does not make the value wrong, and alarms must not depend on it.
        await self._downstream(readings)

    async def _store(self, readings: list[Reading], topics: list[str]) -> bool:
        """Write, retrying while the sink is unavailable; ``False`` if it refused them."""
        attempt = 0
        while True:
            try:
                await self._sink.write(readings)
            except SinkUnavailable as exc:
                attempt += 1
                delay = self._backoff(attempt)
                self._metrics.sink_retries.inc()
                log.warning(
                    "sink_unavailable",
                    sink=self._sink.name,
                    readings=len(readings),
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                    error=str(exc),
                )
                await asyncio.sleep(delay)
            except SinkRejected as exc:
                self._rejected(readings, topics, exc)
                return False
            else:
                if attempt:
                    log.info("sink_recovered", sink=self._sink.name, attempts=attempt + 1)
                return True

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter (50-100 %) so that retries do not align."""
        ceiling = min(self._retry_max_s, self._retry_base_s * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not secrets

    def _rejected(self, readings: list[Reading], topics: list[str], exc: SinkRejected) -> None:
        # TODO(issue 10): a dead-letter table, and on a 400 partial write split the
        # batch to find the poison lines, so that only those are refused (InfluxDB
        # stores the valid points of a 400 batch; today all are recorded here).
        self._metrics.sink_rejected.labels(self._sink.name).inc(len(readings))
        detail = f"the {self._sink.name} sink refused the batch: {exc}"[:DETAIL_CHARS]
        log.error(
            "sink_rejected",
            sink=self._sink.name,
            status=exc.status,
            readings=len(readings),
            error=str(exc)[:DETAIL_CHARS],
        )
        now_ms = self._clock.now_ms()
        for reading, topic in zip(readings, topics, strict=True):
            self._rejects.record(
                Rejection(
                    ts_ms=now_ms,
                    topic=topic,
                    reason="sink_rejected",
                    detail=detail,
                    payload_head=reading_head(reading),
                )
            )
