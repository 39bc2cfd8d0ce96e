"""Gateway messages from the MQTT broker, acknowledged only once they are handled.

The guarantees (docs/architecture.md#reliability; measured facts 1-3 there):

- **Persistent session** (``clean_session=False``, a fixed client id), QoS 1
  subscriptions: what gateways publish while the ingest is down waits in the broker.
- **Acks after the handler**: PUBACKs go out — in receive order, one write per
  batch — only after ``handler(batch)`` returned (the pipeline returns once the
  batch is committed to the spool). A message received but not acknowledged is
  redelivered by the broker on the next connection.
- **Batches never wait to fill** (group commit): a batch is handed over as soon as
  the previous one is done, holding whatever arrived meanwhile, up to
  ``limits.batch_size`` messages or ``limits.batch_readings`` readings. Under load
  batches grow by themselves; at low rates a message waits for no timer (the
  publish → alarm latency goal), and the broker's in-flight window can never stall
  (docs/architecture.md#measured-facts-mqtt, 3): a message waits for the batches ahead of it,
  never for a timer. More than two batches' worth
  waiting pauses reading from the socket: TCP holds the broker back, memory stays
  bounded.
- **Reconnects** with jittered exponential backoff (``hazwatch.backoff``) when the
  broker goes away: at most 2 s apart during an outage, up to 30 s apart when the
  broker refuses us (credentials, TLS trust, ACL) or our side failed a batch
  (:func:`backoff_after`). Messages of the lost connection that were not acknowledged are
  dropped here: the broker redelivers them, and storage is idempotent. Down for
  longer than ``[mqtt] disconnect_alarm_s``: the ``broker_disconnected`` SYSTEM alarm
  (``ingest.brokerwatch``), cleared on the next subscribe.

A handler that raises is logged, the connection is dropped and re-established, and
the unacknowledged batch comes back (at the backoff's pace, never a hot loop).

The receive path is :class:`ingest.connection.MqttConnection` (a hand-written
MQTT 3.1.1 client for exactly this, see there for why); messages are decoded as
they arrive, each read's messages with one receive time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.errors import HazwatchError
from hazwatch.metrics import Metrics
from hazwatch.models import Condition
from hazwatch.settings import IngestSettings, MqttSettings
from ingest.brokerwatch import BrokerWatch
from ingest.codec import Decoded, printable
from ingest.connection import MqttConnection, MqttConnectionError, MqttRefused
from ingest.packets import Publish
from ingest.routes import CodecRoutes
from ingest.session import SessionDuties

log = structlog.get_logger(__name__)

RECONNECT_BACKOFF = Backoff(initial_ms=500, max_ms=2_000)
"""After the connection was lost or the broker was unreachable; capped at 2 s. The
seconds between the broker's return and our subscription are the window in which a
broker that lost our session routes the gateways' messages to no one (the 2-hour soak:
5–12 s with a 30-s cap, bench/RESULTS.md); a refused connection attempt every 2 s costs
the broker nothing."""
SLOW_BACKOFF = Backoff(initial_ms=500, max_ms=30_000)
"""After the broker refused us (``MqttRefused``: credentials, TLS trust, ACL) or our
own side failed a batch (a full disk...): nothing is gained by trying sooner — the
broker holds the messages — and each attempt logs (and, after a failed batch, takes
and decodes a whole in-flight window again)."""
LEAVE_TIMEOUT_S = 2.0
"""Waited at most for a session duty's goodbye (a Sparkplug host's STATE offline)."""
HANDLING = 2
"""Batches in the handler at once (see ``MqttSource._hand_over``)."""

_Pending = tuple[int, Decoded | None]
"""A received message: its packet id (0 = QoS 0, nothing to ack) and what it became
(``None``: no codec subscribed to its topic)."""


def backoff_after(exc: BaseException) -> Backoff:
    """The pace of reconnecting after ``exc``: slow after a refusal or our own failure,
    quick after an outage (:data:`RECONNECT_BACKOFF`, :data:`SLOW_BACKOFF`)."""
    return SLOW_BACKOFF if isinstance(exc, _HandlerFailed | MqttRefused) else RECONNECT_BACKOFF


class _HandlerFailed(Exception):
    """Internal: the handler raised; reconnect so the broker redelivers the batch."""


class MqttSource:
    """Subscribes every codec's topics, decodes, batches, hands over, acknowledges.

    ``await source.run()`` until cancelled. ``connected`` is true while subscribed.
    """

    def __init__(  # noqa: PLR0917 - the signature the wiring codes against
        self,
        mqtt: MqttSettings,
        routes: CodecRoutes,
        handler: Callable[[list[Decoded]], Awaitable[None]],
        limits: IngestSettings,
        metrics: Metrics,
        clock: Clock,
        duties: SessionDuties | None = None,
        *,
        on_session: Callable[[bool], Awaitable[None]] | None = None,
        on_system: Callable[[list[Condition]], object] | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._broker_watch = BrokerWatch(
            f"{mqtt.host}:{mqtt.port}",
            mqtt.disconnect_alarm_s,
            clock,
            on_system,
            name="" if duties is None else duties.name,
        )
        self._duties = duties
        self._on_session = on_session
        """Told ``session_present`` after each subscribe (``ingest.sessionwatch``)."""
        self._routes = routes
        self._handler = handler
        self._batch_size = limits.batch_size
        self._batch_readings = limits.batch_readings
        self._max_payload = limits.max_payload_bytes
        self._metrics = metrics
        self._clock = clock
        self.connected = False
        self._subscribed = asyncio.Event()
        self._had_session = False
        self._pending: list[_Pending] = []
        self._ready = asyncio.Event()
        self._conn: MqttConnection | None = None

    async def wait_connected(self) -> None:
        """Return once connected and subscribed (startup checks, tests)."""
        await self._subscribed.wait()

    async def run(self) -> None:
        try:
            await self._reconnecting()
        finally:
            self._broker_watch.close()

    async def _reconnecting(self) -> None:
        failures = 0
        self._broker_watch.lost()  # not connected yet: an unreachable broker is alarmed too
        while True:
            self._had_session = False
            try:
                await self._session()
            except (MqttConnectionError, OSError, TimeoutError, _HandlerFailed) as exc:
                self._broker_watch.lost()
                if not isinstance(exc, _HandlerFailed) and self._had_session:
                    failures = 0  # the broker was there: a new outage starts the backoff anew
                failures += 1
                delay = backoff_after(exc).delay_s(failures)
                log.warning(
                    "mqtt_disconnected",
                    broker=f"{self._mqtt.host}:{self._mqtt.port}",
                    error=str(exc) or repr(exc),
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One connection: subscribe, then hand over and ack batches until it breaks."""
        self._pending = []
        self._ready.clear()
        duties = self._duties
        conn = await MqttConnection.open(
            self._mqtt,
            self._received,
            self._max_payload,
            clean_session=duties is not None and duties.clean_session,
            will=None if duties is None else duties.will(),
        )
        self._conn = conn
        duty: asyncio.Task[None] | None = None
        try:
            await conn.subscribe(self._routes.topic_filters())
            self._had_session = True
            self.connected = True
            self._subscribed.set()
            self._broker_watch.connected()
            log.info(
                "mqtt_subscribed",
                broker=f"{self._mqtt.host}:{self._mqtt.port}",
                client_id=self._mqtt.client_id,
                session_present=conn.session_present,
                topics=self._routes.topic_filters(),
            )
            if self._on_session is not None:
                await self._on_session(conn.session_present)
            if duties is not None:
                duty = asyncio.create_task(duties.run(conn), name=f"session-{duties.name}")
                duty.add_done_callback(lambda task: _end_on_failure(task, conn))
            await self._hand_over(conn)
        finally:
            self.connected = False
            self._subscribed.clear()
            self._conn = None
            self._pending = []  # not acknowledged: the broker sends them again
            if duty is not None:
                duty.cancel()
                await asyncio.wait({duty})
                if not conn.closed.done():
                    await _leave(duties, conn)
            await conn.disconnect()

    def _received(self, publishes: list[Publish]) -> None:
        """From ``data_received``: decode each message of one read, queue it."""
        received_ms = self._clock.now_ms()
        route = self._routes.codec
        pending = self._pending
        for topic, payload, packet_id, _, _, _ in publishes:
            codec = route(topic)
            if codec is None:
                # Still queued in our persistent session from an older subscription: ack
                # it (a message nobody decodes must not come back forever).
                log.warning("mqtt_message_unrouted", topic=printable(topic))
                pending.append((packet_id, None))
                continue
            decoded = codec.decode(topic, payload, received_ms)
            if decoded.also:
                # One part per gateway; the message is acknowledged with its last part
                # (batches are acknowledged in order, so only once all are handled).
                parts = decoded.parts()
                pending.extend((0, part) for part in parts[:-1])
                pending.append((packet_id, parts[-1]))
            else:
                pending.append((packet_id, decoded))
        self._ready.set()
        # Not before SUBACK: the hand-over starts then, and the SUBACK may be queued
        # behind a persistent session's backlog (the broker's in-flight window bounds it).
        if len(pending) >= 2 * self._batch_size and self.connected and self._conn is not None:
            self._conn.pause()

    async def _hand_over(self, conn: MqttConnection) -> None:
        """Batches to the handler, acks to the broker, until the connection is gone.

        Up to ``HANDLING`` batches are in the handler at once: while one waits for
        its spool commit (an fsync, in a worker thread), the next is validated and
        queued behind it. Acks still go out strictly in receive order — each batch
        acknowledges only after the one before it did.
        """
        closed = conn.closed
        handling: deque[asyncio.Task[None]] = deque()
        try:
            while True:
                if not self._pending:
                    self._ready.clear()
                    ready = asyncio.ensure_future(self._ready.wait())
                    waiting: set[asyncio.Future[Any]] = {ready, closed, *handling}
                    try:
                        await asyncio.wait(waiting, return_when="FIRST_COMPLETED")
                    finally:
                        ready.cancel()
                while handling and handling[0].done():
                    handling.popleft().result()  # _HandlerFailed: reconnect
                if closed.done():
                    raise MqttConnectionError(closed.result())
                if not self._pending:
                    continue
                if len(handling) >= HANDLING:
                    await asyncio.wait({handling[0]})
                    continue
                batch = self._take()
                if len(self._pending) < self._batch_size:
                    conn.resume()
                before = handling[-1] if handling else None
                handling.append(asyncio.create_task(self._flush(batch, conn, before)))
        except asyncio.CancelledError:
            for task in handling:  # stopping: the broker sends the unacknowledged again
                task.cancel()
            raise
        finally:
            # On a lost connection a batch in the handler is let finish (its spool
            # commit and detector hand-over belong together); only its acks are lost.
            if handling:
                await asyncio.wait(handling)
                for task in handling:
                    if not task.cancelled():
                        task.exception()  # seen: the first failure was raised already

    def _take(self) -> list[_Pending]:
        """The next batch: up to ``batch_size`` messages and about ``batch_readings``
        readings (a batch of big messages must not hold the next ones back for long:
        the publish → alarm latency goal), at least one message."""
        pending = self._pending
        readings = 0
        end = 0
        limit = min(len(pending), self._batch_size)
        while end < limit and readings < self._batch_readings:
            decoded = pending[end][1]
            readings += len(decoded.readings) if decoded is not None else 0
            end += 1
        batch = pending[:end]
        del pending[:end]
        return batch

    async def _flush(
        self, batch: list[_Pending], conn: MqttConnection, before: asyncio.Task[None] | None
    ) -> None:
        decoded = [d for _, d in batch if d is not None]
        if decoded:
            try:
                await self._handler(decoded)
            except HazwatchError as exc:  # expected (a full disk...): said, no traceback
                log.warning("ingest_batch_not_taken", messages=len(decoded), error=str(exc))
                raise _HandlerFailed(str(exc)) from exc
            except Exception as exc:
                log.exception("ingest_batch_failed", messages=len(decoded))
                raise _HandlerFailed(repr(exc)) from exc
        if before is not None:
            if not before.done():
                await asyncio.wait({before})
            if before.cancelled() or before.exception() is not None:
                return  # the batch before was not acknowledged: neither is this one
        conn.ack([packet_id for packet_id, _ in batch if packet_id])


def _end_on_failure(task: asyncio.Task[None], conn: MqttConnection) -> None:
    """A session duty that failed ends the connection (reconnect, duties start anew)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("mqtt_session_duty_failed", error=repr(exc))
        conn.close(f"session duty failed: {exc!r}")


async def _leave(duties: SessionDuties | None, conn: MqttConnection) -> None:
    if duties is None:
        return
    try:
        async with asyncio.timeout(LEAVE_TIMEOUT_S):
            await duties.leave(conn)
    except (MqttConnectionError, OSError, TimeoutError) as exc:
        log.warning("mqtt_session_leave_failed", error=str(exc) or repr(exc))
