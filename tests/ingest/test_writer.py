"""SinkWriter: drains the spool in order, retries with backoff, bisects out poison points,
raises and clears the historian-lag system alarm. Real sinks: tests/test_faults.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Self

import pytest

from hazwatch.clock import ManualClock
from hazwatch.errors import SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmType, Condition, Reading
from hazwatch.registry import load_registry
from hazwatch.settings import IngestSettings
from ingest.lineprotocol import LineEncoder
from ingest.rejects import RejectLog
from ingest.sink import LineSink
from ingest.spool import Spool, SpooledMessage
from ingest.writer import LAG_TAG, SinkWriter
from tests.conftest import EXAMPLE_REGISTRY
from tests.helpers import spooled, write_registry

NOW = 1_763_820_000_000
MB = 2**20
ENCODER = LineEncoder(load_registry(EXAMPLE_REGISTRY))


class FakeSink:
    """Stores readings; fails while ``down``; refuses the values in ``poison`` (400)."""

    name = "fake"

    def __init__(self, poison: Sequence[float] = ()) -> None:
        self.poison = set(poison)
        self.down = False
        self.stored: list[Reading] = []
        self.calls = 0
        self.failed = asyncio.Event()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def write(self, readings: Sequence[Reading]) -> None:
        self.calls += 1
        if self.down:
            self.failed.set()
            raise SinkUnavailable("HTTP 503: busy")
        bad = [r for r in readings if r.value in self.poison]
        # Like InfluxDB: the good points of a partial write are stored.
        self.stored.extend(r for r in readings if r.value not in self.poison)
        if bad:
            raise SinkRejected(
                f"HTTP 400: partial write: field type conflict dropped={len(bad)}", status=400
            )

    async def history(
        self, enterprise: str, tag: str, start_ms: int, end_ms: int, step_ms: int
    ) -> list[tuple[int, float]]:
        return []

    async def ping(self) -> bool:
        return not self.down


class FakeLineSink(FakeSink):
    """The same, taking line protocol as InfluxSink does (the writer's fast path)."""

    def __init__(self, poison: Sequence[float] = ()) -> None:
        super().__init__(poison)
        self.bodies: list[bytes] = []

    async def write_lines(self, body: bytes, points: int) -> None:
        assert body.count(b"\n") + 1 == points
        self.bodies.append(body)
        await self.write(ENCODER.parse(body, "gw1"))


def readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading("E001", "gw1", "TK101_LT", float(start + k), NOW + start + k) for k in range(n)]


def message(n: int, start: int = 0) -> SpooledMessage:
    return spooled(ENCODER, readings(n, start))


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    async with Spool(tmp_path / "spool.db", 64 * MB, Metrics()) as opened:
        yield opened


def writer(
    spool: Spool,
    sink: FakeSink,
    *,
    clock: ManualClock | None = None,
    metrics: Metrics | None = None,
    alarms: list[Condition] | None = None,
    batch: int = 100,
    lanes: int = 1,
    encoder: LineEncoder = ENCODER,
) -> SinkWriter:
    metrics = metrics or Metrics()
    return SinkWriter(
        spool=spool,
        sink=sink,
        encoder=encoder,
        rejects=RejectLog(IngestSettings(), metrics),
        metrics=metrics,
        clock=clock or ManualClock(NOW),
        batch_readings=batch,
        lanes=lanes,
        lag_alarm_s=10,
        on_system=(alarms if alarms is not None else []).extend,
        retry_base_s=0.001,
        retry_max_s=0.005,
    )


async def test_drains_in_order_in_batches_and_confirms(spool: Spool) -> None:
    sink = FakeSink()
    for m in range(10):
        spool.mark_delivered(await spool.append([message(30, m * 30)]))
    w = writer(spool, sink, batch=100)
    while await w.drain_once():
        pass
    assert [r.value for r in sink.stored] == [float(v) for v in range(300)]
    assert sink.calls == 4  # whole messages, up to 100 readings per write
    assert spool.depth_readings == 0
    assert await spool.read_unwritten(10) is None


async def test_unavailable_sink_is_retried_with_backoff_and_nothing_is_lost(
    spool: Spool,
) -> None:
    sink = FakeSink()
    sink.down = True
    metrics = Metrics()
    await spool.append([message(5)])
    w = writer(spool, sink, metrics=metrics)
    draining = asyncio.create_task(w.drain_once())
    await sink.failed.wait()
    for _ in range(5):
        await asyncio.sleep(0.01)  # let it retry a few times (backoff of 1-5 ms)
    assert not draining.done()
    assert spool.depth_readings == 5  # not confirmed while the sink is down
    sink.down = False
    assert await asyncio.wait_for(draining, 5)
    assert [r.value for r in sink.stored] == [0, 1, 2, 3, 4]
    assert 2 <= sink.calls <= 60  # backoff, not a hot loop
    assert metrics.value("hazwatch_sink_retries_total") == sink.calls - 1
    assert spool.depth_readings == 0


def test_backoff_grows_with_jitter_and_is_capped(spool: Spool) -> None:
    w = SinkWriter(
        spool=spool,
        sink=FakeSink(),
        encoder=ENCODER,
        rejects=RejectLog(IngestSettings(), Metrics()),
        metrics=Metrics(),
        clock=ManualClock(NOW),
    )
    delays = {attempt: [w.backoff(attempt) for _ in range(200)] for attempt in (1, 2, 20)}
    assert all(0.05 <= d <= 0.1 for d in delays[1])
    assert all(0.1 <= d <= 0.2 for d in delays[2])
    assert all(2.5 <= d <= 5.0 for d in delays[20])
    assert len(set(delays[20])) > 100  # jittered


@pytest.mark.parametrize("sink_class", [FakeSink, FakeLineSink])
async def test_poison_points_are_bisected_out_and_dead_lettered(
    spool: Spool, sink_class: type[FakeSink]
) -> None:
    sink = sink_class(poison=[13.0, 77.0])
    metrics = Metrics()
    await spool.append([message(100)])
    w = writer(spool, sink, metrics=metrics, batch=1000)
    assert await w.drain_once()
    good = [float(v) for v in range(100) if v not in (13, 77)]
    assert sorted({r.value for r in sink.stored}) == good  # every good point stored
    # Per-series order: the last write of each point is in spool order.
    last_seen: dict[float, int] = {}
    for n, r in enumerate(sink.stored):
        last_seen[r.value] = n
    assert sorted(last_seen, key=last_seen.__getitem__) == good
    assert sink.calls <= 2 * 2 * 7 + 1  # ~2 log2(n) requests per poison point, no loop
    letters = await spool.dead_letters()
    assert sorted(d.reading.value for d in letters if d.reading) == [13.0, 77.0]
    assert "field type conflict" in letters[0].error
    assert metrics.value("hazwatch_sink_dead_lettered_points_total") == 2
    assert metrics.value("hazwatch_ingest_rejected_total", {"reason": "sink_rejected"}) == 2
    assert spool.depth_readings == 0
    assert not await w.drain_once()  # confirmed: never written again


async def test_a_request_that_is_all_poison_is_dead_lettered_at_once(spool: Spool) -> None:
    sink = FakeSink(poison=[float(v) for v in range(50)])
    await spool.append([message(50)])
    w = writer(spool, sink)
    assert await w.drain_once()
    assert sink.calls == 1  # dropped=50 of 50: no bisection needed
    assert len(await spool.dead_letters()) == 50


async def test_a_line_that_cannot_be_read_back_is_kept_on_disk_as_it_is(
    spool: Spool, tmp_path: Path
) -> None:
    """Spooled for a point the registry no longer holds (a restart with an edited
    point table): before, it was listed in the in-memory rejects only, and gone after
    the spool confirmed it."""
    await spool.append([message(2)])
    registry = load_registry(write_registry(tmp_path / "registry", "E001", ["OTHER"]))
    w = writer(spool, FakeSink(), encoder=LineEncoder(registry))
    assert await w.drain_once()
    assert spool.depth_readings == 0  # confirmed: the spool forgot the message...
    letters = await spool.dead_letters()
    assert [(d.reading, d.gateway) for d in letters] == [(None, "gw1"), (None, "gw1")]
    # ...but the dead-letter table on disk has both lines, byte for byte
    assert sorted(d.line.encode() for d in letters) == sorted(message(2).body.split(b"\n"))
    assert "cannot read spooled line protocol back" in letters[0].error


async def test_lag_alarm_raised_when_behind_and_cleared_when_caught_up(spool: Spool) -> None:
    clock = ManualClock(NOW)
    alarms: list[Condition] = []
    sink = FakeSink()
    w = writer(spool, sink, clock=clock, alarms=alarms)
    await w.check_alarms()  # the first check reports the state either way
    assert [(c.tag, c.active) for c in alarms] == [(LAG_TAG, False), ("spool_full", False)]
    alarms.clear()
    await spool.append([message(3)])
    clock.advance(11_000)
    await w.check_alarms()
    [raised] = alarms
    assert (raised.enterprise, raised.installation, raised.tag) == ("_system", "hazwatch", LAG_TAG)
    assert (raised.type, raised.active, raised.limit) == (AlarmType.SYSTEM, True, 10)
    assert raised.value == 11
    await w.check_alarms()
    assert len(alarms) == 1  # reported on change only
    assert await w.drain_once()
    assert [(c.tag, c.active) for c in alarms] == [(LAG_TAG, True), (LAG_TAG, False)]


async def test_line_sinks_get_the_spooled_bytes_in_order_with_reading_ahead(spool: Spool) -> None:
    sink = FakeLineSink()
    assert isinstance(sink, LineSink)
    for m in range(10):
        await spool.append([message(30, m * 30)])
    w = writer(spool, sink, batch=100)
    assert await w.drain()  # every batch, the next one read while one is in flight
    assert not await w.drain()
    assert [r.value for r in sink.stored] == [float(v) for v in range(300)]
    assert sink.bodies[0].startswith(b"reading,enterprise=E001,installation=MH01,kind=level,")
    assert sink.calls == 4
    assert spool.depth_readings == 0


async def test_a_sink_down_while_reading_ahead_loses_nothing(spool: Spool) -> None:
    sink = FakeLineSink()
    for m in range(6):
        await spool.append([message(50, m * 50)])
    w = writer(spool, sink, batch=100)
    sink.down = True
    draining = asyncio.create_task(w.drain())
    await sink.failed.wait()
    draining.cancel()  # the service stops while a batch is in flight and one read ahead
    with pytest.raises(asyncio.CancelledError):
        await draining
    sink.down = False
    assert spool.depth_readings == 300
    assert await writer(spool, sink, batch=100).drain()
    assert [r.value for r in sink.stored] == [float(v) for v in range(300)]


async def test_lanes_write_gateways_side_by_side_each_in_order(spool: Spool) -> None:
    sink = FakeLineSink()
    in_flight = 0
    most = 0
    write = sink.write_lines

    async def overlapping(body: bytes, points: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        await write(body, points)
        in_flight -= 1

    sink.write_lines = overlapping  # type: ignore[method-assign]
    gateways = [f"gw{n}" for n in range(8)]
    for m in range(40):
        gateway = gateways[m % len(gateways)]
        batch = [
            Reading("E001", gateway, "TK101_LT", float(m * 10 + k), NOW + m * 10 + k)
            for k in range(10)
        ]
        await spool.append([spooled(ENCODER, batch)])
    w = writer(spool, sink, batch=100, lanes=2)
    assert await w.drain()
    assert most == 2  # two requests in flight at once
    assert sorted(r.value for r in sink.stored) == [float(v) for v in range(400)]
    # per gateway (so per series fed by it): written in spool order
    by_gateway: dict[int, list[float]] = {}
    for r in sink.stored:
        by_gateway.setdefault(int(r.value) // 10 % len(gateways), []).append(r.value)
    assert all(values == sorted(values) for values in by_gateway.values())
    assert spool.depth_readings == 0
