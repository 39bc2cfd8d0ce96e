"""Gateway logins and the ACL, on a real Mosquitto running the shipped configuration.

``hazwatch gateway add`` writes the password file and the ACL; Mosquitto starts from
deploy/mosquitto/mosquitto.conf itself (its paths and ports moved into the test's
directory) — so the files docker-compose uses are the ones tested. Gateways connect
to the TLS listener with MQTT 5, whose PUBACK says "Not authorized" where 3.1.1
would acknowledge silently and drop.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from hazwatch.app import Hazwatch
from hazwatch.logins import LoginFiles, mosquitto_hash
from hazwatch.settings import MqttSettings
from hazwatch.tls import mqtt_ssl_context
from ingest.sparkplug import sparkplug_b_pb2 as pb
from tests.conftest import EXAMPLE_REGISTRY, RunService
from tests.helpers import eventually
from tests.pki import Pki, make_pki
from tests.servers import Mosquitto, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "simulators" / "examples" / "hazwatch.toml"
SERVICE_PASSWORD = "service-secret"
PASSWORDS = {
    "E001.MH01-gw": "gw-secret",
    "E002": "enterprise-secret",
    "E001.node1": "edge-secret",
    "E002.node2": "edge2-secret",
}
FORMATS = {  # `hazwatch gateway add` options of the Sparkplug edge nodes' logins
    "E001.node1": ["--format", "sparkplug-b"],  # group: the enterprise id, E001
    "E002.node2": ["--format", "sparkplug-b", "--group", "PlantB"],
}
SPARKPLUG = {  # the service decodes Sparkplug B too; group PlantB is E002's
    "kind": "sparkplug-b",
    "map": [{"match": {"group": "PlantB"}, "enterprise": "E002"}],
}


@dataclass
class Deployed:
    broker: Mosquitto
    gateway_port: int
    pki: Pki
    files: LoginFiles


def shipped_config(workdir: Path, pki: Pki, port: int, gateway_port: int) -> str:
    """deploy/mosquitto/mosquitto.conf with its paths and ports moved here."""
    text = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    text = text.replace("/mosquitto/config/", f"{workdir}/config/")
    text = text.replace("/mosquitto/data/", f"{workdir}/")
    text = text.replace("/mosquitto/certs/ca.pem", str(pki.ca))
    text = text.replace("/mosquitto/certs/server.pem", str(pki.server_cert))
    text = text.replace("/mosquitto/certs/server.key", str(pki.server_key))
    text = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", text, flags=re.MULTILINE)
    text = re.sub(
        r"^listener 8883$", f"listener {gateway_port} 127.0.0.1", text, flags=re.MULTILINE
    )
    text = text.replace("log_dest stdout", f"log_dest file {workdir}/mosquitto.log")
    assert not re.search(r"\s/mosquitto/", text)  # every container path moved
    return text + "user root\n"


@contextlib.contextmanager
def deploy(
    tmp_path: Path, logins: Mapping[str, tuple[str, list[str]]], save_login: Path | None = None
) -> Iterator[Deployed]:
    """Mosquitto from the shipped config, with hazwatch's user and ``logins`` (username →
    password, `hazwatch gateway add` options) added by the command as an operator would."""
    workdir = tmp_path / "mosquitto"
    config = workdir / "config"
    config.mkdir(parents=True)
    pki = make_pki(tmp_path / "pki")
    # hazwatch's own user, as mosquitto_passwd writes it; then the gateways, by the CLI
    (config / "passwd").write_text(f"hazwatch:{mosquitto_hash(SERVICE_PASSWORD)}\n")
    saving = ["--save-login", str(save_login)] if save_login is not None else []
    for login, (password, options) in logins.items():
        enterprise, _, gateway = login.partition(".")
        added = hazwatch(
            "gateway", "add", enterprise, *([gateway] if gateway else []), "--dir", str(config),
            "--config", str(EXAMPLE_CONFIG), "--password-stdin", *options, *saving,
            stdin=password,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        first = "spBv1.0/" if "sparkplug-b" in options else f"hz/v1/{enterprise}/"
        assert re.match(rf"added {re.escape(login)} \([a-z-]+\): may publish {first}", added.stdout)
        assert password not in added.stdout
    port, gateway_port = free_port(), free_port()
    broker = Mosquitto(workdir, port=port, config=shipped_config(workdir, pki, port, gateway_port))
    broker.start()
    try:
        yield Deployed(broker, gateway_port, pki, LoginFiles(config))
    finally:
        broker.stop()


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    logins = {login: (password, FORMATS.get(login, [])) for login, password in PASSWORDS.items()}
    with deploy(tmp_path, logins) as deployment:
        yield deployment


def hazwatch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "hazwatch.cli", *args],
        input=stdin + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def mosquitto(deployed: Deployed) -> Mosquitto:
    """run_service's broker: the deployed one (hazwatch on its own listener)."""
    return deployed.broker


class GatewayClient:
    """A gateway on the TLS listener, MQTT 5: every PUBACK's reason code is kept."""

    def __init__(self, deployed: Deployed, username: str, password: str) -> None:
        mqtt = MqttSettings(
            url=f"mqtts://localhost:{deployed.gateway_port}", ca_file=deployed.pki.ca
        )
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="hazwatch-test",  # the ingest's id: use_username_as_clientid overrides it
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.username_pw_set(username, password)
        context = mqtt_ssl_context(mqtt)
        assert context is not None
        self.client.tls_set_context(context)
        self.connected = threading.Event()
        self.refused: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.received: list[str] = []
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("localhost", deployed.gateway_port)
        self.client.loop_start()

    def _on_connect(
        self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            self.refused = reason
        self.connected.set()

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        self.messages.append((message.topic, bytes(message.payload)))
        self.received.append(message.topic)

    def subscribe(self, *topics: str) -> None:
        assert self.connected.wait(10)
        self.subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(10)

    def _on_publish(self, _c: object, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        self.pubacks[mid] = reason

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        assert self.connected.wait(10)
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        return self.pubacks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def reading(tag: str, value: float = 1.5) -> bytes:
    return orjson.dumps({"readings": [{"tag": tag, "v": value}]})


@pytest.fixture
async def service(run_service: RunService) -> Hazwatch:
    """The service, logged in as hazwatch's own user on its own listener."""
    return await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "mqtt.username": "hazwatch",
            "mqtt.password": SERVICE_PASSWORD,
            "ingest.codecs": [{"kind": "hz-json"}, SPARKPLUG],
        }
    )


@pytest.fixture
def logins(deployed: Deployed) -> Iterator[tuple[GatewayClient, GatewayClient]]:
    """A gateway of E001 (its own login) and an enterprise login of E002."""
    gateway = GatewayClient(deployed, "E001.MH01-gw", PASSWORDS["E001.MH01-gw"])
    enterprise = GatewayClient(deployed, "E002", PASSWORDS["E002"])
    try:
        yield gateway, enterprise
    finally:
        gateway.close()
        enterprise.close()


async def test_a_gateway_publishes_only_as_itself(
    service: Hazwatch, logins: tuple[GatewayClient, GatewayClient]
) -> None:
    gateway, enterprise = logins
    assert gateway.publish("hz/v1/E001/MH01-gw/data", reading("TK101_LT")).value == 0
    refused = {
        "another enterprise": ("hz/v1/E002/MH01-gw/data", reading("RC01")),
        "another gateway of its own": ("hz/v1/E001/MH02-gw/data", reading("R201_TT")),
        "its enterprise's alarm topic": ("hz/v1/E001/alarms", b"{}"),
    }
    for why, (topic, payload) in refused.items():
        reason = gateway.publish(topic, payload)
        assert str(reason) == "Not authorized", f"{why}: {topic} -> {reason}"
    # an enterprise login publishes as any of its gateways, never as another's
    assert enterprise.publish("hz/v1/E002/DB01-gw/data", reading("RC01", 10.0)).value == 0
    assert str(enterprise.publish("hz/v1/E001/MH01-gw/data", reading("TK101_LT"))) == (
        "Not authorized"
    )
    await eventually(
        lambda: service.metrics.value("hazwatch_ingest_readings_total") == 2,
        what="the two allowed readings ingested",
    )
    # the ingest was not kicked off by a gateway using its client id
    assert service.source.connected
    assert service.metrics.value("hazwatch_ingest_readings_total") == 2


async def test_a_gateway_reads_nothing_but_its_own_commands(
    service: Hazwatch, logins: tuple[GatewayClient, GatewayClient]
) -> None:
    spy, other = logins
    assert spy.connected.wait(10)
    spy.client.subscribe("hz/v1/#", qos=1)
    assert spy.subscribed.wait(10)
    # E002 data, and the HH alarm hazwatch publishes on hz/v1/E002/alarms
    assert other.publish("hz/v1/E002/DB01-gw/data", reading("RC01", 900.0)).value == 0
    await eventually(
        lambda: any(a.enterprise == "E002" for a in service.journal.list_alarms()),
        what="the alarm raised",
    )
    await service.alarms.settled()
    await eventually(
        lambda: (
            service.metrics.value(
                "hazwatch_notifications_total", {"channel": "mqtt", "result": "delivered"}
            )
            >= 1
        ),
        what="the alarm published",
    )
    assert other.publish("hz/v1/E002/DB01-gw/status", b"online").value == 0
    assert spy.received == []


# --- Sparkplug B: edge nodes of two enterprises, and hazwatch as their host -----------------


def spb(*metrics: tuple[str | None, int, float], seq: int = 0) -> bytes:
    """A Sparkplug payload of Double metrics (name or None, alias, value)."""
    payload = pb.Payload(timestamp=int(time.time() * 1000), seq=seq)
    for name, alias, value in metrics:
        metric = payload.metrics.add(alias=alias, double_value=value)
        if name is not None:
            metric.name = name
            metric.datatype = 10
    return payload.SerializeToString()


@pytest.fixture
def edge_nodes(deployed: Deployed) -> Iterator[tuple[GatewayClient, GatewayClient]]:
    """E001's edge node (group E001) and E002's (group PlantB), each with its login."""
    nodes = (
        GatewayClient(deployed, "E001.node1", PASSWORDS["E001.node1"]),
        GatewayClient(deployed, "E002.node2", PASSWORDS["E002.node2"]),
    )
    try:
        yield nodes
    finally:
        for node in nodes:
            node.close()


async def test_a_sparkplug_edge_node_publishes_only_as_itself_and_hazwatch_is_its_host(
    service: Hazwatch, edge_nodes: tuple[GatewayClient, GatewayClient]
) -> None:
    node1, node2 = edge_nodes
    # every command topic and every host's STATE: the ACL lets through only its own
    node1.subscribe("spBv1.0/+/NCMD/+", "spBv1.0/+/DCMD/+/+", "spBv1.0/STATE/+")
    node2.subscribe("spBv1.0/PlantB/NCMD/node2")
    # hazwatch's user publishes the host's STATE (retained), which edge nodes may read
    await eventually(
        lambda: any(t == "spBv1.0/STATE/hazwatch" for t, _ in node1.messages),
        what="the host's STATE at the edge node",
    )
    state = orjson.loads(next(p for t, p in node1.messages if t == "spBv1.0/STATE/hazwatch"))
    assert state["online"] is True
    assert node1.publish("spBv1.0/E001/NBIRTH/node1", spb(("TK101_LT", 1, 3.25))).value == 0
    refused = {
        "another enterprise's node": "spBv1.0/PlantB/NDATA/node2",
        "its node id in another enterprise's group": "spBv1.0/PlantB/NBIRTH/node1",
        "another node of its own group": "spBv1.0/E001/NDATA/node9",
        "a device of another node": "spBv1.0/E001/DDATA/node9/plc",
        "a command (hazwatch's to send)": "spBv1.0/E001/NCMD/node1",
        "the host's STATE": "spBv1.0/STATE/hazwatch",
    }
    for why, topic in refused.items():
        reason = node1.publish(topic, spb(("TK101_LT", 1, 99.0), seq=1))
        assert str(reason) == "Not authorized", f"{why}: {topic} -> {reason}"
    await eventually(
        lambda: (r := service.latest.get("E001", "TK101_LT")) is not None and r.value == 3.25,
        what="the NBIRTH's reading stored",
    )
    # hazwatch's user sends rebirth requests: node1's DATA names an alias its BIRTH did
    # not declare; node2's DATA comes before any BIRTH
    assert node1.publish("spBv1.0/E001/NDATA/node1", spb((None, 7, 1.0), seq=1)).value == 0
    assert node2.publish("spBv1.0/PlantB/NDATA/node2", spb((None, 1, 2.0), seq=1)).value == 0
    await eventually(
        lambda: (
            any(t == "spBv1.0/PlantB/NCMD/node2" for t, _ in node2.messages)
            and any(t == "spBv1.0/E001/NCMD/node1" for t, _ in node1.messages)
        ),
        what="both rebirth requests delivered",
    )
    assert node2.publish("spBv1.0/PlantB/NBIRTH/node2", spb(("RC01", 1, 12.5))).value == 0
    await eventually(
        lambda: (r := service.latest.get("E002", "RC01")) is not None and r.value == 12.5,
        what="E002's node stored under E002",
    )
    # node1 subscribed to every command: it got its own, never node2's
    assert {t for t, _ in node1.messages} == {"spBv1.0/STATE/hazwatch", "spBv1.0/E001/NCMD/node1"}
    assert service.latest.get("E001", "TK101_LT").value == 3.25  # type: ignore[union-attr]


def test_a_wrong_password_and_an_unknown_login_are_refused(deployed: Deployed) -> None:
    for username, password in (("E001.MH01-gw", "guess"), ("E009", "x")):
        client = GatewayClient(deployed, username, password)
        try:
            assert client.connected.wait(10)
            assert client.refused is not None
            assert str(client.refused) in {"Bad user name or password", "Not authorized"}
        finally:
            client.close()


def test_list_and_remove_keep_the_acl_in_step(deployed: Deployed) -> None:
    directory = str(deployed.files.passwd.parent)
    listed = hazwatch("gateway", "list", "--dir", directory)
    assert listed.returncode == 0
    assert re.search(r"^E001\.MH01-gw +hz-json +E001/MH01-gw$", listed.stdout, re.MULTILINE)
    assert re.search(r"^E002 +hz-json +E002/\(any gateway\)$", listed.stdout, re.MULTILINE)
    assert re.search(
        r"^E002\.node2 +sparkplug-b +E002/node2 group=PlantB$", listed.stdout, re.MULTILINE
    )
    assert hazwatch("gateway", "remove", "E002", "--dir", directory).returncode == 0
    acl = deployed.files.acl.read_text()
    assert "user E002\n" not in acl
    assert "user E001.MH01-gw\n" in acl
    assert "hazwatch" in deployed.files.entries()  # a user it did not write is kept
    unknown = hazwatch(
        "gateway", "add", "E999", "x", "--dir", directory, "--config", str(EXAMPLE_CONFIG)
    )
    assert unknown.returncode == 2
    assert unknown.stderr == "error: enterprise 'E999' is not in the registry\n"


def test_the_shipped_acl_is_what_the_command_writes_for_no_gateways(tmp_path: Path) -> None:
    files = LoginFiles(tmp_path)
    files.write_acl()
    assert files.acl.read_text() == (ROOT / "deploy" / "mosquitto" / "acl").read_text()
