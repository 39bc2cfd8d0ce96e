"""``hazwatch record / replay / backtest / export`` as a user runs them: subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from hazwatch.metrics import Metrics
from hazwatch.models import Reading
from hazwatch.registry import load_registry
from hazwatch.settings import load_settings
from ingest.sink import build_sink
from simulators.recording import RecordedMessage, RecordingHeader, RecordingReader, RecordingWriter
from tests.helpers import Gateway, eventually, write_registry
from tests.receivers import MqttRecorder
from tests.servers import Mosquitto

HAZWATCH = [sys.executable, "-m", "hazwatch.cli"]
T0 = 1_763_820_000_000


def hazwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HAZWATCH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    registry = write_registry(tmp_path / "reg", "E1", ["LT1"], h="10", hh="11", interval_s="60")
    path = tmp_path / "hazwatch.toml"
    path.write_text(
        f'registry = "{registry}"\n[storage]\npath = "{tmp_path / "readings.db"}"\n'
        "[detectors]\ntick_s = 1.0\n"
    )
    return path


def small_recording(path: Path) -> Path:
    payloads = [
        (0, b'{"ts": %d, "readings": [{"tag": "LT1", "v": 5.0}]}'),
        (2, b'{"ts": %d, "readings": [{"tag": "LT1", "v": 11.5}]}'),
        (4, b'{"ts": %d, "readings": [{"tag": "LT1", "v": 5.0}]}'),
    ]
    with RecordingWriter(path, RecordingHeader(T0, "test")) as writer:
        writer.write(RecordedMessage(T0, "hz/v1/E1/g1/status", b"online", retain=True))
        for k, payload in payloads:
            writer.write(
                RecordedMessage(T0 + k * 1000, "hz/v1/E1/g1/data", payload % (T0 + k * 1000))
            )
        writer.write(RecordedMessage(T0 + 5000, "hz/v1/E1/g1/data", b"\xff"))
    return path


def test_backtest_prints_the_alarm_table_and_the_summary(tmp_path: Path, config: Path) -> None:
    recording = small_recording(tmp_path / "rec.jsonl")
    done = hazwatch("backtest", "--config", str(config), str(recording))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no log lines, no progress bar without a terminal
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "raised",
        "enterprise",
        "tag",
        "type",
        "priority",
        "value",
        "limit",
        "cleared",
    ]
    assert lines[1].split() == [
        "2025-11-22T14:00:02.000Z",
        "E1",
        "LT1",
        "H",
        "high",
        "5.0",
        "10.0",
        "2025-11-22T14:00:04.000Z",
    ]
    assert lines[2].split()[3] == "HH"
    assert "messages:   5 (5 from gateways, 0 other)" in lines
    assert "rejected:   1 (json 1)" in lines
    assert "alarms:     2 (H 1, HH 1)" in lines

    as_json = hazwatch("backtest", "--config", str(config), "--json", str(recording))
    assert as_json.returncode == 0, as_json.stderr
    doc = orjson.loads(as_json.stdout)
    assert [a["type"] for a in doc["alarms"]] == ["H", "HH"]
    assert doc["rejected"] == {"json": 1}
    assert (
        as_json.stdout
        == hazwatch("backtest", "--config", str(config), "--json", str(recording)).stdout
    )

    compared = hazwatch("backtest", "--config", str(config), "--compare", str(recording))
    assert compared.returncode == 1  # the two alarms were never published: different
    assert "  only in the backtest:  2" in compared.stdout
    assert compared.stdout.endswith("  result: DIFFERENT\n")


def test_missing_or_malformed_recordings_are_one_error_line_and_exit_2(
    tmp_path: Path, config: Path
) -> None:
    missing = tmp_path / "nope.jsonl"
    for command in (["backtest", "--config", str(config)], ["replay"]):
        done = hazwatch(*command, str(missing))
        assert done.returncode == 2
        assert done.stderr == f"error: {missing}: no such file\n"
    broken = small_recording(tmp_path / "rec.jsonl")
    with broken.open("ab") as f:
        f.write(b'{"t": 1, "payload": ""}\n')
    done = hazwatch("backtest", "--config", str(config), str(broken))
    assert done.returncode == 2
    assert done.stderr == f"error: {broken}:7: topic: expected a string, got null\n"
    assert done.stdout == ""


@pytest.mark.integration
async def test_record_then_replay_from_the_command_line(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    out = tmp_path / "rec.jsonl"
    recorder = await asyncio.create_subprocess_exec(
        *HAZWATCH,
        "record",
        "--broker",
        mosquitto.url,
        "--out",
        str(out),
        "--count",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert recorder.stderr is not None
    started = await asyncio.wait_for(recorder.stderr.readline(), 30)
    assert started.decode() == f"recording hz/v1/# from {mosquitto.url} to {out}\n"
    gateway = Gateway(mosquitto.port, "E1", "g1")
    try:
        gateway.publish_raw("hz/v1/E1/g1/status", b"online", retain=True)
        gateway.publish_raw("hz/v1/E1/g1/tag/LT1", b"3.5")
        gateway.publish_raw("hz/v1/E1/alarms", b"{}")
    finally:
        gateway.close()
    stdout, _ = await asyncio.wait_for(recorder.communicate(), 30)
    assert recorder.returncode == 0
    assert stdout.decode().startswith("recorded 3 messages (0.")
    assert stdout.decode().endswith(f" to {out}\n")
    with RecordingReader(out) as reader:
        assert [(m.topic, m.retain) for m in reader] == [
            ("hz/v1/E1/g1/status", True),
            ("hz/v1/E1/g1/tag/LT1", False),
            ("hz/v1/E1/alarms", False),
        ]

    # without --count or --duration: it records until Ctrl-C, flushing every second
    until_stopped = tmp_path / "until-stopped.jsonl"
    recorder = await asyncio.create_subprocess_exec(
        *HAZWATCH, "record", "--broker", mosquitto.url, "--out", str(until_stopped),
        "--topic", "hz/v1/+/+/tag/#",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert recorder.stderr is not None
    await asyncio.wait_for(recorder.stderr.readline(), 30)
    gateway = Gateway(mosquitto.port, "E1", "g1")
    try:
        gateway.publish_raw("hz/v1/E1/g1/status", b"not this topic")
        gateway.publish_raw("hz/v1/E1/g1/tag/LT1", b"4.5")
    finally:
        gateway.close()
    await eventually(lambda: len(until_stopped.read_bytes().splitlines()) == 2, what="flushed")
    recorder.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(recorder.communicate(), 30)
    assert recorder.returncode == 0, stderr
    assert stdout.decode().startswith("recorded 1 messages (")
    with RecordingReader(until_stopped) as reader:
        assert [m.payload for m in reader] == [b"4.5"]

    target = Mosquitto(tmp_path / "target")
    target.start()
    try:
        with MqttRecorder(target.port, "#") as received:
            replay = await asyncio.create_subprocess_exec(
                *HAZWATCH,
                "replay",
                str(out),
                "--broker",
                target.url,
                "--speed",
                "100",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(replay.communicate(), 30)
            assert replay.returncode == 0, stderr
            assert stdout.decode().startswith(f"replayed 2 messages to {target.url} at 100x in ")
            assert stdout.decode().endswith(
                ": 2 acknowledged, 0 refused; 1 on other topics skipped\n"
            )
            await eventually(lambda: received.count() == 2, what="two messages")
        assert received.messages == [
            ("hz/v1/E1/g1/status", b"online"),
            ("hz/v1/E1/g1/tag/LT1", b"3.5"),
        ]
    finally:
        target.stop()


async def test_export_from_the_command_line(tmp_path: Path, config: Path) -> None:
    settings = load_settings(config, environ={})
    async with build_sink(settings.storage, load_registry(settings.registry), Metrics()) as sink:
        await sink.write([Reading("E1", "g1", "LT1", 1.5 + k, T0 + k * 1000) for k in range(3)])
    out = tmp_path / "export.jsonl"
    done = hazwatch(
        "export",
        "--config",
        str(config),
        "--start",
        "2025-11-22T14:00:00Z",
        "--end",
        str(T0 + 2000),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "exported 2 readings in 2 messages (2025-11-22T14:00:00.000Z .. "
        f"2025-11-22T14:00:02.000Z) from sqlite to {out}\n"
    )
    with RecordingReader(out) as reader:
        assert [m.topic for m in reader] == ["hz/v1/E1/U1-gw/data"] * 2
    bad = hazwatch(
        "export",
        "--config",
        str(config),
        "--start",
        "yesterday",
        "--end",
        "1",
        "--out",
        str(tmp_path / "x"),
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --start: expected ISO 8601 with an offset")
