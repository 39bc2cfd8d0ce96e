"""IngestPipeline: validate, record, spool, update, hand on — and replay after a crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmType, Condition, GatewayState, GatewayStatus, Reading, Registry
from hazwatch.settings import IngestSettings
from ingest.codec import Decoded
from ingest.gateways import GatewayTracker
from ingest.hzjson import HzJsonCodec
from ingest.latest import LatestValues
from ingest.lineprotocol import LineEncoder
from ingest.pipeline import IngestPipeline
from ingest.rejects import RejectLog
from ingest.spool import Spool
from ingest.validation import ReadingValidator
from tests.helpers import spooled

NOW = 1_763_820_000_000
CODEC = HzJsonCodec(IngestSettings())
MB = 2**20


@dataclass
class Harness:
    pipeline: IngestPipeline
    spool: Spool
    metrics: Metrics
    rejects: RejectLog
    gateways: GatewayTracker
    latest: LatestValues
    validator: ReadingValidator
    downstream: list[list[Reading]] = field(default_factory=list)
    statuses: list[GatewayStatus] = field(default_factory=list)
    system: list[Condition] = field(default_factory=list)


def build(
    registry: Registry,
    spool: Spool,
    metrics: Metrics | None = None,
    recorded: Callable[[], asyncio.Future[None]] | None = None,
) -> Harness:
    metrics = metrics or Metrics()
    limits = IngestSettings()
    validator = ReadingValidator(registry, limits, metrics)
    rejects = RejectLog(limits, metrics)
    gateways = GatewayTracker(metrics)
    latest = LatestValues()
    downstream: list[list[Reading]] = []
    statuses: list[GatewayStatus] = []
    system: list[Condition] = []

    async def to_detectors(readings: list[Reading]) -> None:
        downstream.append(readings)

    async def on_status(status: GatewayStatus) -> None:
        statuses.append(status)

    pipeline = IngestPipeline(
        validator=validator,
        encoder=LineEncoder(registry),
        spool=spool,
        rejects=rejects,
        gateways=gateways,
        latest=latest,
        metrics=metrics,
        clock=ManualClock(NOW),
        downstream=to_detectors,
        on_status=on_status,
        on_system=system.extend,
        recorded=recorded,
    )
    return Harness(
        pipeline, spool, metrics, rejects, gateways, latest, validator, downstream, statuses, system
    )


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    async with Spool(tmp_path / "spool.db", 64 * MB, Metrics()) as opened:
        yield opened


def data(seq: int, *readings: dict[str, object], gateway: str = "gw1") -> Decoded:
    payload = orjson.dumps({"seq": seq, "readings": list(readings)})
    return CODEC.decode(f"hz/v1/E001/{gateway}/data", payload, NOW)


async def test_a_batch_flows_to_the_spool_latest_and_downstream(
    tmp_path: Path, example_registry: Registry
) -> None:
    metrics = Metrics()
    async with Spool(tmp_path / "spool.db", 64 * MB, metrics) as spool:
        h = build(example_registry, spool, metrics)
        batch = [
            data(1, {"tag": "TK101_LT", "v": 3.5, "ts": NOW - 1000}, {"tag": "NEW", "v": 1}),
            data(2, {"tag": "TK101_LT", "v": 3.6, "ts": NOW}, {"tag": "TK101_TT", "v": "x"}),
            CODEC.decode("hz/v1/E001/gw1/status", b"online", NOW),
            CODEC.decode("hz/v1/E001/gw1/data", b"{not json", NOW),
            data(5, {"tag": "GD101", "v": 1, "ts": 0}),
        ]
        await h.pipeline.handle(batch)
        held = await spool.read_unwritten(1000)
    assert held is not None
    key = "reading,enterprise=E001,installation=MH01,kind=level,tag=TK101_LT"
    # one spool row per message, not per reading, holding its line protocol
    assert [m.body.decode() for m in held.messages] == [
        f'{key} value=3.5,quality="good" {NOW - 1000}',
        f'{key} value=3.6,quality="good" {NOW}',
    ]
    assert [(m.gateway, m.readings, m.stamped_ms) for m in held.messages] == [("gw1", 1, None)] * 2
    assert [[r.value for r in readings] for readings in h.downstream] == [[3.5, 3.6]]
    assert spool.delivered == held.last_id
    latest = h.latest.get("E001", "TK101_LT")
    assert latest is not None
    assert latest.value == 3.6
    assert [r.reason for r in h.rejects.recent()] == ["ts_out_of_window", "json", "bad_value"]
    assert [u.tag for u in h.validator.unknown_tags()] == ["NEW"]
    assert [(s.gateway, s.state) for s in h.statuses] == [("gw1", GatewayState.ONLINE)]
    (gw,) = h.gateways.gateways()
    assert (gw.messages, gw.state, gw.last_seq, gw.seq_gaps) == (5, "online", 5, 0)
    assert h.metrics.value("hazwatch_ingest_messages_total", {"codec": "hz-json"}) == 5
    assert h.metrics.value("hazwatch_ingest_readings_total") == 2
    assert h.metrics.value("hazwatch_spool_messages_total") == 2
    assert h.metrics.value("hazwatch_spool_readings_total") == 2
    assert h.metrics.value("hazwatch_spool_depth_readings") == 2


async def test_each_batch_times_its_stages(spool: Spool, example_registry: Registry) -> None:
    h = build(example_registry, spool)
    reading = {"tag": "TK101_LT", "v": 3.5, "ts": NOW - 1000}
    payload = orjson.dumps({"seq": 1, "readings": [reading]})
    waited = CODEC.decode("hz/v1/E001/gw1/data", payload, NOW - 25)  # received 25 ms ago
    await h.pipeline.handle([waited, data(2, {**reading, "ts": NOW})])
    await h.pipeline.handle([CODEC.decode("hz/v1/E001/gw1/status", b"online", NOW)])

    def stage(name: str, what: str) -> float:
        return h.metrics.value(f"hazwatch_ingest_stage_seconds_{what}", {"stage": name})

    assert (stage("queued", "count"), stage("queued", "sum")) == (2, 0.025)  # the oldest
    # only a batch with readings commits and goes downstream
    assert (stage("spool_commit", "count"), stage("downstream", "count")) == (1, 1)
    assert stage("spool_commit", "sum") > 0


async def test_a_batch_without_readings_spools_nothing(
    spool: Spool, example_registry: Registry
) -> None:
    h = build(example_registry, spool)
    await h.pipeline.handle([CODEC.decode("hz/v1/E001/gw1/status", b"offline", NOW)])
    assert await spool.read_unwritten(100) is None
    assert h.downstream == []


READING = {"tag": "TK101_LT", "v": 1.5, "ts": NOW}


async def crash(spool: Spool) -> None:
    """Close the spool the way a SIGKILL does: nothing flushed."""
    await spool._run(spool._close)


async def test_after_a_crash_undelivered_readings_are_replayed_once(
    tmp_path: Path, example_registry: Registry
) -> None:
    path = tmp_path / "spool.db"
    spool = await Spool(path, 64 * MB, Metrics()).__aenter__()
    first = build(example_registry, spool)
    await first.pipeline.handle([data(1, READING)])  # delivered; cursor in memory
    await first.pipeline.handle([data(2, {**READING, "v": 2.5})])  # commits the cursor of 1
    # The process dies after spooling a third message, before the detectors got it.
    (reading,) = first.downstream[0]
    await spool.append([spooled(LineEncoder(example_registry), [reading])])
    await crash(spool)
    assert [[r.value for r in rs] for rs in first.downstream] == [[1.5], [2.5]]

    reopened = await Spool(path, 64 * MB, Metrics()).__aenter__()
    second = build(example_registry, reopened)
    assert await second.pipeline.replay() == 1
    # Only the undelivered third message: the append committed the cursor of 2.
    assert [[r.value for r in rs] for rs in second.downstream] == [[1.5]]
    assert second.latest.get("E001", "TK101_LT") is not None
    await second.pipeline.handle([data(4, {**READING, "v": 4.5})])
    await crash(reopened)  # the detectors saw 4.5, its cursor was not committed yet

    async with Spool(path, 64 * MB, Metrics()) as again:
        third = build(example_registry, again)
        assert await third.pipeline.replay() == 1
        assert [[r.value for r in rs] for rs in third.downstream] == [
            [4.5]
        ]  # at most the last batch twice
    async with Spool(path, 64 * MB, Metrics()) as last:
        fourth = build(example_registry, last)
        assert await fourth.pipeline.replay() == 0  # a clean stop committed the cursor


async def test_the_cursor_waits_until_what_the_readings_caused_is_recorded(
    tmp_path: Path, example_registry: Registry
) -> None:
    """The alarm journal commits in its own thread: ``handle`` (and the acks) does not
    wait for it, but the delivered cursor does — a crash before the commit replays."""
    path = tmp_path / "spool.db"
    commits: list[asyncio.Future[None]] = []

    def recorded() -> asyncio.Future[None]:
        commits.append(asyncio.get_running_loop().create_future())
        return commits[-1]

    spool = await Spool(path, 64 * MB, Metrics()).__aenter__()
    h = build(example_registry, spool, recorded=recorded)
    await h.pipeline.handle([data(1, READING)])
    await h.pipeline.handle([data(2, {**READING, "v": 2.5})])
    assert spool.delivered == 0  # handed on, not recorded yet
    commits[0].set_result(None)
    await asyncio.sleep(0)  # one turn of the loop: the future's callbacks (not a wait)
    assert spool.delivered == 1
    await h.pipeline.handle([data(3, {**READING, "v": 3.5})])  # commits the cursor of 1
    await crash(spool)  # 2 and 3 handed on, never recorded

    async with Spool(path, 64 * MB, Metrics()) as again:
        replayed = build(example_registry, again)  # no journal: recorded once handed on
        assert await replayed.pipeline.replay() == 2
        assert [[r.value for r in rs] for rs in replayed.downstream] == [[2.5, 3.5]]


async def test_a_failing_downstream_does_not_fail_the_batch(
    spool: Spool, example_registry: Registry
) -> None:
    h = build(example_registry, spool)

    working = h.pipeline._downstream

    async def broken(readings: list[Reading]) -> None:
        raise RuntimeError("detector bug")

    h.pipeline._downstream = broken
    await h.pipeline.handle([data(1, READING)])  # returns: the acks go out
    batch = await spool.read_unwritten(10)
    assert batch is not None
    assert spool.delivered == batch.last_id
    assert h.metrics.value("hazwatch_detector_failed_readings_total") == 1  # not silent
    [raised] = h.system
    assert (raised.tag, raised.type, raised.active) == ("detectors_failed", AlarmType.SYSTEM, True)
    h.pipeline._downstream = working
    await h.pipeline.handle([data(2, READING)])
    assert [(c.tag, c.active) for c in h.system[1:]] == [("detectors_failed", False)]
