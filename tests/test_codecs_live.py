"""Every codec through a real Mosquitto into the real service, and the Sparkplug host's
session duties against an independent edge node (paho + pysparkplug's payload classes).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pysparkplug as spb
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.app import Hazwatch
from hazwatch.models import AlarmType
from hazwatch.registry import load_registry
from tests.conftest import RunService, service_settings
from tests.helpers import Gateway, console_login_async, eventually, write_registry
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

D = spb.DataType
HOST_ID = "hazwatch-test"
STATE_TOPIC = f"spBv1.0/STATE/{HOST_ID}"
TAGS = ["TK101_LT", "tag0", "temperature", "docker.field_1", "Ia", "PT1", "TK101_TT"]


def codecs(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"kind": "hz-json"}, *extra]


JSON_CODECS = codecs(
    {"kind": "neuron", "map": [{"enterprise": "E001"}]},
    {"kind": "thingsboard", "map": [{"enterprise": "E001"}]},
    {"kind": "telegraf", "map": [{"enterprise": "E001"}]},
    {
        "kind": "field-map",
        "topics": ["vendor/+/up"],
        "map": [{"enterprise": "E001"}],
        "options": {
            "readings": "data",
            "tag": "id",
            "value": "val",
            "device": "devId",
            "time_unit": "s",
        },
    },
)


async def test_each_gateway_json_format_is_stored_and_bad_input_listed(
    tmp_path: Path, run_service: RunService, mosquitto: Mosquitto
) -> None:
    service = await run_service(
        {
            "registry": str(write_registry(tmp_path / "registry", "E001", TAGS)),
            "ingest.codecs": JSON_CODECS,
        }
    )
    now = service.clock.now_ms()
    gateway = Gateway(mosquitto.port, "E001", "gw")
    try:
        gateway.publish_raw(
            "/neuron/app/modbus/grp",
            orjson.dumps(
                {
                    "node": "modbus",
                    "group": "grp",
                    "timestamp": now,
                    "values": {"tag0": 7},
                    "errors": {"tag1": 2014},
                }
            ),
        )
        gateway.publish_raw(
            "v1/gateway/telemetry",
            orjson.dumps({"Device A": [{"ts": now, "values": {"temperature": 42}}]}),
        )
        gateway.publish_raw("v1/gateway/disconnect", orjson.dumps({"device": "Device A"}))
        gateway.publish_raw(
            "telegraf/raynor/docker",
            orjson.dumps(
                {
                    "fields": {"field_1": 30},
                    "name": "docker",
                    "tags": {"host": "raynor"},
                    "timestamp": now // 1000,
                }
            ),
        )
        gateway.publish_raw(
            "vendor/x/up",
            orjson.dumps({"devId": "DL-1", "ts": now // 1000, "data": [{"id": "Ia", "val": 1.5}]}),
        )
        gateway.publish_raw("vendor/x/up", b'{"devId": "DL-1", "rows": []}')  # not its format
        gateway.publish([{"tag": "TK101_LT", "v": 3.0}], ts_ms=now)
        expected = {"tag0": 7.0, "temperature": 42.0, "docker.field_1": 30.0, "Ia": 1.5}
        await eventually(
            lambda: all(service.latest.get("E001", t) for t in [*expected, "TK101_LT"]),
            what="a reading of every codec",
        )
    finally:
        gateway.close()
    stored = {t: r.value for t in expected if (r := service.latest.get("E001", t)) is not None}
    assert stored == expected
    assert {(g.gateway, g.state) for g in service.gateways.gateways("E001")} >= {
        ("modbus", "unknown"),
        ("Device_A", "offline"),
        ("raynor", "unknown"),
        ("DL-1", "unknown"),
    }
    async with httpx.AsyncClient(base_url=service.console_url) as http:
        assert service.console.users is not None
        await console_login_async(http, service.console.users)
        rejects = (await http.get("/api/ingest/rejects")).json()
    found = {(r["topic"], r["reason"]) for r in rejects["recent"]}
    assert ("/neuron/app/modbus/grp", "source_error") in found
    assert ("vendor/x/up", "bad_structure") in found
    alarms = service.journal.list_alarms(active=True, limit=100)
    assert [(a.type, a.tag) for a in alarms] == [(AlarmType.GATEWAY_OFFLINE, "Device_A")]


# --- Sparkplug B: an independent edge node --------------------------------------------------


class EdgeNode:
    """An edge node of its own: paho (clean session, NDEATH as will) and pysparkplug's
    payloads; it records the host's STATE and the commands it receives."""

    def __init__(self, port: int, bd_seq: int, group: str = "PlantA", node: str = "gw1") -> None:
        self.prefix = f"spBv1.0/{group}"
        self.node = node
        self.bd_seq = bd_seq
        self.seq = 0
        self.states: list[dict[str, Any] | bytes] = []
        self.rebirths = 0
        self.seen = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"edge-{node}-{bd_seq}", clean_session=True
        )
        self.client.will_set(f"{self.prefix}/NDEATH/{node}", self.death(), qos=1, retain=False)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(STATE_TOPIC, 1), (f"{self.prefix}/NCMD/{node}", 0)])
        self.client.loop_start()

    def death(self) -> bytes:
        bd = spb.Metric(timestamp=0, name="bdSeq", datatype=D.INT64, value=self.bd_seq)
        return spb.NDeath(timestamp=0, bd_seq_metric=bd).encode()

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        with self.seen:
            if message.topic == STATE_TOPIC:
                try:
                    self.states.append(orjson.loads(message.payload))
                except orjson.JSONDecodeError:
                    self.states.append(bytes(message.payload))
            else:
                command = spb.NCmd.decode(bytes(message.payload))
                names = {m.name: m.value for m in command.metrics}
                if names.get("Node Control/Rebirth") is True:
                    self.rebirths += 1
            self.seen.notify_all()

    def birth(self, value: float, ts: int) -> None:
        self.seq = 0
        metrics = (
            spb.Metric(timestamp=ts, name="bdSeq", datatype=D.INT64, value=self.bd_seq),
            spb.Metric(timestamp=ts, name="Node Control/Rebirth", datatype=D.BOOLEAN, value=False),
            spb.Metric(timestamp=ts, name="PT1", datatype=D.DOUBLE, value=value, alias=1),
        )
        payload = spb.NBirth(timestamp=ts, seq=0, metrics=metrics).encode(include_dtypes=True)
        self._publish("NBIRTH", payload)

    def data(self, value: float, ts: int, *, skip: int = 0) -> None:
        self.seq = (self.seq + 1 + skip) % 256
        metric = spb.Metric(timestamp=ts, name=None, datatype=D.DOUBLE, value=value, alias=1)
        self._publish("NDATA", spb.NData(timestamp=ts, seq=self.seq, metrics=(metric,)).encode())

    def _publish(self, kind: str, payload: bytes) -> None:
        self.client.publish(f"{self.prefix}/{kind}/{self.node}", payload, qos=1).wait_for_publish(
            10
        )

    def drop(self) -> None:
        """The link is cut (no DISCONNECT): the broker publishes the NDEATH will."""
        sock = self.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def edges(mosquitto: Mosquitto) -> Iterator[list[EdgeNode]]:
    made: list[EdgeNode] = []
    yield made
    for edge in made:
        edge.close()


SPARKPLUG = {
    "kind": "sparkplug-b",
    "map": [{"match": {"group": "PlantA"}, "enterprise": "E001"}],
    "options": {"host_id": HOST_ID, "reorder_timeout_s": 0.3, "rebirth_interval_s": 1},
}


async def edge_seeing_the_host(mosquitto: Mosquitto, edges: list[EdgeNode]) -> EdgeNode:
    """An edge node (bdSeq 0), once the host's STATE reached it."""
    edge = EdgeNode(mosquitto.port, bd_seq=0)
    edges.append(edge)
    await eventually(lambda: bool(edge.states), what="the host's STATE")
    return edge


async def sparkplug_service(tmp_path: Path, run_service: RunService) -> Hazwatch:
    registry = write_registry(tmp_path / "registry", "E001", TAGS)
    return await run_service({"registry": str(registry), "ingest.codecs": codecs(SPARKPLUG)})


async def test_sparkplug_host_session_birth_data_gap_rebirth_death_and_a_new_bdseq(
    tmp_path: Path, run_service: RunService, mosquitto: Mosquitto, edges: list[EdgeNode]
) -> None:
    service = await sparkplug_service(tmp_path, run_service)
    # 1. the host's STATE is retained online, JSON of 3.0
    edge = await edge_seeing_the_host(mosquitto, edges)
    online = edge.states[-1]
    assert isinstance(online, dict)
    assert online["online"] is True
    assert isinstance(online["timestamp"], int)
    # 2. birth and data
    now = service.clock.now_ms()
    edge.birth(1.0, now)
    edge.data(2.0, now + 1)
    await eventually(
        lambda: (r := service.latest.get("E001", "PT1")) is not None and r.value == 2.0,
        what="NDATA stored",
    )
    # 3. a seq gap that is not filled in the reorder timeout asks for a rebirth...
    edge.data(3.0, now + 2, skip=1)
    await eventually(lambda: edge.rebirths == 1, what="a rebirth request (NCMD)")
    assert (
        service.metrics.value("hazwatch_sparkplug_rebirth_requests_total", {"reason": "seq_gap"})
        == 1
    )
    edge.birth(4.0, now + 3)  # ...which the edge node answers with its BIRTH
    await eventually(
        lambda: service.latest.get("E001", "PT1").value == 4.0,  # type: ignore[union-attr]
        what="the rebirth's value",
    )
    # 4. death: the broker publishes the will, the gateway goes offline (an alarm)
    edge.drop()
    await eventually(
        lambda: _offline_alarms(service) == ["gw1"], what="GATEWAY_OFFLINE from the NDEATH"
    )
    # 5. back with a new bdSeq: online again, the alarm clears
    edge2 = EdgeNode(mosquitto.port, bd_seq=1)
    edges.append(edge2)
    edge2.birth(5.0, service.clock.now_ms())
    await eventually(lambda: _offline_alarms(service) == [], what="GATEWAY_OFFLINE cleared")
    # a late will of the first session (bdSeq 0) must not take the new one offline
    late = Gateway(mosquitto.port, "x", "late-will")
    try:
        late.publish_raw("spBv1.0/PlantA/NDEATH/gw1", edge.death())
    finally:
        late.close()
    edge2.data(6.0, service.clock.now_ms())
    await eventually(
        lambda: service.latest.get("E001", "PT1").value == 6.0,  # type: ignore[union-attr]
        what="the new session's data",
    )
    await eventually(
        lambda: service.metrics.value("hazwatch_sparkplug_stale_deaths_total") == 1,
        what="the old will ignored",
    )
    assert _offline_alarms(service) == []


def _offline_alarms(service: Hazwatch) -> list[str]:
    return [
        a.tag
        for a in service.journal.list_alarms(active=True, limit=100)
        if a.type is AlarmType.GATEWAY_OFFLINE and a.state.value.startswith("active")
    ]


async def test_sparkplug_host_state_will_on_a_lost_link_and_online_again(
    tmp_path: Path, run_service: RunService, mosquitto: Mosquitto, edges: list[EdgeNode]
) -> None:
    service = await sparkplug_service(tmp_path, run_service)
    edge = await edge_seeing_the_host(mosquitto, edges)
    first = edge.states[-1]
    assert isinstance(first, dict)
    host_source = service.sources[1]
    connection = host_source._conn
    assert connection is not None
    connection._transport.abort()  # type: ignore[union-attr]  # the link is lost: no goodbye
    await eventually(lambda: len(edge.states) >= 3, timeout=30, what="will, then online again")
    will, again = edge.states[1], edge.states[2]
    assert will == {"online": False, "timestamp": first["timestamp"]}  # the CONNECT's time
    assert isinstance(again, dict)
    assert again["online"] is True
    assert again["timestamp"] >= first["timestamp"]


async def test_sparkplug_host_says_online_again_when_told_it_is_offline(
    tmp_path: Path, run_service: RunService, mosquitto: Mosquitto, edges: list[EdgeNode]
) -> None:
    await sparkplug_service(tmp_path, run_service)
    edge = await edge_seeing_the_host(mosquitto, edges)
    other = Gateway(mosquitto.port, "x", "y")  # a stale 2.2-style retained message
    try:
        other.publish_raw(STATE_TOPIC, b"OFFLINE", retain=True)
        await eventually(lambda: len(edge.states) >= 3, what="OFFLINE, then online again")
    finally:
        other.close()
    assert edge.states[1] == b"OFFLINE"
    assert isinstance(edge.states[2], dict)
    assert edge.states[2]["online"] is True


async def test_sparkplug_host_says_offline_before_a_clean_stop(
    tmp_path: Path, mosquitto: Mosquitto, edges: list[EdgeNode]
) -> None:
    registry_dir = write_registry(tmp_path / "registry", "E001", TAGS)
    settings = service_settings(
        tmp_path,
        mosquitto,
        {"registry": str(registry_dir), "ingest.codecs": codecs(SPARKPLUG)},
    )
    edge = EdgeNode(mosquitto.port, bd_seq=0)
    edges.append(edge)
    async with Hazwatch(settings, load_registry(registry_dir)) as service:
        running = asyncio.create_task(service.run())
        await service.wait_subscribed()
        await eventually(lambda: bool(edge.states), what="the host's STATE")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    await eventually(lambda: len(edge.states) >= 2, what="the STATE offline")
    online, offline = edge.states[0], edge.states[1]
    assert isinstance(online, dict)
    assert offline == {"online": False, "timestamp": online["timestamp"]}
