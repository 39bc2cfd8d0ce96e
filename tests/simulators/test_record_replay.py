"""Recorder and replayer against real Mosquitto brokers; timestamp rewriting."""

from __future__ import annotations

import asyncio
import doctest
import time
from pathlib import Path

import orjson
import pytest

import simulators.replay
from hazwatch.clock import ManualClock
from hazwatch.errors import BrokerError, ConfigError, RecordingError
from hazwatch.models import ms_to_iso
from simulators.broker import Broker
from simulators.record import Recorder
from simulators.recording import RecordedMessage, RecordingHeader, RecordingReader, RecordingWriter
from simulators.replay import Replayer, TimestampShift
from tests.helpers import Gateway, eventually
from tests.receivers import MqttRecorder
from tests.servers import Mosquitto, free_port

T0 = 1_763_820_000_000


# --- timestamp rewriting -----------------------------------------------------------------


def test_rewrite_moves_message_and_reading_timestamps_in_both_forms() -> None:
    shift = TimestampShift(first_ms=T0, now_ms=T0 + 3_600_000, speed=10)
    payload = orjson.dumps(
        {
            "seq": 7,
            "ts": T0 + 10_000,
            "readings": [
                {"tag": "A", "v": 1.5},
                {"tag": "B", "v": True, "ts": T0 + 20_000},
                {"tag": "C", "v": 2, "ts": ms_to_iso(T0 + 30_000)},
                {"tag": "D", "v": 3, "ts": "2025-11-22T22:00:40.5+08:00"},  # T0 + 40.5 s
            ],
        }
    )
    moved = orjson.loads(shift.payload("hz/v1/E/g/data", payload))
    assert moved == {
        "seq": 7,
        "ts": T0 + 3_601_000,
        "readings": [
            {"tag": "A", "v": 1.5},
            {"tag": "B", "v": True, "ts": T0 + 3_602_000},
            {"tag": "C", "v": 2, "ts": ms_to_iso(T0 + 3_603_000)},
            {"tag": "D", "v": 3, "ts": ms_to_iso(T0 + 3_604_050)},
        ],
    }
    single = shift.payload("hz/v1/E/g/tag/A", b'{"v": 4.25, "ts": %d}' % (T0 + 50_000))
    assert orjson.loads(single) == {"v": 4.25, "ts": T0 + 3_605_000}


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("hz/v1/E/g/status", b"offline"),
        ("hz/v1/E/g/tag/A", b"3.5"),  # a bare number has no timestamp
        ("hz/v1/E/g/data", b'{"readings": [{"tag": "A", "v": 1}]}'),  # none to move
        ("hz/v1/E/g/data", b'{"ts": 1, "ts": 2, "readings": []}'),  # rejected as it was
        ("hz/v1/E/g/data", b'{"ts": 1763820000000, "readings": [\xff]}'),  # not UTF-8
        ("hz/v1/E/g/data", b'{"ts": 1763820000000.0, "readings": []}'),  # not a ts: bad_ts
        ("hz/v1/E/g/data", b'{"ts": "1763820000000", "readings": []}'),  # not RFC 3339
    ],
)
def test_rewrite_leaves_payloads_without_a_valid_timestamp_byte_for_byte(
    topic: str, payload: bytes
) -> None:
    assert TimestampShift(T0, T0 + 1, 1).payload(topic, payload) == payload


def test_rewrite_keeps_what_only_the_lenient_parser_reads() -> None:
    # NaN costs its own reading in the codec, not the message: the others still move
    shift = TimestampShift(T0, T0 + 1_000, 1)
    moved = shift.payload(
        "hz/v1/E/g/data", b'{"ts": %d, "readings": [{"tag": "A", "v": NaN}]}' % T0
    )
    assert moved == b'{"ts":%d,"readings":[{"tag":"A","v":NaN}]}' % (T0 + 1_000)


def test_doctests_run() -> None:
    assert doctest.testmod(simulators.replay).failed == 0


# --- broker URLs -------------------------------------------------------------------------


def test_credentials_come_from_the_url_or_the_environment_and_never_show() -> None:
    broker = Broker.from_url("mqtts://rec%40E001:s%3Acret@broker.example", environ={})
    assert (broker.host, broker.port, broker.tls) == ("broker.example", 8883, True)
    assert (broker.username, broker.password) == ("rec@E001", "s:cret")
    assert broker.url == "mqtts://broker.example:8883"
    assert "cret" not in repr(broker)
    env = {"HAZWATCH_MQTT__USERNAME": "u", "HAZWATCH_MQTT__PASSWORD": "p"}
    assert Broker.from_url("mqtt://127.0.0.1:1884", environ=env).username == "u"
    with pytest.raises(ConfigError, match=r"got 'http://broker:1883'"):
        Broker.from_url("http://user:secret@broker:1883")


# --- against Mosquitto ---------------------------------------------------------------------


@pytest.mark.integration
async def test_the_recorder_keeps_payloads_retain_flags_and_its_clocks_receive_time(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    clock = ManualClock(T0)
    gateway = Gateway(mosquitto.port, "E001", "gw1")
    gateway.publish_raw("hz/v1/E001/gw1/status", b"online", retain=True)  # before: retained
    path = tmp_path / "rec.jsonl"
    try:
        async with Recorder(Broker.from_url(mosquitto.url), path, clock=clock) as recorder:
            await eventually(lambda: recorder.messages == 1, what="the retained status")
            clock.set(T0 + 500)
            gateway.publish_raw("hz/v1/E001/gw1/status", b"offline", retain=True)  # live
            gateway.publish_raw("hz/v1/E001/gw1/data", b'{"readings": [\xff]}')
            gateway.publish_raw("other/topic", b"not recorded")
            await eventually(lambda: recorder.messages == 3, what="three messages")
    finally:
        gateway.close()
    with RecordingReader(path) as reader:
        assert reader.header == RecordingHeader(T0, mosquitto.url)
        assert list(reader) == [
            RecordedMessage(T0, "hz/v1/E001/gw1/status", b"online", retain=True),
            RecordedMessage(T0 + 500, "hz/v1/E001/gw1/status", b"offline", retain=True),
            RecordedMessage(T0 + 500, "hz/v1/E001/gw1/data", b'{"readings": [\xff]}'),
        ]


@pytest.mark.integration
async def test_the_recorder_stops_after_count_and_refuses_to_start_without_a_broker(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    gateway = Gateway(mosquitto.port, "E001", "gw1")
    path = tmp_path / "rec.jsonl"
    try:
        async with Recorder(Broker.from_url(mosquitto.url), path, max_messages=2) as recorder:
            for n in range(4):
                gateway.publish_raw("hz/v1/E001/gw1/tag/A", b"%d" % n)
            await asyncio.wait_for(recorder.run(), 10)
    finally:
        gateway.close()
    with RecordingReader(path) as reader:
        assert [m.payload for m in reader] == [b"0", b"1"]

    with pytest.raises(RecordingError, match="already exists"):
        await Recorder(Broker.from_url(mosquitto.url), path).__aenter__()
    nowhere = tmp_path / "nowhere.jsonl"
    with pytest.raises(BrokerError, match=r"cannot connect to mqtt://127\.0\.0\.1"):
        await Recorder(Broker.from_url(f"mqtt://127.0.0.1:{free_port()}"), nowhere).__aenter__()
    assert not nowhere.exists()  # a failed start leaves no file


def recording(path: Path, messages: list[RecordedMessage]) -> Path:
    with RecordingWriter(path, RecordingHeader(T0, "test")) as writer:
        for message in messages:
            writer.write(message)
    return path


@pytest.mark.integration
async def test_replay_publishes_gateway_messages_in_order_with_retain_and_their_spacing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    messages = [
        RecordedMessage(T0, "hz/v1/E001/gw1/status", b"online", retain=True),
        RecordedMessage(T0 + 100, "hz/v1/E001/alarms", b'{"alarm": "from the live run"}'),
        RecordedMessage(T0 + 2_000, "hz/v1/E001/gw1/data", b'{"readings": [\xff]}'),
        RecordedMessage(T0 + 10_000, "hz/v1/E001/gw1/tag/A", b"3.5"),
    ]
    path = recording(tmp_path / "rec.jsonl", messages)
    speed = 20  # 10 s of recording in 0.5 s
    with MqttRecorder(mosquitto.port, "#") as received:
        started = time.monotonic()
        replayer = Replayer(Broker.from_url(mosquitto.url), speed=speed, window=2)
        with RecordingReader(path) as reader:
            await replayer.run(reader)
        await eventually(lambda: received.count() == 3, what="three messages")
    counts = (replayer.published, replayer.acknowledged, replayer.refused, replayer.skipped)
    assert counts == (3, 3, 0, 1)
    arrivals = received.arrivals
    assert [(a.topic, a.payload, a.retain) for a in arrivals] == [
        (m.topic, m.payload, m.retain) for m in messages if "alarms" not in m.topic
    ]
    # never earlier than the recorded spacing divided by the speed after the replay
    # started (later is possible on a busy machine: only the lower bound is checked)
    for a, m in zip(arrivals[1:], [messages[2], messages[3]], strict=True):
        assert a.at - started >= (m.t - T0) / 1000 / speed


@pytest.mark.integration
async def test_replay_with_rewritten_timestamps_starts_at_now(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    messages = [
        RecordedMessage(
            T0 + k * 1000, "hz/v1/E001/gw1/data", b'{"ts": %d, "readings": []}' % (T0 + k * 1000)
        )
        for k in range(3)
    ]
    path = recording(tmp_path / "rec.jsonl", messages)
    with MqttRecorder(mosquitto.port, "hz/v1/#") as received:
        before = time.time_ns() // 1_000_000
        with RecordingReader(path) as reader:
            await Replayer(Broker.from_url(mosquitto.url), speed=100, rewrite_ts=True).run(reader)
        after = time.time_ns() // 1_000_000
        await eventually(lambda: received.count() == 3, what="three messages")
    stamps = [orjson.loads(p)["ts"] for _, p in received.messages]
    assert before <= stamps[0] <= after
    assert [s - stamps[0] for s in stamps] == [0, 10, 20]  # 1 s apart at 100x


@pytest.mark.integration
async def test_replay_to_no_broker_is_one_clear_error(tmp_path: Path) -> None:
    path = recording(tmp_path / "rec.jsonl", [])
    broker = Broker.from_url(f"mqtt://127.0.0.1:{free_port()}")
    with RecordingReader(path) as reader, pytest.raises(BrokerError, match="cannot connect"):
        await Replayer(broker).run(reader)
