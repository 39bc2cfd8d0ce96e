"""The load generator's hand-written MQTT encoder, against a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.registry import load_registry
from simulators.load import (
    VALUES,
    LoadSpec,
    encode_connect,
    run_load,
    write_load_registry,
)
from tests.helpers import eventually
from tests.servers import Mosquitto


class Subscriber:
    """A paho QoS 1 subscriber that keeps every (topic, payload) it receives."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="load-test-sub")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert subscribed.wait(10), "no SUBACK"

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_connect_packet_layout() -> None:
    packet = encode_connect("c1")
    assert packet == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x00\x00\x02c1"


async def test_batches_arrive_exactly_once_with_their_payloads(mosquitto: Mosquitto) -> None:
    spec = LoadSpec(gateways=3, points=250, rate=100, duration=0.04)  # 4 samples
    sub = Subscriber(mosquitto.port, "hz/v1/LOAD/#")
    try:
        result = await run_load(spec, mosquitto.url)
        assert result.messages == spec.total_messages == 3 * 3 * 4
        assert result.acked == result.messages
        assert result.readings == spec.total_readings == 3 * 250 * 4
        await eventually(lambda: sub.count() >= spec.total_messages, what="all messages")
    finally:
        sub.close()
    assert sub.count() == spec.total_messages
    by_gateway: dict[str, list[Any]] = defaultdict(list)
    for topic, payload in sub.messages:
        _, _, enterprise, gateway, kind = topic.split("/")
        assert (enterprise, kind) == ("LOAD", "data")
        by_gateway[gateway].append(orjson.loads(payload))
    assert sorted(by_gateway) == ["g01", "g02", "g03"]
    for gateway, messages in by_gateway.items():
        assert [m["seq"] for m in messages] == list(range(1, 13))
        sizes = [len(m["readings"]) for m in messages]
        assert sizes == [100, 100, 50] * 4
        tags = [r["tag"] for m in messages[:3] for r in m["readings"]]
        assert tags == spec.tags(gateway)
        stamps = [m["ts"] for m in messages[::3]]
        assert stamps == sorted(set(stamps)), "every sample has its own timestamp"
        assert all(r["v"] in VALUES for m in messages for r in m["readings"])


async def test_singles_one_reading_per_message_on_the_tag_topic(mosquitto: Mosquitto) -> None:
    spec = LoadSpec(gateways=2, points=5, rate=100, duration=0.03, singles=True, window=4)
    sub = Subscriber(mosquitto.port, "hz/v1/LOAD/+/tag/+")
    try:
        result = await run_load(spec, mosquitto.url)
        await eventually(lambda: sub.count() >= spec.total_messages, what="all messages")
    finally:
        sub.close()
    assert result.messages == result.acked == result.readings == 2 * 5 * 3
    assert sub.count() == 30
    seen: defaultdict[str, list[int]] = defaultdict(list)
    for topic, payload in sub.messages:
        _, _, _, gateway, kind, tag = topic.split("/")
        assert kind == "tag"
        body = orjson.loads(payload)
        assert set(body) == {"v", "ts"}
        assert body["v"] == VALUES[len(seen[tag])]
        seen[tag].append(body["ts"])
        assert tag in spec.tags(gateway)
    assert len(seen) == 10
    assert all(len(stamps) == 3 and stamps == sorted(set(stamps)) for stamps in seen.values())


def test_generated_registry_holds_every_point_with_limits(tmp_path: Path) -> None:
    spec = LoadSpec(gateways=2, points=150, rate=1, duration=1)
    registry = load_registry(write_load_registry(tmp_path / "registry", spec))
    points = registry.points()
    assert len(points) == 300
    assert {p.tag for p in points} == set(spec.tags("g01") + spec.tags("g02"))
    assert all(p.has_limits for p in points)
    assert all(p.l is not None and p.h is not None and p.l < min(VALUES) for p in points)
    assert all(p.h is not None and max(VALUES) < p.h for p in points)


def test_cli_prints_the_result_as_json(mosquitto: Mosquitto) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hazwatch.cli",
            "simulate",
            "--load",
            "--broker",
            mosquitto.url,
            "--gateways",
            "2",
            "--points",
            "3",
            "--rate",
            "50",
            "--duration",
            "0.1",
            "--singles",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert figures["messages"] == figures["acked"] == figures["readings"] == 2 * 3 * 5
    assert figures["cpu_s"] >= 0
    assert figures["started_at"] > 1_700_000_000  # wall-clock seconds of the first publish


def test_cli_without_load_or_scenario_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hazwatch.cli", "simulate", "--gateways", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "needs --config and --scenario, or --load" in result.stderr
