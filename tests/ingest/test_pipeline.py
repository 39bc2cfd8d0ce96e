"""IngestPipeline: validate, record, store (retrying), update, hand on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import orjson
import pytest

from hazwatch.clock import ManualClock
from hazwatch.errors import SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import GatewayState, GatewayStatus, Reading, Registry
from hazwatch.settings import IngestSettings
from ingest.codec import Decoded
from ingest.gateways import GatewayTracker
from ingest.hzjson import HzJsonCodec
from ingest.latest import LatestValues
from ingest.pipeline import IngestPipeline
from ingest.rejects import RejectLog
from ingest.sink import ReadingSink
from ingest.sqlite import SqliteSink
from ingest.validation import ReadingValidator

NOW = 1_763_820_000_000
CODEC = HzJsonCodec(IngestSettings())


@dataclass
class Harness:
    pipeline: IngestPipeline
    metrics: Metrics
    rejects: RejectLog
    gateways: GatewayTracker
    latest: LatestValues
    validator: ReadingValidator
    downstream: list[list[Reading]] = field(default_factory=list)
    statuses: list[GatewayStatus] = field(default_factory=list)
    stored: list[list[Reading]] = field(default_factory=list)


def build(registry: Registry, sink: ReadingSink) -> Harness:
    metrics = Metrics()
    limits = IngestSettings()
    validator = ReadingValidator(registry, limits, metrics)
    rejects = RejectLog(limits, metrics)
    gateways = GatewayTracker(metrics)
    latest = LatestValues()
    downstream: list[list[Reading]] = []
    statuses: list[GatewayStatus] = []
    stored: list[list[Reading]] = []

    async def to_detectors(readings: list[Reading]) -> None:
        downstream.append(readings)

    async def on_status(status: GatewayStatus) -> None:
        statuses.append(status)

    pipeline = IngestPipeline(
        validator=validator,
        sink=sink,
        rejects=rejects,
        gateways=gateways,
        latest=latest,
        metrics=metrics,
        clock=ManualClock(NOW),
        downstream=to_detectors,
        on_status=on_status,
        on_readings_stored=stored.append,
        retry_base_s=0.001,
        retry_max_s=0.005,
    )
    return Harness(
        pipeline, metrics, rejects, gateways, latest, validator, downstream, statuses, stored
    )


def data(seq: int, *readings: dict[str, object], gateway: str = "gw1") -> Decoded:
    payload = orjson.dumps({"seq": seq, "readings": list(readings)})
    return CODEC.decode(f"hz/v1/E001/{gateway}/data", payload, NOW)


async def test_a_batch_flows_to_storage_latest_and_downstream(
    tmp_path: Path, example_registry: Registry
) -> None:
    async with SqliteSink(tmp_path / "r.db", example_registry, Metrics()) as sink:
        h = build(example_registry, sink)
        batch = [
            data(1, {"tag": "TK101_LT", "v": 3.5, "ts": NOW - 1000}, {"tag": "NEW", "v": 1}),
            data(2, {"tag": "TK101_LT", "v": 3.6, "ts": NOW}, {"tag": "TK101_TT", "v": "x"}),
            CODEC.decode("hz/v1/E001/gw1/status", b"online", NOW),
            CODEC.decode("hz/v1/E001/gw1/data", b"{not json", NOW),
            data(5, {"tag": "GD101", "v": 1, "ts": 0}),
        ]
        await h.pipeline.handle(batch)
        history = await sink.history("E001", "TK101_LT", NOW - 10_000, NOW + 1, 500)
    assert history == [(NOW - 1000, 3.5), (NOW, 3.6)]
    assert [[r.value for r in readings] for readings in h.downstream] == [[3.5, 3.6]]
    assert h.stored == h.downstream
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


async def test_a_batch_without_readings_touches_no_sink(example_registry: Registry) -> None:
    sink = FlakySink(failures=99)
    h = build(example_registry, sink)
    await h.pipeline.handle([CODEC.decode("hz/v1/E001/gw1/status", b"offline", NOW)])
    assert sink.calls == 0
    assert h.downstream == []


class FlakySink:
    """A sink whose storage fails ``failures`` times, or refuses for good.

    The real sinks' error mapping is tested against real servers (test_influx,
    test_sqlite); this one drives the pipeline's retry logic through the seam.
    """

    name = "flaky"

    def __init__(self, failures: int = 0, *, reject: bool = False) -> None:
        self.failures = failures
        self.reject = reject
        self.calls = 0
        self.written: list[Reading] = []
        self.failing = asyncio.Event()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def write(self, readings: Sequence[Reading]) -> None:
        self.calls += 1
        if self.reject:
            raise SinkRejected("HTTP 400: partial write: field type conflict", status=400)
        if self.calls <= self.failures:
            if self.calls == 3:
                self.failing.set()
            raise SinkUnavailable("HTTP 503: busy")
        self.written.extend(readings)

    async def history(
        self, enterprise: str, tag: str, start_ms: int, end_ms: int, step_ms: int
    ) -> list[tuple[int, float]]:
        return []

    async def ping(self) -> bool:
        return True


READING = {"tag": "TK101_LT", "v": 1.5, "ts": NOW}


async def test_unavailable_storage_is_retried_until_it_takes_the_batch(
    example_registry: Registry,
) -> None:
    sink = FlakySink(failures=4)
    h = build(example_registry, sink)
    await h.pipeline.handle([data(1, READING)])
    assert sink.calls == 5
    assert [r.value for r in sink.written] == [1.5]
    assert h.metrics.value("hazwatch_sink_retries_total") == 4
    assert len(h.downstream) == 1


async def test_handle_waits_while_storage_is_down(example_registry: Registry) -> None:
    sink = FlakySink(failures=10**9)
    h = build(example_registry, sink)
    handling = asyncio.create_task(h.pipeline.handle([data(1, READING)]))
    await sink.failing.wait()  # the third attempt failed
    assert not handling.done()  # the acks wait: backpressure
    assert h.downstream == []
    sink.failures = 0  # storage is back
    await asyncio.wait_for(handling, 5)
    assert [r.value for r in sink.written] == [1.5]
    assert h.downstream != []


def test_backoff_grows_with_jitter_and_is_capped(example_registry: Registry) -> None:
    pipeline = IngestPipeline(
        validator=ReadingValidator(example_registry, IngestSettings(), Metrics()),
        sink=FlakySink(),
        rejects=RejectLog(IngestSettings(), Metrics()),
        gateways=GatewayTracker(Metrics()),
        latest=LatestValues(),
        metrics=Metrics(),
        clock=ManualClock(NOW),
        downstream=lambda readings: asyncio.sleep(0),
    )
    delays = {attempt: [pipeline._backoff(attempt) for _ in range(200)] for attempt in (1, 2, 20)}
    assert all(0.05 <= d <= 0.1 for d in delays[1])
    assert all(0.1 <= d <= 0.2 for d in delays[2])
    assert all(2.5 <= d <= 5.0 for d in delays[20])
    assert len(set(delays[20])) > 100  # jittered


async def test_rejected_readings_are_recorded_and_the_batch_goes_on(
    example_registry: Registry,
) -> None:
    sink = FlakySink(reject=True)
    h = build(example_registry, sink)
    await h.pipeline.handle(
        [data(1, READING), data(2, {"tag": "TK101_TT", "v": 20, "ts": NOW}, gateway="gw2")]
    )
    assert sink.calls == 1  # never blindly retried
    recent = h.rejects.recent()
    assert [(r.reason, r.topic) for r in recent] == [
        ("sink_rejected", "hz/v1/E001/gw2/data"),
        ("sink_rejected", "hz/v1/E001/gw1/data"),
    ]
    assert "field type conflict" in recent[0].detail
    assert '"tag": "TK101_TT"' in recent[0].payload_head
    assert h.metrics.value("hazwatch_sink_rejected_points_total", {"backend": "flaky"}) == 2
    assert h.metrics.value("hazwatch_ingest_rejected_total", {"reason": "sink_rejected"}) == 2
    # the values are not at fault: detectors and the console still see them
    assert [r.tag for r in h.downstream[0]] == ["TK101_LT", "TK101_TT"]
    assert h.latest.get("E001", "TK101_TT") is not None
    assert h.stored == []  # but they were not stored


@pytest.mark.parametrize("error", [RuntimeError("bug"), asyncio.CancelledError()])
async def test_other_errors_propagate(example_registry: Registry, error: BaseException) -> None:
    class Broken(FlakySink):
        async def write(self, readings: Sequence[Reading]) -> None:
            raise error

    h = build(example_registry, Broken())
    with pytest.raises(type(error)):
        await h.pipeline.handle([data(1, READING)])
    assert h.downstream == []
