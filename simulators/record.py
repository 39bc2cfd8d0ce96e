"""``hazwatch record``: subscribe to a broker and write what arrives to a recording.

Every message matching the topic filters (default ``hz/v1/#``: the gateways' data,
tag and status topics, and the platform's own ``hz/v1/{enterprise}/alarms``) becomes
one line of a recording (:mod:`simulators.recording`), with the time it was received
on the injected clock.

- MQTT 5 with *retain as published*: a retained message keeps its retain flag even
  when it arrives live (MQTT 3.1.1 clears it), so a replay republishes the gateways'
  ``status`` as they were. The broker must speak MQTT 5 (Mosquitto ≥ 1.6, EMQX, HiveMQ).
- QoS 1 subscriptions; the file is written from paho's network thread as messages
  arrive (no queue to grow) and flushed every second, and on stop.
- A lost connection is counted and logged, and paho reconnects; what was published
  meanwhile is missing from the recording (the gateways' ``seq`` shows the gap).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from hazwatch.clock import Clock, SystemClock
from hazwatch.errors import BrokerError, HazwatchError
from simulators.broker import Broker, BrokerConnection
from simulators.recording import RecordedMessage, RecordingHeader, RecordingWriter

DEFAULT_TOPICS = ("hz/v1/#",)
FLUSH_S = 1.0


class Recorder:
    """``async with Recorder(broker, path) as recorder: await recorder.run()``.

    ``run`` returns after ``duration_s`` seconds or ``max_messages`` messages (both
    optional; without them it runs until cancelled). Leaving the context stops the
    subscription and flushes and closes the file — also on Ctrl-C.
    """

    def __init__(
        self,
        broker: Broker,
        path: Path,
        *,
        topics: Sequence[str] = DEFAULT_TOPICS,
        clock: Clock | None = None,
        duration_s: float | None = None,
        max_messages: int | None = None,
    ) -> None:
        if not topics:
            raise ValueError("expected at least one topic filter")
        self.broker = broker
        self.path = path
        self._topics = tuple(topics)
        self._clock = clock or SystemClock()
        self._duration_s = duration_s
        self._max_messages = max_messages
        self._writer: RecordingWriter | None = None
        self._connection: BrokerConnection | None = None
        self._subscribed = False
        self.started_ms = 0

    @property
    def messages(self) -> int:
        """Messages written so far."""
        return 0 if self._writer is None else self._writer.messages

    @property
    def bytes_written(self) -> int:
        return 0 if self._writer is None else self._writer.bytes_written

    @property
    def disconnects(self) -> int:
        return 0 if self._connection is None else self._connection.disconnects

    async def __aenter__(self) -> Self:
        self.started_ms = self._clock.now_ms()
        writer = RecordingWriter(self.path, RecordingHeader(self.started_ms, self.broker.url))
        self._writer = writer.__enter__()
        self._connection = BrokerConnection(
            self.broker,
            f"hazwatch-record-{secrets.token_hex(4)}",
            reconnect=True,
            on_connected=self._subscribe,
        )
        self._connection.client.on_subscribe = self._on_subscribe
        self._connection.client.on_message = self._on_message
        try:
            try:
                await self._connection.__aenter__()
            except BaseException:
                self._connection = None  # it closed itself
                raise
            await self._connection.wait_until(lambda: self._subscribed, "subscribed", 10)
        except BaseException:
            await self.__aexit__(None, None, None)
            if self.messages == 0:  # a failed start leaves no file behind
                self.path.unlink(missing_ok=True)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._connection is not None:
                await self._connection.__aexit__()
        finally:
            if self._writer is not None:
                self._writer.__exit__()

    async def run(self) -> None:
        """Record until the duration or the message count is reached (or cancelled)."""
        assert self._connection is not None
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        deadline = None if self._duration_s is None else loop.time() + self._duration_s
        limit = self._max_messages
        while True:
            timeout = FLUSH_S if deadline is None else min(FLUSH_S, deadline - loop.time())
            if timeout <= 0:
                return
            if await self._connection.wait_for(
                lambda: limit is not None and self.messages >= limit, timeout
            ):
                return
            self._writer.flush()

    # --- on paho's network thread --------------------------------------------------

    def _subscribe(self, client: paho.Client) -> None:
        self._subscribed = False
        options = SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe([(topic, options) for topic in self._topics])

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: object,
    ) -> None:
        assert self._connection is not None
        refused = [
            f"{topic} ({reason})"
            for topic, reason in zip(self._topics, reasons, strict=False)
            if reason.is_failure
        ]
        if refused:
            self._connection.fail(
                BrokerError(f"{self.broker.url} refused the subscription to {', '.join(refused)}")
            )
            return
        self._subscribed = True
        self._connection.notify()

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        assert self._writer is not None
        assert self._connection is not None
        limit = self._max_messages
        if self._connection.failure is not None or (limit is not None and self.messages >= limit):
            return
        message = RecordedMessage(self._clock.now_ms(), msg.topic, bytes(msg.payload), msg.retain)
        try:
            self._writer.write(message)
        except HazwatchError as exc:  # disk full: stop, keeping what was written
            self._connection.fail(exc)
            return
        if limit is not None and self.messages >= limit:
            self._connection.notify()
