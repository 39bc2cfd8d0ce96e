"""One batch of decoded messages, from the edge into the durable spool and on to the detectors.

``MqttSource`` calls :meth:`IngestPipeline.handle` with a batch and acknowledges the
batch's MQTT messages only when it returns. So everything that must not be lost
happens inside ``handle``, in this order:

1. validate (time window, registry) and record rejections — counted, listed;
2. track gateways (last seen, status, seq gaps and repeats);
3. write each message's valid readings as line protocol (once: the spool keeps
   these bytes and the writer posts them) and append them, one row per message, to
   the spool in **one** transaction (``synchronous=FULL``). Once that returned they survive a crash;
   the sink writer (:mod:`ingest.writer`) takes them to storage on its own pace,
   so a slow or absent InfluxDB never holds the acks back;
4. update the latest values and hand the readings to ``downstream`` (detectors,
   alerting, uplinks). The spool's ``delivered`` cursor moves past the batch once
   ``recorded()`` is done too — the alarm journal has committed what the readings
   caused, in its own thread — without holding ``handle`` (and the acks) for it.

After a crash, :meth:`IngestPipeline.replay` (run before the source starts) hands
the detectors what was spooled but not yet delivered: every reading whose alarms
might not be in the journal yet, and a few whose alarms are (the cursor is committed
with the next append). The journal ignores a condition older than the one its alarm
already holds, so a replayed excursion is recorded once (docs/alerting.md, "No alarm
lost on a crash").

Metrics counted here, once: ``messages{codec}`` per decoded message and ``readings``
per reading accepted by validation (one increment per batch, not per message).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable

import structlog

from hazwatch.clock import Clock
from hazwatch.errors import IngestPaused, SinkRejected, SpoolUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import Condition, GatewayStatus, Reading, system_condition
from ingest.codec import Decoded, Rejection, payload_head
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.lineprotocol import LineEncoder
from ingest.rejects import RejectLog
from ingest.spool import Spool, SpooledMessage
from ingest.validation import ReadingValidator

log = structlog.get_logger(__name__)

SPOOL_FAILING_TAG = "spool_failing"
REPLAY_BATCH = 20_000
"""Readings per detector hand-over when replaying after a crash."""


class IngestPipeline:
    def __init__(
        self,
        *,
        validator: ReadingValidator,
        encoder: LineEncoder,
        spool: Spool,
        rejects: RejectLog,
        gateways: GatewayTracker,
        latest: LatestValues,
        metrics: Metrics,
        clock: Clock,
        downstream: Callable[[list[Reading]], Awaitable[None]],
        on_status: Callable[[GatewayStatus], Awaitable[None]] | None = None,
        on_system: Callable[[list[Condition]], object] | None = None,
        gate: Callable[[], str | None] | None = None,
        recorded: Callable[[], asyncio.Future[None]] | None = None,
    ) -> None:
        self._validator = validator
        self._gate = gate
        """Why batches must not be taken now (``None``: they may): e.g. the alarm
        journal cannot write, so nothing is acknowledged that alarms could be lost for."""
        self._recorded = recorded
        """A future done once what was handed ``downstream`` so far is durable (the
        alarm journal's commit); ``None``: it is once ``downstream`` returned."""
        self._encoder = encoder
        self._spool = spool
        self._rejects = rejects
        self._gateways = gateways
        self._latest = latest
        self._metrics = metrics
        self._clock = clock
        self._downstream = downstream
        self._on_status = on_status
        self._on_system = on_system
        self._failing = False
        self._spool_error: str | None = None
        self._reported: dict[str, bool] = {}
        self._stages = metrics.ingest_stage

    async def handle(self, batch: list[Decoded]) -> None:
        """Process one batch; returns when its readings are durable in the spool."""
        if self._gate is not None and (paused := self._gate()) is not None:
            raise IngestPaused(paused)
        now_ms = self._clock.now_ms()
        if batch:
            oldest_ms = min(message.received_ms for message in batch)
            self._stages.labels("queued").observe(max(0, now_ms - oldest_ms) / 1000)
        spooled: list[SpooledMessage] = []
        readings: list[Reading] = []
        codecs: dict[str, int] = {}
        for message in batch:
            codecs[message.codec] = codecs.get(message.codec, 0) + 1
            checked = self._validator.check(message, now_ms)
            for rejection in checked.rejections:
                self._rejects.record(rejection)
            self._gateways.observe(checked)
            if checked.status is not None and self._on_status is not None:
                await self._on_status(checked.status)
            if checked.readings:
                message_spooled = self._spooled(checked)
                if message_spooled is not None:
                    spooled.append(message_spooled)
                    readings.extend(checked.readings)
        for codec, n in codecs.items():
            self._metrics.messages.labels(codec).inc(n)
        if not readings:
            return
        self._metrics.readings.inc(len(readings))
        started = time.perf_counter()
        last_id = await self._append(spooled)  # an error here: no acks, redelivery
        committed = time.perf_counter()
        self._stages.labels("spool_commit").observe(committed - started)
        await self._deliver(readings, last_id)
        self._stages.labels("downstream").observe(time.perf_counter() - committed)

    async def _append(self, spooled: list[SpooledMessage]) -> int:
        """Commit to the spool. A spool that cannot write (disk full, I/O error) raises
        ``SpoolUnavailable``: the batch is not acknowledged, the broker keeps it for our
        persistent session and sends it again — and ``spool_failing`` is raised until a
        commit succeeds again."""
        try:
            last_id = await self._spool.append(spooled)
        except (sqlite3.Error, OSError) as exc:
            if self._spool_error is None:
                log.error("spool_write_failed", error=str(exc))  # noqa: TRY400 - no bug
            self._spool_error = str(exc)
            self._report(
                SPOOL_FAILING_TAG,
                active=True,
                message=(
                    f"the spool cannot write ({exc}): messages are not acknowledged, the "
                    "broker keeps them for hazwatch until the spool writes again"
                ),
                value=len(spooled),
            )
            raise SpoolUnavailable(f"the spool cannot write: {exc}") from exc
        if self._spool_error is not None:
            log.info("spool_write_recovered")
            self._spool_error = None
            self._report(
                SPOOL_FAILING_TAG,
                active=False,
                message="the spool writes again; held messages are being taken in",
                value=len(spooled),
            )
        return last_id

    async def replay(self) -> int:
        """Deliver what the spool holds above the delivered cursor; the readings replayed."""
        replayed = 0
        while (batch := await self._spool.read_undelivered(REPLAY_BATCH)) is not None:
            parse = self._encoder.parse
            readings = [r for m in batch.messages for r in parse(m.body, m.gateway, m.stamped_ms)]
            await self._deliver(readings, batch.last_id)
            if self._recorded is not None:
                await self._recorded()  # the cursor has moved: the next read starts there
            replayed += len(readings)
        await self._spool.flush()
        if replayed:
            log.info("ingest_replayed_to_detectors", readings=replayed)
        return replayed

    def _spooled(self, checked: Decoded) -> SpooledMessage | None:
        """The spool row of a validated message (``None``: refused, recorded)."""
        rs = checked.readings
        try:
            body = self._encoder.body(rs)
        except SinkRejected as exc:  # the validator let through what no line can hold: a bug
            log.exception("ingest_line_protocol_failed", topic=payload_head(checked.topic.encode()))
            self._rejects.record(
                Rejection(
                    ts_ms=checked.received_ms,
                    topic=checked.topic,
                    reason="sink_rejected",
                    detail=str(exc)[:300],
                    payload_head="",
                )
            )
            return None
        stamped = checked.received_ms if any(r.receive_time for r in rs) else None
        return SpooledMessage(checked.received_ms, rs[0].gateway, len(rs), stamped, body)

    def _report_failing(self, *, failing: bool, readings: int) -> None:
        """SYSTEM alarm ``detectors_failed`` while batches fail downstream; cleared by the
        next batch that goes through."""
        if failing == self._failing:
            return
        self._failing = failing
        message = (
            f"detectors or alerting failed on a batch of {readings} readings: "
            "stored, not judged (see the service log)"
            if failing
            else "detectors judge readings again"
        )
        self._report("detectors_failed", active=failing, message=message, value=readings)

    def _report(self, tag: str, *, active: bool, message: str, value: float) -> None:
        if self._on_system is None or self._reported.get(tag) == active:
            return
        self._reported[tag] = active
        now_ms = self._clock.now_ms()
        self._on_system(
            [
                system_condition(
                    tag, active=active, ts_ms=now_ms, message=message, value=value, limit=None
                )
            ]
        )

    async def _deliver(self, readings: list[Reading], last_id: int) -> None:
        """Hand the readings on; the delivered cursor moves once they are recorded.

        Not awaited here (the next batch goes on meanwhile): the journal commits in
        submission order, so the cursor moves in batch order."""
        self._latest.update(readings)
        try:
            await self._downstream(readings)
        except Exception:
            # The readings are durable and will be stored; a detector bug must not
            # turn into redelivery (and so duplicates) of the whole batch.
            log.exception("downstream_failed", readings=len(readings))
            self._metrics.detector_failed_readings.inc(len(readings))
            self._report_failing(failing=True, readings=len(readings))
        else:
            if self._failing:
                self._report_failing(failing=False, readings=len(readings))
        if self._recorded is None:
            self._spool.mark_delivered(last_id)
            return
        self._recorded().add_done_callback(lambda _: self._spool.mark_delivered(last_id))
