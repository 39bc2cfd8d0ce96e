"""Record, replay, backtest: a live run, and what replaying and backtesting its recording give.

One live run of the real service (Mosquitto, SQLite, journal, MQTT alarm output) on a
clock 10x as fast as the wall, recorded by ``hazwatch record``'s recorder on the same
clock: test gateways publish 30 s of clock time that raise H and HH (and clear them),
a STALE (a point falls silent: a tick finds it), GATEWAY_OFFLINE from status messages,
with a malformed payload and a duplicate in between; at the end every gateway says
``offline``, so nothing changes afterwards. Then:

1. a fresh service (new broker, storage, journal, spool) on a clock that starts at the
   recording's first receive time, and the recording replayed into it at 10x with its
   original timestamps: the same stored points, the same alarms;
2. the backtest over the recording: the same alarms as the live run;
3. ``hazwatch backtest --compare`` on the recording: identical to what the live run
   published on its alarm topic.

Times of alarms that come from readings are the readings' own: they must be equal.
Times that come from the service's "now" (ticks, status messages) may differ by a tick
plus scheduling on a busy machine (measured here: up to 0.3 s of clock time):
``TOLERANCE_MS``, a tick plus 100 ms of wall time at 10x.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from hazwatch.app import Hazwatch
from hazwatch.clock import HeldClock, ScaledClock
from hazwatch.models import Alarm, Registry
from hazwatch.registry import load_registry
from hazwatch.settings import IngestSettings, load_settings
from ingest.codecs import build_routes
from simulators.backtest import run_backtest
from simulators.broker import Broker
from simulators.record import Recorder
from simulators.recording import RecordingReader
from simulators.replay import Replayer
from tests.conftest import RunService
from tests.helpers import Gateway, eventually, write_registry
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

LIVE_RATE = 10
REPLAY_RATE = 10
TICK_S = 1.0
"""Detector tick in clock time (the service sleeps ``tick_s`` of wall time: set per rate)."""
TOLERANCE_MS = 2_000
S = 1000


@dataclass(frozen=True)
class Publication:
    at_s: float
    """Clock seconds after the start of the stream."""
    gateway: str
    kind: str  # "data", "status", "raw"
    readings: tuple[tuple[str, float], ...] = ()
    payload: bytes = b""


def stream() -> Iterator[Publication]:
    """The live run's 30 s, in order (see the module docstring)."""
    yield Publication(0, "g1", "status", payload=b"online")
    yield Publication(0, "g2", "status", payload=b"online")
    lt1 = {8: 11.5, 10: 11.6}  # above H (10) and HH (11) at 8 s, back at 12 s
    for k in range(15):
        t = 2 * k
        readings = [("LT1", lt1.get(t, 5.0))]
        if t <= 8:  # LT2 falls silent after 8 s: STALE at the first tick after 14 s
            readings.append(("LT2", 1.0))
        yield Publication(t, "g1", "data", tuple(readings))
        if t == 4:
            yield Publication(5, "g1", "raw", payload=b'{"seq": 99, "readings": [\xff]}')
        if t == 10:
            yield Publication(11, "g1", "duplicate")
        if t <= 10 or t >= 16:  # g2 says offline at 11 s, online again at 15 s
            yield Publication(t if t <= 10 else t - 1, "g2", "data", (("LT3", 2.0),))
        if t == 10:
            yield Publication(11, "g2", "status", payload=b"offline")
            yield Publication(15, "g2", "status", payload=b"online")
    yield Publication(30, "g1", "status", payload=b"offline")
    yield Publication(30, "g2", "status", payload=b"offline")


async def publish_stream(
    port: int, clock: ScaledClock, t0: int
) -> tuple[int, set[tuple[str, int]]]:
    """Publish :func:`stream` on schedule; returns the messages sent and the (tag, ts)
    of every valid reading (what storage must hold)."""
    gateways = {g: Gateway(port, "E1", g) for g in ("g1", "g2")}
    last: dict[str, bytes] = {}
    points: set[tuple[str, int]] = set()
    sent = 0
    try:
        for p in stream():
            ts = t0 + round(p.at_s * S)
            await asyncio.sleep(max(0.0, clock.wall_s_until(ts)))  # the schedule itself
            gateway = gateways[p.gateway]
            if p.kind == "status":
                gateway.publish_raw(f"{gateway.prefix}/status", p.payload, retain=True)
            elif p.kind == "raw":
                gateway.publish_raw(f"{gateway.prefix}/data", p.payload)
            elif p.kind == "duplicate":
                gateway.publish_raw(f"{gateway.prefix}/data", last[p.gateway])
            else:
                gateway.seq += 1
                message = {
                    "seq": gateway.seq,
                    "ts": ts,
                    "readings": [{"tag": t, "v": v} for t, v in p.readings],
                }
                last[p.gateway] = orjson.dumps(message)
                gateway.publish_raw(f"{gateway.prefix}/data", last[p.gateway])
                points.update((tag, ts) for tag, _ in p.readings)
            sent += 1
    finally:
        for gateway in gateways.values():
            gateway.close()
    return sent, points


def stored(service: Hazwatch) -> list[tuple[object, ...]]:
    with sqlite3.connect(service.settings.storage.path) as conn:
        return conn.execute(
            "SELECT enterprise, tag, ts_ms, installation, kind, value, quality FROM reading "
            "ORDER BY enterprise, tag, ts_ms"
        ).fetchall()


def alarms(service: Hazwatch) -> list[Alarm]:
    return service.journal.list_alarms(limit=1000)


def identity(alarm_list: list[Alarm]) -> list[tuple[object, ...]]:
    """What must be equal exactly: who, what, the values, and whether it cleared."""
    return sorted(
        (
            a.enterprise,
            a.installation,
            a.tag,
            a.type.value,
            a.priority.value,
            a.value,
            a.limit,
            a.cleared_at is None,
        )
        for a in alarm_list
    )


def ms(iso: str | None) -> int | None:
    return None if iso is None else int(datetime.fromisoformat(iso).timestamp() * 1000)


def assert_same_alarms(expected: list[Alarm], got: list[Alarm], what: str) -> None:
    assert identity(got) == identity(expected), what

    def key(a: Alarm) -> tuple[str, str, str, str]:
        return (a.enterprise, a.installation, a.tag, a.type.value)

    for a, b in zip(sorted(expected, key=key), sorted(got, key=key), strict=True):
        for name, x, y in (
            ("raised", ms(a.raised_at), ms(b.raised_at)),
            ("cleared", ms(a.cleared_at), ms(b.cleared_at)),
        ):
            assert x is not None or y is None, f"{what}: {key(a)} {name}"
            if x is not None and y is not None:
                assert abs(x - y) <= TOLERANCE_MS, f"{what}: {key(a)} {name} {a} vs {b}"
        if a.type.value in ("H", "HH"):  # from readings: their own times, exactly
            assert (a.raised_at, a.cleared_at) == (b.raised_at, b.cleared_at), what


@pytest.fixture
def replay_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The fresh broker replayed into. Requested before ``run_service``, so that it
    stops after the services connected to it."""
    server = Mosquitto(tmp_path / "replay-broker")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_live_run_replayed_at_10x_and_backtested_gives_the_same_points_and_alarms(
    tmp_path: Path, mosquitto: Mosquitto, replay_broker: Mosquitto, run_service: RunService
) -> None:
    registry_dir = write_registry(
        tmp_path / "reg",
        "E1",
        ["LT1", "LT2", "LT3"],
        min="0",
        max="20",
        h="10",
        hh="11",
        deadband="0.1",
        interval_s="2",
    )
    fast = {"registry": str(registry_dir)}
    live_clock = ScaledClock(LIVE_RATE)
    live = await run_service({**fast, "detectors.tick_s": TICK_S / LIVE_RATE}, clock=live_clock)
    path = tmp_path / "live.jsonl"

    # --- the live run, recorded ------------------------------------------------------
    async with Recorder(Broker.from_url(mosquitto.url), path, clock=live_clock) as recorder:
        t0 = live_clock.now_ms() + S
        sent, points = await publish_stream(mosquitto.port, live_clock, t0)
        await eventually(lambda: len(stored(live)) == len(points), what="live storage")
        await eventually(
            lambda: (
                sorted((a.tag, a.type.value, a.cleared_at is None) for a in alarms(live))
                == [
                    ("LT1", "H", False),
                    ("LT1", "HH", False),
                    ("LT2", "STALE", True),
                    ("g1", "GATEWAY_OFFLINE", True),
                    ("g2", "GATEWAY_OFFLINE", True),
                ]
            ),
            what="the live run's alarms",
        )
        published = sum(len(live.journal.transitions(a.id)) for a in alarms(live))
        await eventually(lambda: live.journal.pending_count() == 0, what="alarms published")
        await eventually(lambda: recorder.messages == sent + published, what="all recorded")
    live_points, live_alarms = stored(live), alarms(live)
    assert [(tag, ts) for _, tag, ts, *_ in live_points] == sorted(points)
    assert ("E1", "LT1", t0 + 8 * S, "U1", "other", 11.5, "good") in live_points
    assert live.metrics.value("hazwatch_ingest_rejected_total", {"reason": "json"}) == 1

    with RecordingReader(path) as reader:
        header = reader.header
        recorded = list(reader)
    routes = build_routes(IngestSettings())
    first_t = min(m.t for m in recorded if routes.is_gateway_topic(m.topic))
    assert sum(1 for m in recorded if m.topic == "hz/v1/E1/alarms") == published
    assert sum(1 for m in recorded if m.retain) == 6  # the status messages

    # --- 1. replayed at 10x into a fresh service ----------------------------------------
    clock = HeldClock(REPLAY_RATE, start_ms=first_t)
    replayed = await run_service(
        {
            **fast,
            "detectors.tick_s": TICK_S / REPLAY_RATE,
            "mqtt.url": replay_broker.url,
            "mqtt.client_id": "hazwatch-replayed",
            "storage.path": str(tmp_path / "replayed" / "readings.db"),
            "journal.path": str(tmp_path / "replayed" / "journal.db"),
            "ingest.spool_path": str(tmp_path / "replayed" / "spool.db"),
        },
        clock=clock,
    )
    clock.start()
    replayer = Replayer(Broker.from_url(replay_broker.url), speed=REPLAY_RATE)
    with RecordingReader(path) as reader:
        await replayer.run(reader, clock=clock)
    assert (replayer.published, replayer.acknowledged, replayer.refused) == (sent, sent, 0)
    assert replayer.skipped == published
    await eventually(lambda: stored(replayed) == live_points, what="the same stored points")
    await eventually(
        lambda: identity(alarms(replayed)) == identity(live_alarms), what="the same alarms"
    )
    assert_same_alarms(live_alarms, alarms(replayed), "replay")

    # --- 2. the backtest gives the live run's alarms --------------------------------------
    registry: Registry = load_registry(registry_dir)
    settings = load_settings(
        None, environ={}, overrides={"registry": str(registry_dir), "detectors.tick_s": TICK_S}
    )
    backtest = run_backtest(settings, registry, header.started_ms, recorded)
    assert_same_alarms(live_alarms, backtest.alarms, "backtest")
    assert dict(backtest.rejected) == {"json": 1}
    assert [(g.gateway, g.seq_repeats) for g in backtest.gateways] == [("g1", 1), ("g2", 0)]
    assert backtest.readings == sum(len(p.readings) for p in stream()) + 1  # + the duplicate's

    # --- 3. the command, comparing with what the live run published ---------------------
    config = tmp_path / "rules.toml"
    config.write_text(f'registry = "{registry_dir}"\n[detectors]\ntick_s = {TICK_S}\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hazwatch.cli",
            "backtest",
            "--config",
            str(config),
            "--compare",
            "--tolerance",
            str(TOLERANCE_MS / 1000),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  same:                  5\n" in done.stdout
    assert done.stdout.endswith("  result: identical\n")
    assert "rejected:   1 (json 1)" in done.stdout
