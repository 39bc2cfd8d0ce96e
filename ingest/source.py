"""Gateway messages from the MQTT broker, acknowledged only once they are handled.

The guarantees (DESIGN.md §5; the measurements behind them are REFERENCE.md MQTT 1-3):

- **Persistent session** (``clean_session=False``, a fixed client id), QoS 1
  subscriptions: what gateways publish while the ingest is down waits in the broker.
- **Manual acks**: aiomqtt 2.5 lets paho acknowledge a message as soon as it is
  queued, before anything is stored (a SIGKILL then loses it). Here paho's manual
  ack mode is on from before the connection, and PUBACKs go out — in receive order —
  only after ``handler(batch)`` returned. A message received but not acknowledged is
  redelivered by the broker on the next connection.
- **Batches close on size or time**: the broker sends at most ``max_inflight_messages``
  unacknowledged messages (Mosquitto's default: 20), so waiting for a full batch could
  wait forever. A batch is handed over at ``limits.batch_size`` messages or
  ``limits.flush_ms`` after its first message, whichever comes first.
- **Reconnects** with jittered exponential backoff when the broker goes away. Messages
  of the lost connection that were not acknowledged are dropped here: the broker
  redelivers them, and storage is idempotent.

A handler that raises is logged, the connection is dropped and re-established, and
the unacknowledged batch comes back (at the backoff's pace, never a hot loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt
import paho.mqtt.client as paho
import structlog

from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.settings import IngestSettings, MqttSettings
from ingest.codec import Decoded, PayloadCodec, printable

log = structlog.get_logger(__name__)

RECONNECT_BACKOFF = Backoff(initial_ms=500, max_ms=30_000)

Ack = Callable[[aiomqtt.Message], None]


def manual_acks(client: aiomqtt.Client) -> Ack:
    """Switch ``client`` to manual acknowledgement; return the function that acks one message.

    aiomqtt 2.x has no public API for this (aiomqtt issue #345), so this is the one
    place that reaches into its paho client (``client._client``). Call it before
    ``async with client``: with a persistent session the broker sends queued
    messages right after CONNACK, before any subscribe. The ack raises
    ``aiomqtt.MqttError`` if paho cannot send it (connection gone: the broker will
    redeliver the message).
    """
    paho_client: paho.Client = client._client  # noqa: SLF001 - aiomqtt issue #345
    paho_client.manual_ack_set(on=True)

    def ack(message: aiomqtt.Message) -> None:
        rc = paho_client.ack(message.mid, message.qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttError(f"could not acknowledge message {message.mid}: {rc!r}")

    return ack


def _retrieve(task: asyncio.Future[aiomqtt.Message]) -> None:
    """Mark a dropped receive's outcome as seen (no "exception never retrieved" noise)."""
    if not task.cancelled():
        task.exception()


class _HandlerFailed(Exception):
    """Internal: the handler raised; reconnect so the broker redelivers the batch."""


class MqttSource:
    """Subscribes every codec's topics, decodes, batches, hands over, acknowledges.

    ``await source.run()`` until cancelled. ``connected`` is true while subscribed.
    """

    def __init__(  # noqa: PLR0917 - the signature the wiring codes against
        self,
        mqtt: MqttSettings,
        codecs: Sequence[PayloadCodec],
        handler: Callable[[list[Decoded]], Awaitable[None]],
        limits: IngestSettings,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._mqtt = mqtt
        self._routes = [(f, codec) for codec in codecs for f in codec.topic_filters()]
        self._handler = handler
        self._batch_size = limits.batch_size
        self._flush_s = limits.flush_ms / 1000
        self._metrics = metrics
        self._clock = clock
        self.connected = False
        self._subscribed = asyncio.Event()
        self._had_session = False

    async def wait_connected(self) -> None:
        """Return once connected and subscribed (startup checks, tests)."""
        await self._subscribed.wait()

    async def run(self) -> None:
        failures = 0
        while True:
            self._had_session = False
            try:
                await self._session()
            except (aiomqtt.MqttError, _HandlerFailed) as exc:
                if isinstance(exc, aiomqtt.MqttError) and self._had_session:
                    failures = 0  # the broker was there: a new outage starts the backoff anew
                failures += 1
                delay = RECONNECT_BACKOFF.delay_s(failures)
                log.warning(
                    "mqtt_disconnected",
                    broker=f"{self._mqtt.host}:{self._mqtt.port}",
                    error=str(exc),
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One connection: subscribe, then batch, handle and ack until it breaks."""
        client = aiomqtt.Client(
            self._mqtt.host,
            self._mqtt.port,
            identifier=self._mqtt.client_id,
            clean_session=False,
            username=self._mqtt.username or None,
            password=self._mqtt.password.get_secret_value() or None,
            keepalive=self._mqtt.keepalive_s,
            tls_params=aiomqtt.TLSParameters() if self._mqtt.tls else None,
        )
        ack = manual_acks(client)
        async with client:
            await client.subscribe([(topic_filter, 1) for topic_filter, _ in self._routes])
            self._had_session = True
            self.connected = True
            self._subscribed.set()
            log.info(
                "mqtt_subscribed",
                broker=f"{self._mqtt.host}:{self._mqtt.port}",
                client_id=self._mqtt.client_id,
                topics=[topic_filter for topic_filter, _ in self._routes],
            )
            try:
                await self._receive(client, ack)
            finally:
                self.connected = False
                self._subscribed.clear()

    async def _receive(self, client: aiomqtt.Client, ack: Ack) -> None:
        loop = asyncio.get_running_loop()
        messages = client.messages
        batch: list[tuple[aiomqtt.Message, Decoded | None]] = []
        deadline = 0.0
        # The pending receive is never cancelled mid-batch: cancelling aiomqtt's
        # __anext__ just as it got a message would drop that message silently.
        pending: asyncio.Future[aiomqtt.Message] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(messages))
                timeout = None if not batch else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if done:
                    message = pending.result()  # MqttError when the connection broke
                    pending = None
                    if not batch:
                        deadline = loop.time() + self._flush_s
                    batch.append((message, self._decode(message)))
                    if len(batch) < self._batch_size:
                        continue
                await self._flush(batch, ack)
                batch = []
        finally:
            if pending is not None:  # unacknowledged: the broker redelivers it
                pending.cancel()
                pending.add_done_callback(_retrieve)

    def _decode(self, message: aiomqtt.Message) -> Decoded | None:
        received_ms = self._clock.now_ms()
        for topic_filter, codec in self._routes:
            if message.topic.matches(topic_filter):
                return codec.decode(message.topic.value, message.payload, received_ms)
        # Still queued in our persistent session from an older subscription: ack it
        # (a message nobody decodes must not come back forever).
        log.warning("mqtt_message_unrouted", topic=printable(message.topic.value))
        return None

    async def _flush(self, batch: list[tuple[aiomqtt.Message, Decoded | None]], ack: Ack) -> None:
        decoded = [d for _, d in batch if d is not None]
        if decoded:
            try:
                await self._handler(decoded)
            except Exception as exc:
                log.exception("ingest_batch_failed", messages=len(decoded))
                raise _HandlerFailed(repr(exc)) from exc
        for message, _ in batch:
            ack(message)
