"""MqttConnection against a scripted broker: refusals, malformed packets, keepalive,
acks — the cases Mosquitto will not produce on demand. The real broker (persistent
sessions, redelivery after a reconnect) is tests/ingest/test_source.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.settings import IngestSettings, MqttSettings
from ingest.codec import Decoded
from ingest.connection import MqttConnection, MqttConnectionError, MqttRefused
from ingest.hzjson import HzJsonCodec
from ingest.packets import Publish, publish
from ingest.routes import CodecRoutes
from ingest.source import MqttSource

CONNACK = b"\x20\x02\x00\x00"

TOPIC = "hz/v1/E001/gw1/tag/TK101_LT"
NOW = 1_763_820_000_000

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ScriptedBroker:
    """Accepts connections; each runs the next script (the last one repeats)."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.connections = 0
        self.received: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        try:
            await script(reader, writer)
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[MqttSettings]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield MqttSettings(url=f"mqtt://127.0.0.1:{self.port}", keepalive_s=5)


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    first = await reader.readexactly(1)
    length = shift = 0
    header = b""
    while True:
        byte = await reader.readexactly(1)
        header += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return first + header + await reader.readexactly(length)


def collect() -> tuple[list[Publish], Callable[[list[Publish]], None]]:
    got: list[Publish] = []
    return got, got.extend


@pytest.mark.parametrize(
    ("code", "says", "refusal"),
    [
        (5, "not authorised", True),
        (4, "bad user name or password", True),
        (3, "server unavailable", False),  # an outage: retried at the outage's pace
    ],
)
async def test_a_refused_connack_says_why(code: int, says: str, refusal: bool) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(bytes([0x20, 0x02, 0x00, code]))
        await writer.drain()
        await reader.read()

    async with ScriptedBroker(refuse).serving() as settings:
        with pytest.raises(MqttConnectionError, match=rf"{says} \({code}\)") as refused:
            await MqttConnection.open(settings, collect()[1], 1024)
    assert isinstance(refused.value, MqttRefused) is refusal


async def test_connect_subscribe_receive_and_ack_in_order() -> None:
    acked = asyncio.get_running_loop().create_future()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connect = await read_packet(reader)
        assert connect[10:12] == b"\x00\x05"  # keepalive 5 s
        assert connect[9] & 0x02 == 0  # clean_session=0: a persistent session
        # queued messages of the persistent session come before the SUBACK
        writer.write(CONNACK[:2] + b"\x01\x00" + publish(TOPIC, b"1", packet_id=7))
        sub = await read_packet(reader)
        assert sub[0] == 0x82
        writer.write(b"\x90\x03\x00\x01\x01" + publish(TOPIC, b"2", packet_id=8))
        acked.set_result(await reader.readexactly(8))
        await reader.read()

    got, on_publishes = collect()
    async with ScriptedBroker(broker).serving() as settings:
        conn = await MqttConnection.open(settings, on_publishes, 1024)
        assert conn.session_present
        await conn.subscribe(["hz/v1/+/+/tag/+"])
        while len(got) < 2:
            await asyncio.sleep(0.01)
        assert [(p.payload, p.packet_id) for p in got] == [(b"1", 7), (b"2", 8)]
        assert conn.ack([7, 8])
        assert await acked == b"\x40\x02\x00\x07\x40\x02\x00\x08"
        conn.close()
        assert await conn.closed == "closed by hazwatch"
        assert not conn.ack([9])  # gone: the broker will send it again


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"\x36\x05\x00\x01a\x00\x01", "malformed packet from the broker: PUBLISH: expected QoS"),
        (publish(TOPIC, b"1", qos=2, packet_id=3), "QoS 2 on a QoS 1 subscription"),
        (b"\x20\x02\x00\x00", "unexpected ConnAck"),
        # a PUBLISH too short for its topic: raised IndexError into the event loop before
        (b"\x30\x00", "malformed packet from the broker: PUBLISH: expected a topic"),
        (b"\x30\x01\x00", "malformed packet from the broker: PUBLISH: expected a topic"),
        (b"\x32\x01\x00", "malformed packet from the broker: PUBLISH: expected a topic"),
    ],
)
async def test_a_broker_breaking_the_protocol_is_disconnected_with_a_reason(
    garbage: bytes, reason: str
) -> None:
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(CONNACK)
        await writer.drain()
        await asyncio.sleep(0.05)  # connected first; then the garbage
        writer.write(garbage)
        await reader.read()

    async with ScriptedBroker(broker).serving() as settings:
        conn = await MqttConnection.open(settings, collect()[1], 1024)
        async with asyncio.timeout(5):
            assert reason in await conn.closed


async def test_an_owner_that_raises_closes_the_connection_not_the_event_loop() -> None:
    """Whatever fails inside ``data_received`` closes the connection with a reason;
    nothing reaches the event loop's exception handler."""
    unhandled: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(CONNACK)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(publish(TOPIC, b"1", packet_id=3))
        await reader.read()

    def owner(_: list[Publish]) -> None:
        raise RuntimeError("a bug in the owner")

    try:
        async with ScriptedBroker(broker).serving() as settings:
            conn = await MqttConnection.open(settings, owner, 1024)
            async with asyncio.timeout(5):
                reason = await conn.closed
    finally:
        loop.set_exception_handler(None)
    assert "internal error" in reason
    assert "a bug in the owner" in reason
    assert unhandled == []


async def test_pingreq_when_idle() -> None:
    pinged = asyncio.get_running_loop().create_future()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(CONNACK)
        pinged.set_result(await read_packet(reader))
        writer.write(b"\xd0\x00")
        await reader.read()

    async with ScriptedBroker(broker).serving() as settings:
        conn = await MqttConnection.open(settings, collect()[1], 1024)
        async with asyncio.timeout(5):  # half the keepalive of 5 s
            assert await pinged == b"\xc0\x00"
        assert not conn.closed.done()
        conn.close()


async def test_the_source_survives_a_malformed_packet_and_gets_the_message_again() -> None:
    """Malformed input closes the connection, never the service; unacked comes back."""

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(CONNACK)
        await read_packet(reader)
        writer.write(b"\x90\x05\x00\x01\x01\x01\x01" + b"\x30\xff\xff\xff\xff\x01")
        await reader.read()

    acks: list[bytes] = []

    async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(b"\x20\x02\x01\x00")
        await read_packet(reader)
        writer.write(b"\x90\x05\x00\x01\x01\x01\x01" + publish(TOPIC, b"2.5", packet_id=4))
        acks.append(await read_packet(reader))
        await reader.read()

    batches: list[list[Decoded]] = []

    async def handler(batch: list[Decoded]) -> None:
        batches.append(batch)

    limits = IngestSettings()
    broker = ScriptedBroker(broken, healthy)
    async with broker.serving() as settings:
        source = MqttSource(
            settings,
            CodecRoutes([HzJsonCodec(limits)]),
            handler,
            limits,
            Metrics(),
            ManualClock(NOW),
        )
        task = asyncio.create_task(source.run())
        try:
            async with asyncio.timeout(10):
                while not acks:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert broker.connections == 2
    assert acks == [b"\x40\x02\x00\x04"]
    [[decoded]] = batches
    assert [r.value for r in decoded.readings] == [2.5]
