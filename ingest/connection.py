"""One MQTT 3.1.1 connection for the ingest's hot path: an asyncio ``Protocol``.

Why not aiomqtt/paho here (docs/architecture.md): on one reading per message, their receive
path — a ``Message`` object, ``Topic.matches`` and a future per message, paho's
packet handling — was most of hazwatch's ~125 µs CPU per message. Here
``data_received`` parses every complete packet of a read in one loop
(:class:`ingest.packets.PacketReader`) and hands all its PUBLISHes over in one
call; PUBACKs go out as one write per batch. aiomqtt stays for the control plane
(alarm notifications), where a message costs nothing that matters.

What it does, and nothing more: CONNECT with a persistent session
(``clean_session=0``, fixed client id, username/password, TLS for ``mqtts://`` with
the context of :func:`hazwatch.tls.mqtt_ssl_context`; a clean session and a will when
a session's duties ask, :mod:`ingest.session`), SUBSCRIBE at QoS 1, PUBLISH in, PUBACK
out (when the owner says so), the few PUBLISHes out of those duties
(:meth:`MqttConnection.publish`), keepalive
(PINGREQ when nothing was sent for half the keepalive; a broker silent for 1.5 of
it is taken for gone), DISCONNECT on a clean close. Whatever the broker sends that
this does not expect closes the connection with a reason (``close_reason``); it
never raises into the event loop.

Reading can be paused (:meth:`MqttConnection.pause`): the kernel's socket buffer
fills and TCP holds the broker back — the ingest's backpressure.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from hazwatch.settings import MqttSettings
from hazwatch.tls import mqtt_ssl_context, tls_failure
from ingest.packets import (
    CONNACK_REFUSALS,
    DISCONNECT,
    PINGREQ,
    SUBACK_FAILURE,
    ConnAck,
    MalformedPacket,
    Packet,
    PacketReader,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Will,
    connect,
    pubacks,
    publish,
    subscribe,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

HANDSHAKE_TIMEOUT_S = 10.0
DISCONNECT_TIMEOUT_S = 2.0
SUBSCRIBE_ID = 1
FIRST_PUBLISH_ID = 2
"""Packet ids of our own QoS 1 PUBLISHes count from here (1 is the SUBSCRIBE's)."""


def _ignore(_: list[Publish]) -> None:
    pass


class MqttConnectionError(Exception):
    """The connection could not be set up, or broke; ``str()`` says why."""


class MqttRefused(MqttConnectionError):
    """The broker is there but will not have us — credentials, authorisation, TLS
    trust, a refused subscription: a configuration to mend, not an outage to ride out
    (retried slowly)."""


UNAVAILABLE = 3
"""CONNACK "server unavailable": an outage, not a refusal."""


class MqttConnection(asyncio.Protocol):
    """``conn = await MqttConnection.open(settings, on_publishes, max_payload)``.

    ``on_publishes(publishes)`` is called from ``data_received`` with every PUBLISH
    of one read, in receive order — also before :meth:`subscribe` returned (a
    persistent session's queued messages come right after CONNACK).
    """

    def __init__(
        self,
        on_publishes: Callable[[list[Publish]], None],
        max_payload: int,
        keepalive_s: int,
    ) -> None:
        self._on_publishes = on_publishes
        self._reader = PacketReader(max_payload)
        self._keepalive_s = keepalive_s
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._connack: asyncio.Future[ConnAck] = self._loop.create_future()
        self._suback: asyncio.Future[SubAck] = self._loop.create_future()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        """Resolves with the reason once the connection is gone (or going)."""
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self.close_reason: str | None = None
        self.session_present = False
        self._last_sent = self._last_received = self._loop.time()
        self._keepalive: asyncio.TimerHandle | None = None
        self._paused = False
        self.lost_to: Exception | None = None
        """What the connection was lost to (``connection_lost``), if anything."""
        self._next_id = FIRST_PUBLISH_ID
        self._unacked: dict[int, asyncio.Future[None]] = {}

    @classmethod
    async def open(
        cls,
        settings: MqttSettings,
        on_publishes: Callable[[list[Publish]], None],
        max_payload: int,
        *,
        clean_session: bool = False,
        will: Will | None = None,
    ) -> MqttConnection:
        """Connect, send CONNECT, wait for a CONNACK that accepts. Raises
        ``MqttConnectionError`` (refused, malformed, timeout) or ``OSError``."""
        loop = asyncio.get_running_loop()
        tls = mqtt_ssl_context(settings)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                _, conn = await loop.create_connection(
                    lambda: cls(on_publishes, max_payload, settings.keepalive_s),
                    settings.host,
                    settings.port,
                    ssl=tls,
                )
        except ssl.SSLError as exc:
            raise MqttRefused(tls_failure(exc, settings)) from exc
        try:
            await conn.handshake(settings, clean_session=clean_session, will=will)
        except MqttConnectionError as exc:
            lost = conn.lost_to
            if isinstance(lost, ssl.SSLError | ConnectionResetError) and tls is not None:
                # TLS 1.3: the broker checks our certificate after the handshake, then
                # hangs up before the CONNACK (a reset may also be a broker going down)
                refused = isinstance(lost, ssl.SSLError)
                error = MqttRefused if refused else MqttConnectionError
                raise error(tls_failure(lost, settings)) from exc
            raise
        return conn

    async def handshake(
        self, settings: MqttSettings, *, clean_session: bool = False, will: Will | None = None
    ) -> None:
        """Send CONNECT, wait for a CONNACK that accepts (closes the connection if not)."""
        try:
            password = settings.password.get_secret_value()
            self._send(
                connect(
                    settings.client_id,
                    settings.keepalive_s,
                    username=settings.username or None,
                    password=password or None,
                    clean_session=clean_session,
                    will=will,
                )
            )
            connack = await self._wait(self._connack, "CONNACK")
        except BaseException:
            self.close()
            raise
        if connack.return_code:
            refusal = CONNACK_REFUSALS.get(connack.return_code, "unknown return code")
            self.close()
            error = MqttConnectionError if connack.return_code == UNAVAILABLE else MqttRefused
            raise error(f"the broker refused the connection: {refusal} ({connack.return_code})")
        self.session_present = connack.session_present
        self._schedule_keepalive()

    async def subscribe(self, topic_filters: list[str], qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK; a refused filter raises."""
        self._send(subscribe(SUBSCRIBE_ID, [(f, qos) for f in topic_filters]))
        suback = await self._wait(self._suback, "SUBACK")
        refused = [
            f for f, g in zip(topic_filters, suback.granted, strict=False) if g == SUBACK_FAILURE
        ]
        if suback.packet_id != SUBSCRIBE_ID or len(suback.granted) != len(topic_filters):
            raise MqttConnectionError(f"SUBACK does not answer our SUBSCRIBE: {suback}")
        if refused:
            raise MqttRefused(f"the broker refused the subscriptions {refused}")

    def ack(self, packet_ids: list[int]) -> bool:
        """PUBACK these ids, in this order, in one write; ``False`` if the connection is
        gone (the broker will send those messages again)."""
        if self._transport is None or self._transport.is_closing():
            return False
        if packet_ids:
            self._send(pubacks(packet_ids))
        return True

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish; at QoS 1 return once the broker acknowledged it. Raises
        ``MqttConnectionError`` if the connection is gone first."""
        if qos == 0:
            self._send(publish(topic, payload, qos=0, retain=retain))
            return
        packet_id = self._next_id
        self._next_id = FIRST_PUBLISH_ID + (packet_id + 1 - FIRST_PUBLISH_ID) % (
            0x10000 - FIRST_PUBLISH_ID
        )
        acked = self._unacked[packet_id] = self._loop.create_future()
        try:
            self._send(publish(topic, payload, qos=1, packet_id=packet_id, retain=retain))
            await self._wait(acked, "PUBACK")
        finally:
            self._unacked.pop(packet_id, None)

    def pause(self) -> None:
        if self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and self._paused:
            self._paused = False
            self._last_received = self._loop.time()  # our silence is not the broker's
            self._transport.resume_reading()

    async def disconnect(self, timeout_s: float = DISCONNECT_TIMEOUT_S) -> None:
        """Send DISCONNECT and wait until the broker closed the connection (so a new
        connection with the same client id never races the old one's session)."""
        if self._transport is not None and not self._transport.is_closing():
            self._on_publishes = _ignore  # what still comes is not acknowledged: it comes again
            self.resume()  # to see the broker close
            self._transport.write(DISCONNECT)
            self._set_closed("closed by hazwatch")
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(self._lost)
            except TimeoutError:
                log.warning("mqtt_disconnect_timeout", waited_s=timeout_s)
        self.close()

    def close(self, reason: str = "closed by hazwatch") -> None:
        """Send DISCONNECT (if the connection is healthy) and close."""
        if self._transport is not None and not self._transport.is_closing():
            if not self.closed.done():
                self._transport.write(DISCONNECT)
            self._transport.close()
        self._set_closed(reason)

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._last_received = self._loop.time()
        try:
            self._dispatch(self._reader.feed(data))
        except MalformedPacket as exc:
            self._fail(f"malformed packet from the broker: {exc.reason}")
        except Exception as exc:
            # A bug here (reader or owner) must not escape into the event loop, which
            # would log it and leave this connection half-read: close it instead; what
            # was not acknowledged comes again on the next connection.
            log.exception("mqtt_receive_failed")
            self._fail(f"internal error while reading from the broker: {exc!r}")

    def _dispatch(self, packets: list[Packet]) -> None:
        publishes: list[Publish] = []
        for packet in packets:
            if type(packet) is Publish:
                if packet.qos == 2:  # subscribed at QoS 1: the broker must downgrade
                    self._fail("PUBLISH at QoS 2 on a QoS 1 subscription")
                    return
                publishes.append(packet)
            elif type(packet) is ConnAck and not self._connack.done():
                self._connack.set_result(packet)
            elif type(packet) is SubAck and not self._suback.done():
                self._suback.set_result(packet)
            elif type(packet) is PubAck:
                acked = self._unacked.get(packet.packet_id)
                if acked is None or acked.done():
                    self._fail(f"PUBACK for packet {packet.packet_id}, which was not sent")
                    return
                acked.set_result(None)
            elif type(packet) is not PingResp:
                self._fail(f"unexpected {type(packet).__name__} from the broker")
                return
        if publishes:
            self._on_publishes(publishes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_to = exc
        if not self._lost.done():
            self._lost.set_result(None)
        self._set_closed(f"connection lost: {exc!r}" if exc else "the broker closed the connection")

    # --- internals -----------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise MqttConnectionError(self.close_reason or "not connected")
        self._transport.write(data)
        self._last_sent = self._loop.time()

    async def _wait(self, future: asyncio.Future[T], what: str) -> T:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                waiting: set[asyncio.Future[Any]] = {future, self.closed}
                done, _ = await asyncio.wait(waiting, return_when="FIRST_COMPLETED")
        except TimeoutError:
            raise MqttConnectionError(f"no {what} within {HANDSHAKE_TIMEOUT_S:.0f} s") from None
        if future not in done:
            raise MqttConnectionError(f"no {what}: {self.closed.result()}")
        return future.result()

    def _fail(self, reason: str) -> None:
        log.error("mqtt_protocol_error", reason=reason)
        self.close_reason = reason
        if self._transport is not None:
            self._transport.close()
        self._set_closed(reason)

    def _set_closed(self, reason: str) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if not self.closed.done():
            self.close_reason = self.close_reason or reason
            self.closed.set_result(self.close_reason)

    def _schedule_keepalive(self) -> None:
        if not self.closed.done():
            self._keepalive = self._loop.call_later(self._keepalive_s / 2, self._check_alive)

    def _check_alive(self) -> None:
        now = self._loop.time()
        if not self._paused and now - self._last_received > 1.5 * self._keepalive_s:
            self._fail(f"the broker sent nothing for {now - self._last_received:.0f} s")
            return
        if now - self._last_sent >= self._keepalive_s / 2:
            try:
                self._send(PINGREQ)
            except MqttConnectionError:
                return
        self._schedule_keepalive()
