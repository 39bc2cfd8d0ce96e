"""MqttSource against a real Mosquitto: batches, manual acks, persistent sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.settings import IngestSettings, MqttSettings
from ingest import source
from ingest.codec import Decoded
from ingest.connection import MqttConnectionError, MqttRefused
from ingest.hzjson import HzJsonCodec
from ingest.routes import CodecRoutes
from ingest.source import MqttSource
from tests.helpers import Gateway, eventually
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

NOW = 1_763_820_000_000
TIMEOUT_S = 20
Handler = Callable[[list[Decoded]], Awaitable[None]]


class Collector:
    """A handler that records batches and tells when ``expected`` messages arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.batches: list[list[Decoded]] = []
        self.done = asyncio.Event()
        self.called = asyncio.Event()

    async def __call__(self, batch: list[Decoded]) -> None:
        self.batches.append(batch)
        self.called.set()
        if self.count >= self.expected:
            self.done.set()

    @property
    def count(self) -> int:
        return sum(len(b) for b in self.batches)

    def seqs(self) -> list[int | None]:
        return [d.seq for batch in self.batches for d in batch]


@contextlib.asynccontextmanager
async def running_source(
    broker: Mosquitto,
    handler: Handler,
    *,
    batch_size: int = 500,
    client_id: str = "hazwatch-ingest-test",
) -> AsyncIterator[MqttSource]:
    limits = IngestSettings(batch_size=batch_size)
    source = MqttSource(
        MqttSettings(url=broker.url, client_id=client_id),
        CodecRoutes([HzJsonCodec(limits)]),
        handler,
        limits,
        Metrics(),
        ManualClock(NOW),
    )
    task = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await source.wait_connected()
        assert source.connected
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not source.connected


@pytest.fixture
def gateway(mosquitto: Mosquitto) -> Iterator[Gateway]:
    gw = Gateway(mosquitto.port, "E001", "gw1")
    yield gw
    gw.close()


def publish(gateway: Gateway, count: int) -> None:
    for _ in range(count):
        gateway.publish([{"tag": "TK101_LT", "v": gateway.seq / 10, "ts": NOW}])


async def test_messages_arrive_decoded_in_batches(mosquitto: Mosquitto, gateway: Gateway) -> None:
    collector = Collector(61)
    async with running_source(mosquitto, collector, batch_size=10) as source:
        publish(gateway, 60)
        gateway.publish_raw("hz/v1/E001/gw1/status", b"online")
        async with asyncio.timeout(TIMEOUT_S):
            await collector.done.wait()
        assert source.connected
    assert collector.count == 61
    assert all(1 <= len(batch) <= 10 for batch in collector.batches)
    assert len(collector.batches) >= 7
    decoded = [d for batch in collector.batches for d in batch]
    assert [d.seq for d in decoded[:60]] == list(range(1, 61))  # in receive order
    assert [r.value for d in decoded[:60] for r in d.readings] == [n / 10 for n in range(60)]
    assert all(d.codec == "hz-json" and d.received_ms == NOW for d in decoded)
    assert decoded[60].status is not None


async def test_batches_never_wait_to_fill_so_a_small_inflight_window_cannot_stall(
    tmp_path: Path,
) -> None:
    # Mosquitto's default: at most 20 unacknowledged messages in flight
    # (docs/architecture.md#measured-facts-mqtt, 3)
    broker = Mosquitto(tmp_path / "small-window", extra_config="max_inflight_messages 20\n")
    broker.start()
    gateway = Gateway(broker.port, "E001", "gw1")
    try:
        collector = Collector(100)
        async with running_source(broker, collector, batch_size=500):
            publish(gateway, 100)
            async with asyncio.timeout(TIMEOUT_S):
                await collector.done.wait()
        assert collector.seqs() == list(range(1, 101))
        # Nothing is acknowledged before the first batch is handled, so the broker
        # stopped at 20: a batch that waited to fill (500 never come) would stall.
        # (Mosquitto 2.0.11 then refills more than 20 after a few acks: not strict.)
        assert len(collector.batches[0]) <= 20
    finally:
        gateway.close()
        broker.stop()


async def test_unacknowledged_messages_come_back_after_a_restart(
    mosquitto: Mosquitto, gateway: Gateway
) -> None:
    # 1. a source whose handler never finishes (storage stuck): nothing is acknowledged
    stuck = Collector(1)
    never = asyncio.Event()

    async def stuck_handler(batch: list[Decoded]) -> None:
        await stuck(batch)
        await never.wait()

    async with running_source(mosquitto, stuck_handler, batch_size=5):
        publish(gateway, 20)
        async with asyncio.timeout(TIMEOUT_S):
            await stuck.called.wait()
        assert 1 <= stuck.count <= 2 * 5  # two batches in the handler, the rest waiting
    # 2. a new source with the same client id gets all 20 again, then acknowledges them
    again = Collector(20)
    async with running_source(mosquitto, again, batch_size=5):
        async with asyncio.timeout(TIMEOUT_S):
            await again.done.wait()
    assert sorted(again.seqs()) == list(range(1, 21))  # type: ignore[type-var]
    # 3. once acknowledged they are gone: the next source sees only what is new
    after = Collector(1)
    async with running_source(mosquitto, after):
        publish(gateway, 1)
        async with asyncio.timeout(TIMEOUT_S):
            await after.done.wait()
    assert after.seqs() == [21]


async def test_messages_published_while_the_source_is_down_are_kept(
    mosquitto: Mosquitto, gateway: Gateway
) -> None:
    first = Collector(1)
    async with running_source(mosquitto, first):  # creates the persistent session
        publish(gateway, 1)
        async with asyncio.timeout(TIMEOUT_S):
            await first.done.wait()
    publish(gateway, 30)  # nobody connected
    later = Collector(30)
    async with running_source(mosquitto, later):
        async with asyncio.timeout(TIMEOUT_S):
            await later.done.wait()
    assert later.seqs() == list(range(2, 32))


async def test_a_failing_handler_gets_the_batch_again(
    mosquitto: Mosquitto, gateway: Gateway
) -> None:
    collector = Collector(6)
    failures = 0

    async def flaky(batch: list[Decoded]) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise RuntimeError("storage bug")
        await collector(batch)

    async with running_source(mosquitto, flaky, batch_size=3):
        publish(gateway, 3)
        async with asyncio.timeout(TIMEOUT_S):
            while collector.count < 3:  # redelivered after the reconnect
                await collector.called.wait()
                collector.called.clear()
        publish(gateway, 3)
        async with asyncio.timeout(TIMEOUT_S):
            await collector.done.wait()
    assert collector.seqs() == [1, 2, 3, 4, 5, 6]


async def test_the_source_reconnects_when_the_broker_restarts(
    mosquitto: Mosquitto,
) -> None:
    collector = Collector(2)
    async with running_source(mosquitto, collector) as source:
        gateway = Gateway(mosquitto.port, "E001", "gw1")
        publish(gateway, 1)
        gateway.close()
        async with asyncio.timeout(TIMEOUT_S):
            await collector.called.wait()
        mosquitto.stop()
        await eventually(lambda: not source.connected, TIMEOUT_S, "source saw the broker go")
        mosquitto.start()
        async with asyncio.timeout(TIMEOUT_S):
            await source.wait_connected()
        gateway = Gateway(mosquitto.port, "E001", "gw1")
        gateway.seq = 1
        publish(gateway, 1)
        gateway.close()
        async with asyncio.timeout(TIMEOUT_S):
            while 2 not in collector.seqs():
                collector.called.clear()
                await collector.called.wait()
    # Message 1 may come twice: the broker can stop before its PUBACK arrives and
    # redelivers it from its persisted session (at-least-once; storage is idempotent).
    assert collector.seqs()[-1] == 2
    assert set(collector.seqs()) == {1, 2}


async def test_messages_on_unrouted_topics_are_acknowledged(
    mosquitto: Mosquitto, gateway: Gateway
) -> None:
    """A message nobody decodes must not come back forever
    (docs/architecture.md#rules-of-the-flow)."""

    class OtherCodec(HzJsonCodec):
        def topic_filters(self) -> list[str]:
            return ["other/#"]

    limits = IngestSettings()
    settings = MqttSettings(url=mosquitto.url, client_id="hazwatch-ingest-test")

    @contextlib.asynccontextmanager
    async def older_version(handler: Handler) -> AsyncIterator[None]:
        """The service as it was when it also subscribed other/#."""
        codec = OtherCodec(limits)
        source = MqttSource(
            settings, CodecRoutes([codec]), handler, limits, Metrics(), ManualClock(NOW)
        )
        task = asyncio.create_task(source.run())
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await source.wait_connected()
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async with older_version(Collector(1)):
        pass  # leaves other/# in the persistent session
    gateway.publish_raw("other/x", b"1")
    current = Collector(1)
    async with running_source(mosquitto, current):  # other/x arrives, nobody decodes it
        publish(gateway, 1)
        async with asyncio.timeout(TIMEOUT_S):
            await current.done.wait()
    assert current.seqs() == [1]
    check = Collector(1)
    async with older_version(check):
        gateway.publish_raw("other/y", b"2")
        async with asyncio.timeout(TIMEOUT_S):
            await check.done.wait()
    assert [d.topic for batch in check.batches for d in batch] == ["other/y"]  # x was acked


@pytest.mark.parametrize(
    ("failure", "slow"),
    [
        (ConnectionRefusedError(111, "Connection refused"), False),  # the broker is away
        (MqttConnectionError("connection lost"), False),
        (TimeoutError(), False),
        (MqttRefused("the broker refused the connection: not authorised (5)"), True),
        (source._HandlerFailed("database or disk is full"), True),
    ],
)
def test_an_outage_is_retried_within_seconds_a_refusal_slowly(
    failure: BaseException, slow: bool
) -> None:
    """Back within 2 s of a broker's return (one that lost our session routes messages
    to no one until we subscribe); a refusal or our own failure up to 30 s apart."""
    ceiling_ms = 30_000 if slow else 2_000
    assert max(source.backoff_after(failure).delay_ms(n) for n in range(1, 30)) <= ceiling_ms
    assert source.backoff_after(failure).max_ms == ceiling_ms
