"""The historian writer: drains the spool into the sink, in order, losing nothing.

One loop, one batch in flight (so per-series order is the spool's order, and a
hanging InfluxDB holds at most two batches in memory):

1. read up to ``lanes × write_batch`` readings above the ``written`` cursor — while
   a batch is in flight, the next one is read already (the spool read runs in a
   worker thread, the requests on the event loop), so the sink never waits for it;
2. write them in ``lanes`` requests at once, the batch's messages split by gateway
   (each gateway always in the same lane, in spool order: a series is fed by one
   gateway, so its points are written in order; InfluxDB took ~1.4–2x the points
   per second on two connections than on one). Each request is the spooled
   line-protocol bodies joined, no reading touched (:class:`ingest.sink.LineSink`);
   a sink that does not take line protocol gets ``Reading`` objects parsed back.
   ``SinkUnavailable`` (down, timeout, 5xx) is retried with jittered exponential
   backoff (0.1 s doubling to ~5 s: never a hot loop) for as long as it takes —
   meanwhile the spool absorbs the input and the MQTT acks go on;
3. ``SinkRejected`` (InfluxDB's 400 partial write: a field type conflict, a point
   beyond retention, an unparsable line) is never retried as is. InfluxDB stored
   the good points of that request already; the batch is **bisected** (halves
   written again — idempotent, same series and time) until the single poison
   readings are found. Those go to the spool's ``dead_letter`` table and to the
   console's rejects list (reason ``sink_rejected``); the rest stays stored. If the
   error says every point was dropped (``dropped=N`` equal to the request), the
   whole request is dead-lettered at once;
4. :meth:`Spool.confirm` — only now may the spool forget those rows.

**Historian lag** (now - receive time of the oldest unwritten message) above
``lag_alarm_s`` raises a system condition; below half of it (or an empty spool) it
clears. A spool that had to drop readings raises a second one until it is below
half its limit. System conditions are :class:`hazwatch.models.Condition` with type
``SYSTEM``, enterprise ``_system``, installation ``hazwatch`` and tag
``historian_lag`` / ``spool_full``, handed to ``on_system`` (the wiring passes the
alarm service). The first check after start reports the current state either way,
so an alarm left active by the previous run clears.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import zlib
from collections.abc import Callable, Sequence

import structlog

from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.errors import SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import Condition, Reading, system_condition
from ingest.codec import Rejection, payload_head, reading_head
from ingest.lineprotocol import LineEncoder
from ingest.rejects import RejectLog
from ingest.sink import LineSink, ReadingSink
from ingest.spool import Spool, SpoolBatch, SpooledMessage

log = structlog.get_logger(__name__)

LAG_TAG = "historian_lag"
SPOOL_FULL_TAG = "spool_full"
IDLE_S = 0.5
"""An idle writer looks at the lag (and saves the delivered cursor) this often."""
DETAIL_CHARS = 300
_DROPPED = re.compile(r"dropped=(\d+)")
_DISK_ERRORS = frozenset({10, 13})  # SQLITE_IOERR, SQLITE_FULL (primary result codes)


class SinkWriter:
    def __init__(
        self,
        *,
        spool: Spool,
        sink: ReadingSink,
        encoder: LineEncoder,
        rejects: RejectLog,
        metrics: Metrics,
        clock: Clock,
        batch_readings: int = 5000,
        lanes: int = 2,
        lag_alarm_s: float = 60.0,
        on_system: Callable[[list[Condition]], object] | None = None,
        retry_base_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self._spool = spool
        self._sink = sink
        self._encoder = encoder
        self._rejects = rejects
        self._metrics = metrics
        self._clock = clock
        self._batch = batch_readings * lanes
        self._lanes = lanes
        self._lag_alarm_ms = round(lag_alarm_s * 1000)
        self._on_system = on_system
        self._backoff = Backoff(round(retry_base_s * 1000), round(retry_max_s * 1000))
        self._alarms: dict[str, bool] = {}  # tag -> active, as last reported
        self.lag_s = 0.0

    async def run(self) -> None:
        """Drain until cancelled. A spool that cannot write (its disk full, an I/O
        error: the pipeline raises ``spool_failing`` for it) is waited out with
        backoff: what was written but not confirmed is written again (idempotent)."""
        failures = 0
        while True:
            try:
                if not await self.drain():
                    await self._spool.flush()
                    await self.check_alarms()
                    await self._spool.wait_for_data(IDLE_S)
                failures = 0
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _DISK_ERRORS:
                    raise  # not the disk: a bug for the supervisor
                failures += 1
                delay = self.backoff(failures)
                (log.warning if failures == 1 else log.debug)(
                    "writer_spool_failed", error=str(exc), retry_in_s=round(delay, 3)
                )
                await asyncio.sleep(delay)

    async def drain_once(self) -> bool:
        """Write one batch; ``False`` if the spool had nothing unwritten."""
        batch = await self._spool.read_unwritten(self._batch)
        if batch is None:
            return False
        await self._write(batch)
        return True

    async def drain(self) -> bool:
        """Write until the spool has nothing unwritten, reading each next batch while
        the one before is in flight; ``False`` if there was nothing to write."""
        batch = await self._spool.read_unwritten(self._batch)
        if batch is None:
            return False
        while batch is not None:
            ahead = asyncio.ensure_future(
                self._spool.read_unwritten(self._batch, after=batch.last_id)
            )
            try:
                await self._write(batch)
            except BaseException:
                ahead.cancel()
                await asyncio.wait({ahead})
                if not ahead.cancelled():
                    ahead.exception()  # seen: no "exception was never retrieved"
                raise
            batch = await ahead
        return True

    async def _write(self, batch: SpoolBatch) -> None:
        lanes = _lanes(batch.messages, self._lanes)
        if len(lanes) == 1:
            await self._store(lanes[0])
        else:
            async with asyncio.TaskGroup() as tg:
                for lane in lanes:
                    tg.create_task(self._store(lane))
        await self._spool.confirm(batch.last_id)
        await self.check_alarms()

    async def check_alarms(self) -> None:
        now_ms = self._clock.now_ms()
        oldest = await self._spool.oldest_unwritten_ms()
        lag_ms = 0 if oldest is None else max(0, now_ms - oldest)
        self.lag_s = lag_ms / 1000
        self._metrics.historian_lag.set(self.lag_s)
        was = self._alarms.get(LAG_TAG)
        if lag_ms > self._lag_alarm_ms:
            lagging = True
        elif was and lag_ms > self._lag_alarm_ms / 2:
            lagging = True  # hysteresis: clear only when well caught up
        else:
            lagging = False
        self._report(
            LAG_TAG,
            active=lagging,
            value=self.lag_s,
            limit=self._lag_alarm_ms / 1000,
            message=(
                f"the historian is {self.lag_s:.0f} s behind the spool "
                f"({self._spool.depth_readings} readings waiting)"
                if lagging
                else "the historian caught up with the spool"
            ),
        )
        full = self._spool.full
        self._report(
            SPOOL_FULL_TAG,
            active=full,
            value=float(self._spool.bytes),
            limit=None,
            message=(
                "the spool is full: the oldest unwritten readings are being dropped"
                if full
                else "the spool is below half its limit"
            ),
        )

    def _report(
        self, tag: str, *, active: bool, value: float, limit: float | None, message: str
    ) -> None:
        if self._alarms.get(tag) == active:
            return
        self._alarms[tag] = active
        (log.warning if active else log.info)("system_condition", tag=tag, active=active)
        if self._on_system is not None:
            now_ms = self._clock.now_ms()
            self._on_system(
                [
                    system_condition(
                        tag, active=active, ts_ms=now_ms, message=message, value=value, limit=limit
                    )
                ]
            )

    async def _store(self, messages: Sequence[SpooledMessage]) -> None:
        """Write; on a refusal, bisect until the poison readings are isolated."""
        try:
            await self._write_retrying(messages)
        except SinkRejected as exc:
            points = sum(m.readings for m in messages)
            if points == 1 or _dropped(exc) == points:
                await self._dead_letter(messages, exc)
                return
            log.info("sink_rejected_bisecting", readings=points, error=str(exc)[:200])
            if len(messages) == 1:  # one message of several lines: bisect its lines
                messages = _lines(messages[0])
            middle = len(messages) // 2
            await self._store(messages[:middle])
            await self._store(messages[middle:])

    async def _write_retrying(self, messages: Sequence[SpooledMessage]) -> None:
        attempt = 0
        points = sum(m.readings for m in messages)
        line_sink = self._sink if isinstance(self._sink, LineSink) else None
        while True:
            try:
                if line_sink is not None:
                    await line_sink.write_lines(b"\n".join([m.body for m in messages]), points)
                else:
                    await self._sink.write(self._readings(messages))
            except SinkUnavailable as exc:
                attempt += 1
                delay = self.backoff(attempt)
                self._metrics.sink_retries.inc()
                (log.warning if attempt == 1 or attempt % 20 == 0 else log.debug)(
                    "sink_unavailable",
                    sink=self._sink.name,
                    readings=points,
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                    error=str(exc),
                )
                await self.check_alarms()  # the lag alarm must not wait for the sink
                await asyncio.sleep(delay)
            else:
                if attempt:
                    log.info("sink_recovered", sink=self._sink.name, attempts=attempt + 1)
                return

    def _readings(self, messages: Sequence[SpooledMessage]) -> list[Reading]:
        """``Reading`` objects again, for a sink that does not take line protocol."""
        parse = self._encoder.parse
        try:
            return [r for m in messages for r in parse(m.body, m.gateway, m.stamped_ms)]
        except ValueError as exc:  # a point the registry no longer holds
            raise SinkRejected(f"cannot read spooled line protocol back: {exc}") from exc

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (see ``hazwatch.backoff``)."""
        return self._backoff.delay_s(attempt)

    async def _dead_letter(self, messages: Sequence[SpooledMessage], exc: SinkRejected) -> None:
        error = str(exc)[:DETAIL_CHARS]
        now_ms = self._clock.now_ms()
        detail = f"the {self._sink.name} sink refused the point (dead-lettered): {error}"[
            :DETAIL_CHARS
        ]
        readings: list[Reading] = []
        unreadable: list[tuple[str, str]] = []
        for message in messages:
            for line in _lines(message):
                try:
                    readings.extend(self._encoder.parse(line.body, line.gateway, line.stamped_ms))
                except ValueError:  # its point left the registry: kept as the line it is
                    text = line.body.decode("utf-8", "backslashreplace")
                    unreadable.append((line.gateway, text))
                    self._reject(line.gateway, "", detail, payload_head(line.body), now_ms)
        await self._spool.dead_letter(readings, error, now_ms, unreadable)
        points = sum(m.readings for m in messages)
        self._metrics.dead_lettered.inc(points)
        log.error(
            "sink_dead_lettered",
            sink=self._sink.name,
            status=exc.status,
            readings=points,
            error=error,
        )
        for reading in readings:
            self._reject(reading.gateway, reading.enterprise, detail, reading_head(reading), now_ms)

    def _reject(self, gateway: str, enterprise: str, detail: str, head: str, now_ms: int) -> None:
        self._rejects.record(
            Rejection(
                ts_ms=now_ms,
                topic=f"hz/v1/{enterprise or '?'}/{gateway}/data",
                reason="sink_rejected",
                detail=detail,
                payload_head=head,
            )
        )


def _lanes(messages: list[SpooledMessage], lanes: int) -> list[list[SpooledMessage]]:
    """The messages split by gateway into at most ``lanes`` lists, each in spool order."""
    if lanes == 1:
        return [messages]
    split: dict[int, list[SpooledMessage]] = {}
    for message in messages:
        split.setdefault(zlib.crc32(message.gateway.encode()) % lanes, []).append(message)
    return list(split.values())


def _lines(message: SpooledMessage) -> list[SpooledMessage]:
    """A spooled message as one message per line (for bisecting and dead letters)."""
    if message.readings == 1:
        return [message]
    return [message._replace(readings=1, body=line) for line in message.body.split(b"\n")]


def _dropped(exc: SinkRejected) -> int | None:
    """InfluxDB's ``dropped=N`` of a partial write, if the message has it."""
    found = _DROPPED.search(str(exc))
    return int(found.group(1)) if found else None
