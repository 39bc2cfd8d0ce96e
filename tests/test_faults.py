"""Fault tests of the ingest: kill things mid-stream, count what arrives.

Real Mosquitto, real influxd, and — where a process must die — the real
``hazwatch run --config`` as a subprocess. Every test prints its figures
(``pytest -s`` shows them). The issue's sizes are scaled down so the file runs in
a few minutes on two cores: influxd is down for 8 s instead of 60, hazwatch is
killed 4 times instead of 10, streams are tens of thousands of readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.app import Hazwatch
from hazwatch.clock import SystemClock
from hazwatch.metrics import Metrics
from hazwatch.models import (
    Enterprise,
    Installation,
    Point,
    PointKind,
    Quality,
    Reading,
    Registry,
)
from hazwatch.settings import InfluxSettings, IngestSettings
from ingest.influx import InfluxSink
from ingest.lineprotocol import LineEncoder, influxql_identifier, influxql_string
from ingest.rejects import RejectLog
from ingest.spool import Spool
from ingest.writer import SinkWriter
from tests.conftest import RunService
from tests.helpers import console_login, eventually, spooled, write_registry
from tests.servers import Influxd, Mosquitto, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HAZWATCH = [sys.executable, "-m", "hazwatch.cli"]
ENTERPRISE = "T001"
TAGS = [f"P{n:02d}" for n in range(10)]
"""Every message carries one reading of each of these: 10 readings per message."""


# --- a gateway that keeps publishing whatever happens to the broker ---------------------


class Stream(threading.Thread):
    """Publishes ``messages`` hz-json messages (QoS 1) at about ``rate`` per second.

    Message ``seq`` carries one reading per tag at ``base_ms + seq`` (so every point
    is distinct), value ``seq + k/100``. A publish that the broker did not
    acknowledge (broker restarting) is sent again, with the same seq, until it is:
    the gateway never gives up on a message.
    """

    def __init__(
        self, port: int, gateway: str, messages: int, rate: float, base_ms: int, first_seq: int = 1
    ) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.gateway = gateway
        self.messages = messages
        self.rate = rate
        self.base_ms = base_ms
        self.first_seq = first_seq
        self.published = 0
        self.republished = 0
        self.error: BaseException | None = None
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"fault-{gateway}", clean_session=True
        )
        self._client.reconnect_delay_set(1, 2)

    def payload(self, seq: int) -> bytes:
        readings = [
            {"tag": t, "v": seq + k / 100, "ts": self.base_ms + seq} for k, t in enumerate(TAGS)
        ]
        return orjson.dumps({"seq": seq, "readings": readings})

    @property
    def topic(self) -> str:
        return f"hz/v1/{ENTERPRISE}/{self.gateway}/data"

    def run(self) -> None:
        try:
            self._client.connect("127.0.0.1", self.port)
            self._client.loop_start()
            started = time.monotonic()
            for n in range(self.messages):
                seq = self.first_seq + n
                self._publish(seq)
                self.published += 1
                ahead = started + (n + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pacing a publisher, not synchronising
        except BaseException as exc:  # reported by join_ok()
            self.error = exc
        finally:
            self._client.loop_stop()
            self._client.disconnect()

    def _publish(self, seq: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self._client.publish(self.topic, self.payload(seq), qos=1)
            published = False
            with contextlib.suppress(RuntimeError, ValueError):  # not connected (yet)
                info.wait_for_publish(1.0)
                published = info.is_published()
            if published:
                return
            self.republished += 1
            time.sleep(0.05)
        raise TimeoutError(f"seq {seq} not acknowledged by the broker within 60 s")

    def join_ok(self, timeout: float = 120) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the publisher did not finish"
        if self.error is not None:
            raise self.error


def expected_sum(first_seq: int, messages: int) -> float:
    seqs = range(first_seq, first_seq + messages)
    return sum(seq + k / 100 for seq in seqs for k in range(len(TAGS)))


def stored(influxd: Influxd, db: str) -> tuple[int, float]:
    """(points, sum of values) in influxd."""
    result = influxd.query("SELECT count(value), sum(value) FROM reading", db)
    series = result["results"][0].get("series")  # type: ignore[index]
    if not series:
        return (0, 0.0)
    _, count, total = series[0]["values"][0]
    return (int(count or 0), float(total or 0))  # null while a shard is being created


def assert_all_stored_once(influxd: Influxd, db: str, first_seq: int, messages: int) -> None:
    count, total = stored(influxd, db)
    assert count == messages * len(TAGS), f"{messages * len(TAGS) - count} points missing"
    assert total == pytest.approx(expected_sum(first_seq, messages), rel=1e-9)
    per_tag = influxd.query('SELECT count(value) FROM reading GROUP BY "tag"', db)
    counts = {
        s["tags"]["tag"]: s["values"][0][1]
        for s in per_tag["results"][0]["series"]  # type: ignore[index]
    }
    assert counts == dict.fromkeys(TAGS, messages)


async def wait_stored(influxd: Influxd, db: str, points: int, timeout: float = 90) -> None:
    await eventually(
        lambda: stored(influxd, db)[0] >= points, timeout, f"{points} points in influxd"
    )


# --- hazwatch as a subprocess --------------------------------------------------------------


class Service:
    """``hazwatch run --config FILE`` as an operator runs it."""

    def __init__(self, workdir: Path, mqtt_url: str, influx_url: str, db: str, **ingest: Any):
        self.console_port = free_port()
        self.config = workdir / "hazwatch.toml"
        write_registry(workdir / "registry", ENTERPRISE, TAGS)
        extra = "".join(f"{k} = {v!r}\n" for k, v in ingest.items())
        self.config.write_text(
            'registry = "registry"\n'
            f'[mqtt]\nurl = "{mqtt_url}"\nclient_id = "hazwatch-faults"\n'
            '[storage]\nbackend = "influxdb"\n'
            f'[storage.influxdb]\nurl = "{influx_url}"\ndatabase = "{db}"\ntimeout_s = 2\n'
            f'[console]\nlisten = "127.0.0.1:{self.console_port}"\n'
            f"[ingest]\n{extra}"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "hazwatch.log"
        self.peak_rss_kib = 0
        self.session: dict[str, str] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*HAZWATCH, "run", "--config", str(self.config)], stdout=out, stderr=out
            )

    def api(self, path: str) -> httpx.Response:
        base = f"http://127.0.0.1:{self.console_port}"
        if path.startswith("/api/") and self.session is None:
            self.session = console_login(base, self.config.parent / "var" / "console.db")
        return httpx.get(f"{base}{path}", headers=self.session, timeout=5)

    async def wait_subscribed(self, timeout: float = 30) -> None:
        def subscribed() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                health = self.api("/healthz").json()
            except httpx.HTTPError:
                return False
            return bool(health.get("components", {}).get("mqtt") == "ok")

        await eventually(subscribed, timeout, "hazwatch subscribed")

    def sample_rss(self) -> int:
        """Peak resident memory so far (KiB, the kernel's VmHWM)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
        return self.peak_rss_kib

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.sample_rss()
        self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self.proc = None
        return code


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    services: list[Service] = []

    def make(mqtt_url: str, influx_url: str, db: str, **ingest: Any) -> Service:
        workdir = tmp_path / f"hazwatch{len(services)}"
        workdir.mkdir()
        service = Service(workdir, mqtt_url, influx_url, db, **ingest)
        services.append(service)
        return service

    yield make
    for service in services:
        if service.proc is not None:
            service.stop(signal.SIGKILL)


@pytest.fixture
def broker(mosquitto: Mosquitto) -> Mosquitto:
    return mosquitto


def now_ms() -> int:
    return int(time.time() * 1000)


# --- hazwatch killed -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sig", "restarts"),
    [(signal.SIGKILL, 4), (signal.SIGTERM, 2)],
    ids=["sigkill", "sigterm-real-config"],
)
async def test_hazwatch_killed_mid_stream_loses_and_doubles_nothing(
    sig: signal.Signals,
    restarts: int,
    broker: Mosquitto,
    influxd_server: Influxd,
    influx_db: str,
    service_factory: Callable[..., Service],
) -> None:
    """SIGKILL: ack after spool. SIGTERM with the same config: the persistent session."""
    messages = 3000
    service = service_factory(broker.url, influxd_server.url, influx_db)
    service.start()
    await service.wait_subscribed()
    stream = Stream(broker.port, "gw1", messages, rate=400, base_ms=now_ms() - 600_000)
    stream.start()
    rng = random.Random()
    for _ in range(restarts):
        await asyncio.sleep(rng.uniform(0.3, 1.2))
        service.stop(sig)
        service.start()
        await service.wait_subscribed()
    await asyncio.to_thread(stream.join_ok)
    started = time.monotonic()
    await wait_stored(influxd_server, influx_db, messages * len(TAGS))
    print(
        f"\nhazwatch {sig.name} x{restarts} during {messages} messages "
        f"({messages * len(TAGS)} readings): stored {stored(influxd_server, influx_db)[0]}, "
        f"drained {time.monotonic() - started:.1f} s after the last publish"
    )
    assert_all_stored_once(influxd_server, influx_db, 1, messages)
    assert service.stop() == 0


# --- influxd killed, hung -------------------------------------------------------------------


async def test_influxd_killed_for_a_while_loses_nothing_and_alarms_lag(
    tmp_path: Path, broker: Mosquitto, service_factory: Callable[..., Service]
) -> None:
    influxd = Influxd(tmp_path / "influxd")
    influxd.start()
    try:
        service = service_factory(broker.url, influxd.url, "faults", lag_alarm_s=2.0)
        service.start()
        await service.wait_subscribed()
        messages, rate = 4000, 400  # 4,000 readings/s for 10 s
        stream = Stream(broker.port, "gw1", messages, rate=rate, base_ms=now_ms() - 600_000)
        stream.start()
        await asyncio.sleep(1)
        influxd.stop(signal.SIGKILL)
        down_s = 8.0
        deadline = time.monotonic() + down_s
        spooled_peak = 0.0
        while time.monotonic() < deadline:
            service.sample_rss()
            metrics = service.api("/metrics").text
            spooled_peak = max(spooled_peak, _metric(metrics, "hazwatch_spool_depth_readings"))
            await asyncio.sleep(0.5)
        influxd.start()
        await asyncio.to_thread(stream.join_ok)
        await wait_stored(influxd, "faults", messages * len(TAGS))
        assert_all_stored_once(influxd, "faults", 1, messages)

        def lag_alarm() -> list[dict[str, Any]]:
            alarms = service.api("/api/alarms").json()
            return [a for a in alarms if a["type"] == "SYSTEM" and a["tag"] == "historian_lag"]

        await eventually(
            lambda: [a["state"] for a in lag_alarm()] == ["cleared_unack"],
            20,
            "lag alarm raised and cleared",
        )
        [alarm] = lag_alarm()
        assert alarm["enterprise"] == "_system"
        assert alarm["priority"] == "high"
        metrics = service.api("/metrics").text
        assert _metric(metrics, "hazwatch_spool_depth_readings") == 0
        assert _metric(metrics, "hazwatch_sink_retries_total") > 0
        peak = service.sample_rss()
        print(
            f"\ninfluxd SIGKILL for {down_s:.0f} s at {rate * len(TAGS)} readings/s: "
            f"{messages * len(TAGS)} of {messages * len(TAGS)} stored, "
            f"spool peak {spooled_peak} readings, hazwatch peak RSS {peak / 1024:.0f} MiB, "
            f"retries {_metric(metrics, 'hazwatch_sink_retries_total'):.0f}"
        )
        assert spooled_peak > 0
        assert service.stop() == 0
    finally:
        influxd.stop()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- poison points --------------------------------------------------------------------------


async def test_type_conflict_and_out_of_retention_points_are_dead_lettered(
    tmp_path: Path, influxd_server: Influxd, influx_db: str, example_registry: Registry
) -> None:
    """A 400 partial write: the good points stay stored, the two poison ones are
    dead-lettered, nothing is retried in a loop. (NaN never gets this far: the
    codec rejects it at the edge, tests/ingest/test_hzjson.py.)"""
    hour = 3_600_000
    now = now_ms()
    influxd_server.query(f'CREATE DATABASE "{influx_db}" WITH DURATION 2h')
    # An integer `value` in the previous hour's shard: a float there is a type conflict.
    conflict_ts = (now // hour - 1) * hour + 30_000
    key = "reading,enterprise=E001,installation=MH01,kind=level,tag=TK101_LT"
    write = httpx.post(
        f"{influxd_server.url}/write",
        params={"db": influx_db, "precision": "ms"},
        content=f"{key} value=7i {conflict_ts}",
    )
    assert write.status_code == 204, write.text
    good = [Reading("E001", "gw1", "TK101_LT", 1.0 + n, now - 60_000 + n) for n in range(100)]
    conflict = Reading("E001", "gw1", "TK101_LT", 3.5, conflict_ts + 1)
    too_old = Reading("E001", "gw1", "TK101_LT", 4.5, now - 3 * hour)
    batch = [*good[:40], conflict, *good[40:70], too_old, *good[70:]]

    metrics = Metrics()
    async with (
        Spool(tmp_path / "spool.db", 2**20, metrics) as spool,
        InfluxSink(
            InfluxSettings(url=influxd_server.url, database=influx_db), example_registry, metrics
        ) as sink,
    ):
        encoder = LineEncoder(example_registry)
        await spool.append([spooled(encoder, batch, now)])
        rejects = RejectLog(IngestSettings(), metrics)
        writer = SinkWriter(
            spool=spool,
            sink=sink,
            encoder=encoder,
            rejects=rejects,
            metrics=metrics,
            clock=SystemClock(),
        )
        assert await writer.drain_once()
        assert not await writer.drain_once()  # confirmed, not retried
        letters = await spool.dead_letters()
    requests = metrics.value("hazwatch_sink_write_seconds_count", {"backend": "influxdb"})
    print(
        f"\n102 points with a type conflict and one beyond retention: "
        f"{influxd_server.count(influx_db, 'WHERE time > now() - 1h')} stored, "
        f"{len(letters)} dead-lettered, {requests:.0f} write requests"
    )
    assert influxd_server.count(influx_db, "WHERE time > now() - 1h") == 100
    assert sorted(d.reading.value for d in letters if d.reading) == [3.5, 4.5]
    assert any("conflict" in d.error for d in letters)
    assert any("retention" in d.error for d in letters)
    assert requests <= 2 * 2 * 7 + 1  # bisection: ~2 log2(n) requests per poison point
    assert metrics.value("hazwatch_sink_retries_total") == 0
    assert [r.reason for r in rejects.recent()] == ["sink_rejected", "sink_rejected"]


# --- hazwatch in process: broker restarts, influxd hung, replays ---------------------------

StartService = Callable[..., Awaitable[Hazwatch]]


@pytest.fixture
def start_service(tmp_path: Path, run_service: RunService) -> StartService:
    async def start(influx_url: str, db: str, **overrides: Any) -> Hazwatch:
        registry = tmp_path / "registry"
        if not registry.exists():
            write_registry(registry, ENTERPRISE, TAGS)
        return await run_service(
            {
                "registry": str(registry),
                "mqtt.client_id": "hazwatch-faults",
                "storage.backend": "influxdb",
                "storage.influxdb.url": influx_url,
                "storage.influxdb.database": db,
                **overrides,
            }
        )

    return start


def gateway_counts(service: Hazwatch, gateway: str = "gw1") -> tuple[int, int]:
    """(seq gaps, seq repeats) the service counted for one gateway."""
    [info] = [g for g in service.gateways.gateways(ENTERPRISE) if g.gateway == gateway]
    return (info.seq_gaps, info.seq_repeats)


def spooled_messages(service: Hazwatch) -> float:
    return service.metrics.value("hazwatch_spool_messages_total")


def spooled_at_least(service: Hazwatch, messages: int) -> Callable[[], bool]:
    return lambda: spooled_messages(service) >= messages


async def test_broker_sigterm_restart_mid_stream_loses_nothing(
    broker: Mosquitto,
    influxd_server: Influxd,
    influx_db: str,
    start_service: StartService,
) -> None:
    service = await start_service(influxd_server.url, influx_db)
    messages = 2000
    stream = Stream(broker.port, "gw1", messages, rate=500, base_ms=now_ms() - 600_000)
    stream.start()
    await eventually(lambda: stream.published > 500, 20, "500 messages published")
    broker.stop(signal.SIGTERM)  # persistence is written at shutdown
    broker.start()
    await asyncio.to_thread(stream.join_ok)
    await wait_stored(influxd_server, influx_db, messages * len(TAGS))
    gaps, repeats = gateway_counts(service)
    print(
        f"\nbroker SIGTERM restart during {messages} messages: "
        f"{stored(influxd_server, influx_db)[0]} of {messages * len(TAGS)} readings stored, "
        f"gaps {gaps}, repeats {repeats}, republished by the gateway {stream.republished}"
    )
    assert_all_stored_once(influxd_server, influx_db, 1, messages)
    assert gaps == 0


async def test_broker_sigkill_every_loss_shows_in_the_seq_gap_counter(
    broker: Mosquitto,
    influxd_server: Influxd,
    influx_db: str,
    start_service: StartService,
) -> None:
    """Mosquitto keeps in memory what it did not autosave: a SIGKILL loses messages it
    had acknowledged to the gateway (docs/architecture.md#measured-facts-mqtt, 5). None may go
    unnoticed."""
    service = await start_service(influxd_server.url, influx_db)
    # Slow the consumer down so that the broker holds a queue when it dies.
    messages = 3000
    stream = Stream(broker.port, "gw1", messages, rate=1500, base_ms=now_ms() - 600_000)
    stream.start()
    await eventually(lambda: stream.published > 1500, 20, "1500 messages published")
    broker.stop(signal.SIGKILL)
    broker.start()
    await asyncio.to_thread(stream.join_ok)
    await eventually(
        lambda: service.gateways.gateways(ENTERPRISE)[0].last_seq == messages,
        60,
        "the last message arrived",
    )
    await eventually(lambda: service.spool.depth_readings == 0, 60, "spool drained")
    result = influxd_server.query(
        "SELECT count(value) FROM reading WHERE \"tag\" = 'P00'", influx_db
    )
    series = result["results"][0].get("series")  # type: ignore[index]
    arrived = int(series[0]["values"][0][1]) if series else 0
    missing = messages - arrived
    gaps, repeats = gateway_counts(service)
    print(
        f"\nbroker SIGKILL during {messages} messages: {missing} messages lost in the broker, "
        f"seq gaps counted {gaps}, repeats {repeats}"
    )
    assert gaps == missing  # every lost message is counted, and nothing else is


def influxd_connections(port: int) -> int:
    """Established TCP connections to ``port`` on loopback (server side), from /proc."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "01" and int(local.split(":")[1], 16) == port:
            count += 1
    return count


async def test_influxd_hung_times_out_while_mqtt_acks_go_on(
    tmp_path: Path, broker: Mosquitto, start_service: StartService
) -> None:
    """SIGSTOP: connections stay open and nothing answers. The writer times out and
    retries one request at a time; the spool takes everything meanwhile."""
    influxd = Influxd(tmp_path / "influxd")
    influxd.start()
    try:
        service = await start_service(influxd.url, "hung", **{"storage.influxdb.timeout_s": 1.0})
        influxd.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        messages = 1500
        stream = Stream(broker.port, "gw1", messages, rate=500, base_ms=now_ms() - 600_000)
        stream.start()
        most_connections = 0

        def all_spooled() -> bool:
            nonlocal most_connections
            most_connections = max(most_connections, influxd_connections(influxd.port))
            return spooled_messages(service) >= messages

        await eventually(all_spooled, 30, "every message acknowledged while influxd hangs")
        await asyncio.to_thread(stream.join_ok)
        retries = service.metrics.value("hazwatch_sink_retries_total")
        depth = service.spool.depth_readings
        influxd.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        await wait_stored(influxd, "hung", messages * len(TAGS))
        print(
            f"\ninfluxd SIGSTOP: {messages} messages acknowledged while it hung "
            f"(spool {depth} readings), {retries:.0f} timed-out writes retried, "
            f"at most {most_connections} connections to influxd; all stored after SIGCONT"
        )
        assert retries >= 1
        assert depth > 0
        assert most_connections <= 3  # one writer, the health check's ping, one spare
        assert_all_stored_once(influxd, "hung", 1, messages)
    finally:
        if influxd.proc is not None:
            influxd.proc.send_signal(signal.SIGCONT)
        influxd.stop()


async def test_1000_messages_replayed_3_times_change_nothing_stored(
    broker: Mosquitto, influxd_server: Influxd, influx_db: str, start_service: StartService
) -> None:
    service = await start_service(influxd_server.url, influx_db)
    messages, base_ms = 1000, now_ms() - 600_000
    snapshots = []
    for replay in range(1, 4):
        stream = Stream(broker.port, "gw1", messages, rate=5000, base_ms=base_ms)
        stream.start()
        await asyncio.to_thread(stream.join_ok)
        await eventually(spooled_at_least(service, replay * messages), 30, "all spooled")
        await eventually(lambda: service.spool.depth_readings == 0, 30, "all written")
        snapshots.append(stored(influxd_server, influx_db))
    _, repeats = gateway_counts(service)
    print(f"\n1000 messages sent 3 times: stored {snapshots}, seq repeats counted {repeats}")
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert_all_stored_once(influxd_server, influx_db, 1, messages)
    assert repeats == 2 * messages


# --- property: any valid id and value is exactly one point with its own tags ---------------

_ID = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
_TAG = st.from_regex(r"[A-Za-z0-9_.:-]{1,128}", fullmatch=True)
_ROUND_TRIP_DB = "faults_roundtrip"
_written: set[tuple[str, str, str, int]] = set()


@settings(max_examples=60, deadline=None)
@given(
    enterprise=_ID,
    installation=_ID,
    tag=_TAG,
    value=st.floats(allow_nan=False, allow_infinity=False),
    quality=st.sampled_from(Quality),
    ts_ms=st.integers(now_ms() - 86_400_000, now_ms()),
)
def test_any_valid_reading_is_one_point_with_its_own_tags(
    influxd_server: Influxd,
    enterprise: str,
    installation: str,
    tag: str,
    value: float,
    quality: Quality,
    ts_ms: int,
) -> None:
    point = Point(
        enterprise=enterprise, installation=installation, tag=tag, name="p", kind=PointKind.OTHER
    )
    registry = Registry(
        enterprises={
            enterprise: Enterprise(
                id=enterprise,
                name="e",
                grid="G1",
                installations=(Installation(id=installation, name="i", grade=1, points=(point,)),),
            )
        }
    )

    async def write() -> None:
        settings_ = InfluxSettings(url=influxd_server.url, database=_ROUND_TRIP_DB)
        async with InfluxSink(settings_, registry, Metrics()) as sink:
            await sink.write([Reading(enterprise, "gw", tag, value, ts_ms, quality)])

    asyncio.run(write())
    _written.add((enterprise, installation, tag, ts_ms))
    result = influxd_server.query(
        f"SELECT * FROM reading WHERE {influxql_identifier('enterprise')} = "
        f"{influxql_string(enterprise)} AND {influxql_identifier('tag')} = {influxql_string(tag)} "
        f"AND {influxql_identifier('installation')} = {influxql_string(installation)} "
        f"AND time = {ts_ms}ms",
        _ROUND_TRIP_DB,
    )
    [series] = result["results"][0]["series"]  # type: ignore[index]
    [row] = series["values"]
    got = dict(zip(series["columns"], row, strict=True))
    assert got["enterprise"] == enterprise
    assert got["installation"] == installation
    assert got["tag"] == tag
    assert got["kind"] == "other"
    assert got["quality"] == quality.value
    # influxd's JSON writes 2.8e16 as 28755744103500770: compare as the float it is
    assert float(got["value"]) == value
    # Nothing else was written along with it (no line-protocol injection).
    assert influxd_server.count(_ROUND_TRIP_DB) == len(_written)


async def test_a_full_spool_drops_the_oldest_counts_and_alarms(
    tmp_path: Path, broker: Mosquitto, start_service: StartService
) -> None:
    """influxd down, a tiny spool: the oldest readings go, counted and alarmed; the
    newest are stored when influxd returns; detectors saw every one."""
    influxd = Influxd(tmp_path / "influxd")
    influxd.start()
    try:
        service = await start_service(influxd.url, "full", **{"ingest.spool_max_mb": 0.25})
        seen = 0
        on_readings = service._on_readings

        async def counting(readings: list[Reading]) -> None:
            nonlocal seen
            seen += len(readings)
            await on_readings(readings)

        service.pipeline._downstream = counting
        influxd.stop(signal.SIGKILL)
        messages = 2000
        stream = Stream(broker.port, "gw1", messages, rate=2000, base_ms=now_ms() - 600_000)
        stream.start()
        await asyncio.to_thread(stream.join_ok)
        await eventually(spooled_at_least(service, messages), 30, "all spooled")
        dropped = service.metrics.value("hazwatch_spool_dropped_readings_total")
        spool_mib = service.metrics.value("hazwatch_spool_bytes") / 2**20

        def system_alarms(tag: str) -> list[str]:
            return [
                a.state.value
                for a in service.journal.list_alarms(limit=100)
                if a.enterprise == "_system" and a.tag == tag
            ]

        await eventually(lambda: system_alarms("spool_full") == ["active_unack"], 15)
        influxd.start()
        total = messages * len(TAGS)
        await wait_stored(influxd, "full", total - int(dropped))
        await eventually(lambda: service.spool.depth_readings == 0, 30, "spool drained")
        count, _ = stored(influxd, "full")
        kept = influxd.query("SELECT value FROM reading WHERE \"tag\" = 'P00'", "full")
        seqs = {int(v) for _, v in kept["results"][0]["series"][0]["values"]}  # type: ignore[index]
        gone = sorted(set(range(1, messages + 1)) - seqs)
        print(
            f"\nspool of 0.25 MiB, influxd down, {total} readings: {int(dropped)} oldest dropped "
            f"(counted), {count} stored, spool held {spool_mib:.2f} MiB, detectors saw {seen}"
        )
        assert dropped > 0
        assert count + dropped == total  # every reading is stored or counted as dropped
        # The oldest went, in one run — except the batch the writer held (it was written).
        assert gone == list(range(gone[0], gone[0] + len(gone)))
        assert gone[-1] < messages
        assert len(gone) * len(TAGS) == dropped
        assert spool_mib <= 0.25
        assert seen == total  # dropping history never costs an alarm
        await eventually(
            lambda: system_alarms("spool_full") == ["cleared_unack"], 30, "spool_full cleared"
        )
    finally:
        influxd.stop()
