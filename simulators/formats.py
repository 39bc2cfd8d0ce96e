"""Simulated gateways speak every format hazwatch decodes: hz-json, Sparkplug B, the
gateway JSON of EMQ Neuron, ThingsBoard and Telegraf, and a vendor's field-map JSON.

A :class:`GatewayFormat` is one gateway's encoder: what it sends per sample, what it
registers as its MQTT will, what it says on connecting and on a clean close, and what
a broken message of it looks like. :func:`codec_entry` is the ``[[ingest.codecs]]``
entry that decodes what the simulator publishes in a format back to the same
enterprise, gateway (``{installation}-gw``) and tags, so a scenario's expectations hold
whatever the gateways speak, and each gateway's topics are those ``hazwatch gateway
add ENTERPRISE GATEWAY --format F`` allows by default (hazwatch/gatewaytopics.py)::

    hz-json       hz/v1/{enterprise}/{gateway}/data ...          (gateways.py)
    sparkplug-b   spBv1.0/{enterprise}/NBIRTH|NDATA|NDEATH/{gateway}, metrics named by tag
    neuron        /neuron/{enterprise}/{gateway}/sim   values-format (2.4 topic shape:
                  north app = enterprise, driver = gateway, group "sim")
    thingsboard   {enterprise}/v1/gateway/telemetry|connect|disconnect, device = gateway
    telegraf      telegraf/{gateway}/{enterprise}   batch layout, timestamps in ms
    field-map     vendor/{enterprise}/{gateway}/up  {"devId", "ts", "data": [{"id", "val"}]}

What each format can say follows the real gateways: a ``bad`` reading is a Sparkplug
Quality 0 and a Neuron read error; ThingsBoard, Telegraf and the field map have no
quality, so such a reading is not sent. Only hz-json and Sparkplug have a will (a
lost link is ``offline`` at once); the others' outages are found by their silence.
A malformed message is the format's normal message cut in half (``empty``: no bytes;
``unknown_tag``: a tag the registry lacks) — hz-json has its own kinds.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from hazwatch.models import Point, PointKind, Quality
from ingest.sparkplug import sparkplug_b_pb2 as pb
from ingest.sparkplug.host import REBIRTH
from simulators.gateways import MalformedKind, Message, SiteGateway

FormatName = Literal["hz-json", "sparkplug-b", "neuron", "thingsboard", "telegraf", "field-map"]
FORMATS: tuple[FormatName, ...] = (
    "hz-json",
    "sparkplug-b",
    "neuron",
    "thingsboard",
    "telegraf",
    "field-map",
)
SIM_HOST_ID = "hazwatch"
Sample = list[tuple[Point, float, Quality]]

_DOUBLE, _BOOLEAN, _INT64 = 10, 11, 4


def codec_entry(name: FormatName) -> dict[str, Any]:
    """The ``[[ingest.codecs]]`` entry that decodes the simulator's ``name`` format."""
    entries: dict[str, dict[str, Any]] = {
        "hz-json": {"kind": "hz-json"},
        "sparkplug-b": {"kind": "sparkplug-b", "options": {"host_id": SIM_HOST_ID}},
        "neuron": {
            "kind": "neuron",
            "topics": ["/neuron/+/+/sim"],
            "map": [{"enterprise": "{topic[2]}"}],
        },
        "thingsboard": {
            "kind": "thingsboard",
            "topics": [f"+/v1/gateway/{t}" for t in ("telemetry", "connect", "disconnect")],
            "map": [{"enterprise": "{topic[0]}"}],
        },
        "telegraf": {
            "kind": "telegraf",
            "topics": ["telegraf/+/+"],
            "map": [{"enterprise": "{topic[2]}", "tag": "{field}"}],
            "options": {"timestamp_units": "ms"},
        },
        "field-map": {
            "kind": "field-map",
            "topics": ["vendor/+/+/up"],
            "map": [{"enterprise": "{topic[1]}"}],
            "options": {"readings": "data", "tag": "id", "value": "val", "device": "devId"},
        },
    }
    return entries[name]


def _value(point: Point, value: float) -> float | bool:
    return value >= 0.5 if point.kind is PointKind.STATE else value


def _cut(message: Message) -> Message:
    return Message(message.topic, message.payload[: len(message.payload) // 2])


class GatewayFormat:
    """One gateway's encoder in a format other than hz-json (see the module docstring)."""

    name: FormatName

    def __init__(self, gateway: SiteGateway) -> None:
        self.gateway = gateway

    def will(self) -> Message | None:
        return None

    def hello(self) -> list[Message]:
        """Sent once connected."""
        return []

    def goodbye(self) -> list[Message]:
        """Sent before a clean close."""
        return []

    def commands(self) -> list[str]:
        """Topics the gateway listens on (Sparkplug: its NCMD)."""
        return []

    def reconnect(self) -> None:
        """The timeline connects the gateway again (a new MQTT session)."""

    def on_command(self, topic: str, payload: bytes) -> None:
        """A message on a command topic (from the MQTT thread)."""

    def sample(self, values: Sample, ts: int) -> list[Message]:
        raise NotImplementedError

    def malformed(self, kind: MalformedKind, ts: int) -> Message:
        if kind == "empty":
            return Message(self.sample_topic(), b"")
        first = self.gateway.points[0]
        if kind == "unknown_tag":
            ghost = first.model_copy(update={"tag": "NOT_REGISTERED_01"})
            return self.sample([(ghost, 1.0, Quality.GOOD)], ts)[-1]
        return _cut(self.sample([(first, 1.0, Quality.GOOD)], ts)[-1])

    def sample_topic(self) -> str:
        raise NotImplementedError


class SparkplugFormat(GatewayFormat):
    """A Sparkplug B 3.0 edge node: group = enterprise, edge node = gateway, one metric
    per point (alias = its index). A new MQTT session counts ``bdSeq`` up; the NBIRTH
    goes out with the first sample after connecting, and again after a rebirth request."""

    name = "sparkplug-b"

    def __init__(self, gateway: SiteGateway) -> None:
        super().__init__(gateway)
        self.prefix = f"spBv1.0/{gateway.enterprise}"
        self.bd_seq = 0
        self.seq = 0
        self.needs_birth = True
        self.rebirths_asked = 0
        self.aliases = {p.tag: n for n, p in enumerate(gateway.points, start=1)}

    def sample_topic(self) -> str:
        return f"{self.prefix}/NDATA/{self.gateway.gateway}"

    def reconnect(self) -> None:
        self.bd_seq = (self.bd_seq + 1) % 256  # a new MQTT session, a new bdSeq
        self.needs_birth = True

    def will(self) -> Message:
        return Message(f"{self.prefix}/NDEATH/{self.gateway.gateway}", self._death())

    def goodbye(self) -> list[Message]:
        return [Message(f"{self.prefix}/NDEATH/{self.gateway.gateway}", self._death())]

    def commands(self) -> list[str]:
        return [f"{self.prefix}/NCMD/{self.gateway.gateway}"]

    def on_command(self, topic: str, payload: bytes) -> None:  # noqa: ARG002 - one topic
        command = pb.Payload.FromString(payload)
        if any(m.name == REBIRTH and m.boolean_value for m in command.metrics):
            self.rebirths_asked += 1
            self.needs_birth = True

    def sample(self, values: Sample, ts: int) -> list[Message]:
        birth = self.needs_birth
        self.needs_birth = False
        self.seq = 0 if birth else (self.seq + 1) % 256
        payload = pb.Payload(timestamp=ts, seq=self.seq)
        if birth:
            self._metric(payload, "bdSeq", _INT64, ts).long_value = self.bd_seq
            self._metric(payload, REBIRTH, _BOOLEAN, ts).boolean_value = False
        for point, value, quality in values:
            datatype = _BOOLEAN if point.kind is PointKind.STATE else _DOUBLE
            metric = self._metric(payload, point.tag if birth else "", datatype if birth else 0, ts)
            metric.alias = self.aliases.get(point.tag, 0)
            if datatype == _BOOLEAN:
                metric.boolean_value = value >= 0.5
            else:
                metric.double_value = value
            if quality is not Quality.GOOD:
                metric.properties.keys.append("Quality")
                code = 0 if quality is Quality.BAD else 500
                metric.properties.values.add(type=3, int_value=code)
        kind = "NBIRTH" if birth else "NDATA"
        return [
            Message(f"{self.prefix}/{kind}/{self.gateway.gateway}", payload.SerializeToString())
        ]

    def malformed(self, kind: MalformedKind, ts: int) -> Message:
        if kind == "unknown_tag":  # an alias the BIRTH did not declare
            payload = pb.Payload(timestamp=ts, seq=(self.seq + 1) % 256)
            self.seq = payload.seq
            metric = self._metric(payload, "", 0, ts)
            metric.alias = 9999
            metric.double_value = 1.0
            return Message(self.sample_topic(), payload.SerializeToString())
        if kind == "empty":
            return Message(self.sample_topic(), b"")
        return Message(self.sample_topic(), b"\x0a\xff\xff\xff\xff")  # not a Payload

    def _death(self) -> bytes:
        payload = pb.Payload(timestamp=0)
        self._metric(payload, "bdSeq", _INT64, 0).long_value = self.bd_seq
        return payload.SerializeToString()

    @staticmethod
    def _metric(payload: Any, name: str, datatype: int, ts: int) -> Any:
        metric = payload.metrics.add()
        if name:
            metric.name = name
        if datatype:
            metric.datatype = datatype
        metric.timestamp = ts
        return metric


class NeuronFormat(GatewayFormat):
    """EMQ Neuron values-format; a ``bad`` reading is a read error (code 2014)."""

    name = "neuron"

    def sample_topic(self) -> str:
        return f"/neuron/{self.gateway.enterprise}/{self.gateway.gateway}/sim"

    def sample(self, values: Sample, ts: int) -> list[Message]:
        good = {p.tag: _value(p, v) for p, v, q in values if q is not Quality.BAD}
        errors = {p.tag: 2014 for p, _, q in values if q is Quality.BAD}
        doc = {
            "timestamp": ts,
            "node": self.gateway.gateway,
            "group": "sim",
            "values": good,
            "errors": errors,
        }
        return [Message(self.sample_topic(), orjson.dumps(doc))]


class ThingsBoardFormat(GatewayFormat):
    """The ThingsBoard IoT Gateway with one device (the gateway id); connect and
    disconnect announce it."""

    name = "thingsboard"

    def sample_topic(self) -> str:
        return f"{self.gateway.enterprise}/v1/gateway/telemetry"

    def _status(self, kind: str) -> Message:
        topic = f"{self.gateway.enterprise}/v1/gateway/{kind}"
        return Message(topic, orjson.dumps({"device": self.gateway.gateway}))

    def hello(self) -> list[Message]:
        return [self._status("connect")]

    def goodbye(self) -> list[Message]:
        return [self._status("disconnect")]

    def sample(self, values: Sample, ts: int) -> list[Message]:
        sent = {p.tag: _value(p, v) for p, v, q in values if q is not Quality.BAD}
        doc = {self.gateway.gateway: [{"ts": ts, "values": sent}]}
        return [Message(self.sample_topic(), orjson.dumps(doc))]


class TelegrafFormat(GatewayFormat):
    """Telegraf's MQTT output, JSON batch layout, ``json_timestamp_units = "1ms"``."""

    name = "telegraf"

    def sample_topic(self) -> str:
        return f"telegraf/{self.gateway.gateway}/{self.gateway.enterprise}"

    def sample(self, values: Sample, ts: int) -> list[Message]:
        fields = {p.tag: _value(p, v) for p, v, q in values if q is not Quality.BAD}
        metric = {
            "fields": fields,
            "name": "modbus",
            "tags": {"host": self.gateway.gateway},
            "timestamp": ts,
        }
        return [Message(self.sample_topic(), orjson.dumps({"metrics": [metric]}))]


class FieldMapFormat(GatewayFormat):
    """A smart-electricity vendor's own JSON, as ``codec_entry("field-map")`` describes."""

    name = "field-map"

    def sample_topic(self) -> str:
        return f"vendor/{self.gateway.enterprise}/{self.gateway.gateway}/up"

    def sample(self, values: Sample, ts: int) -> list[Message]:
        data = [{"id": p.tag, "val": _value(p, v)} for p, v, q in values if q is not Quality.BAD]
        doc = {"devId": self.gateway.gateway, "ts": ts, "data": data}
        return [Message(self.sample_topic(), orjson.dumps(doc))]


_ENCODERS: dict[str, type[GatewayFormat]] = {
    "sparkplug-b": SparkplugFormat,
    "neuron": NeuronFormat,
    "thingsboard": ThingsBoardFormat,
    "telegraf": TelegrafFormat,
    "field-map": FieldMapFormat,
}


def gateway_format(name: FormatName, gateway: SiteGateway) -> GatewayFormat | None:
    """The encoder of ``gateway`` in ``name``; ``None`` for hz-json (gateways.py's own)."""
    encoder = _ENCODERS.get(name)
    return None if encoder is None else encoder(gateway)
