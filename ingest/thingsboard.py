"""The ThingsBoard IoT Gateway's MQTT API: telemetry of its devices, and their connects.

The gateway publishes for the devices behind it (ThingsBoard's "Gateway MQTT API")::

    v1/gateway/telemetry   {"Device A": [{"ts": 1483228800000, "values": {"temperature": 42}}],
                            "Device B": [{"values": {"temperature": 42}}]}
    v1/gateway/connect     {"device": "Device A", "type": "default"}
    v1/gateway/disconnect  {"device": "Device A"}

``ts`` is epoch milliseconds (absent: the receive time). Each device is a gateway in
hazwatch (``connect``/``disconnect`` are its online/offline, so GATEWAY_OFFLINE is
per device); one telemetry message becomes one part per device. Topics are recognised
by their last three levels, so a deployment can prefix them (``E001/v1/gateway/...``,
e.g. with a Mosquitto ``mount_point`` per enterprise listener) and map the
enterprise from ``{topic[0]}``.

Fields for ``[[ingest.codecs.map]]``: ``device`` (the name as sent), ``device_id`` (the
name with every character outside ``A-Z a-z 0-9 _ -`` as ``_``, at most 64), ``key``
(the telemetry key). Defaults: gateway ``{device_id}``, tag ``{key}``; the enterprise
must be given.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from hazwatch.models import GatewayState
from hazwatch.settings import CodecSettings, MappingRule
from ingest.codec import CodecContext, Problem, describe, printable
from ingest.gatewayjson import GatewayJsonCodec, Walk, epoch_ms, object_doc

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")
_STATES = {"connect": GatewayState.ONLINE, "disconnect": GatewayState.OFFLINE}


def device_id(name: str) -> str:
    """A device name as an id: ``device_id("Device A/1") == "Device_A_1"``."""
    return _NOT_ID.sub("_", name)[:64]


class ThingsBoardCodec(GatewayJsonCodec):
    kind = "thingsboard"
    FIELDS = ("device", "device_id", "key")
    TOPICS = ("v1/gateway/telemetry", "v1/gateway/connect", "v1/gateway/disconnect")
    MAP: ClassVar[tuple[MappingRule, ...]] = (MappingRule(gateway="{device_id}", tag="{key}"),)

    def walk(self, walk: Walk, doc: Any) -> None:
        last = walk.topic[-1]
        if walk.topic[-3:-1] != ["v1", "gateway"] or last not in ("telemetry", *_STATES):
            raise Problem(
                "bad_topic",
                "expected .../v1/gateway/telemetry, connect or disconnect, got "
                f"{describe(walk.decoded.topic, 80)}",
            )
        if last in _STATES:
            doc = object_doc(doc, '{"device": "..."}')
            name = doc.get("device")
            if type(name) is not str or not name:
                raise Problem("bad_structure", f"device: expected a name, got {describe(name)}")
            target = walk.target(name, {"device": name, "device_id": device_id(name)})
            if target is not None:
                walk.status(target, _STATES[last])
            return
        doc = object_doc(doc, '{"<device>": [{"ts", "values"}]}')
        for name, entries in doc.items():
            fields = {"device": name, "device_id": device_id(name)}
            if not isinstance(entries, list):
                walk.reject(
                    Problem(
                        "bad_structure",
                        f"{printable(name, 80)}: expected an array of "
                        f'{{"ts", "values"}}, got {describe(entries)}',
                    )
                )
                continue
            target = walk.target(name, fields)
            if target is None:
                continue
            for n, entry in enumerate(entries):
                values = entry.get("values") if isinstance(entry, dict) else None
                if not isinstance(values, dict):
                    walk.reject(
                        Problem(
                            "bad_structure",
                            f'{printable(name, 80)}[{n}]: expected {{"ts", "values": {{...}}}}, '
                            f"got {describe(entry)}",
                        )
                    )
                    continue
                ts_ms = epoch_ms(entry["ts"], 1) if "ts" in entry else None
                for key, raw in values.items():
                    walk.reading(target, name, fields, ("key", key), raw, ts_ms)
            walk.part(target)


def build(entry: CodecSettings, where: str, context: CodecContext) -> ThingsBoardCodec:
    return ThingsBoardCodec(entry, where, context.limits)
