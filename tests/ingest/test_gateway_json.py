"""The JSON codecs of common gateways, on the payloads their own documentation shows.

Golden payloads are the documented shapes (sources next to each); the documents'
examples are copied as data — only trailing commas some of Neuron's pages carry
(invalid JSON) are left out.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from hazwatch.errors import ConfigError
from hazwatch.models import GatewayState, Quality
from hazwatch.settings import CodecSettings, IngestSettings, MappingRule
from ingest.codec import Decoded, PayloadCodec
from ingest.codecs import build_codecs

NOW = 1_763_820_000_000


def codec(kind: str, enterprise: str = "E001", **entry: Any) -> PayloadCodec:
    entry.setdefault("map", (MappingRule(enterprise=enterprise),))
    limits = IngestSettings(codecs=(CodecSettings(kind=kind, **entry),), max_readings=50)
    [built] = build_codecs(limits)
    return built


def decode(c: PayloadCodec, topic: str, payload: Any) -> Decoded:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return c.decode(topic, raw, NOW)


def readings(decoded: Decoded) -> list[tuple[str, str, str, float, int]]:
    return [
        (r.enterprise, r.gateway, r.tag, r.value, r.ts_ms)
        for part in decoded.parts()
        for r in part.readings
    ]


def reasons(decoded: Decoded) -> list[str]:
    return [r.reason for r in decoded.rejections]


# --- EMQ Neuron ------------------------------------------------------------------------------
# https://docs.emqx.com/en/neuron/v2.2/reference/mqtt-api.html ("Upload Data", default topic
#   /neuron/{node_name}/upload; fields node, group)
# https://docs.emqx.com/en/neuron/v2.0/mqtt.html (2.0: node_name, group_name; topic
#   neuron/{client-id}/upload)
# https://docs.emqx.com/en/neuron/v2.4/configuration/north-apps/mqtt/api.html (2.4 on: topic
#   /neuron/{node_name}/{driver_name}/{group_name})

NEURON_VALUES = {
    "node": "modbus",
    "group": "grp",
    "timestamp": 1650006388943,
    "values": {"tag0": 123},
    "errors": {"tag1": 2014},
}
NEURON_TAGS = {
    "node": "modbus",
    "group": "grp",
    "timestamp": 1647497389075,
    "tags": [{"name": "tag0", "value": 123}, {"name": "tag1", "error": 2014}],
}
NEURON_20_TAGS = {
    "node_name": "modbus-tcp-2",
    "group_name": "group-1",
    "timestamp": 1647497389075,
    "tags": [{"value": 123, "name": "data1"}, {"name": "data2", "error": 2014}],
}


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("/neuron/app/modbus/grp", NEURON_VALUES, ("modbus", "tag0", 1650006388943, "tag1")),
        ("/neuron/app/upload", NEURON_TAGS, ("modbus", "tag0", 1647497389075, "tag1")),
        ("neuron/app/upload", NEURON_20_TAGS, ("modbus-tcp-2", "data1", 1647497389075, "data2")),
    ],
    ids=["2.4-values-format", "2.2-tags-format", "2.0-tags-format"],
)
def test_neuron_values_and_tags_formats(
    topic: str, payload: dict[str, Any], expected: tuple[str, str, int, str]
) -> None:
    gateway, tag, ts, failed = expected
    decoded = decode(codec("neuron"), topic, payload)
    assert readings(decoded) == [("E001", gateway, tag, 123.0, ts)]
    assert reasons(decoded) == ["source_error"]  # the tag Neuron could not read
    assert failed in decoded.rejections[0].detail
    assert "2014" in decoded.rejections[0].detail


def test_neuron_read_responses_on_the_same_topic_shape_are_left_aside() -> None:
    decoded = decode(codec("neuron"), "/neuron/app/read/resp", {"uuid": "x", "tags": []})
    assert (decoded.readings, decoded.rejections, decoded.gateway) == ([], [], None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"group": "grp", "values": {}}, "bad_structure"),  # no node
        ({"node": "n", "group": "g", "values": []}, "bad_structure"),
        ({"node": "n", "group": "g", "tags": [{"value": 1}]}, "bad_structure"),
        ({"node": "n", "group": "g"}, "bad_structure"),  # neither format
        ({"node": "n", "group": "g", "timestamp": "yesterday", "values": {}}, "bad_ts"),
        (b"[1, 2", "json"),
        (b'{"node": "n", "node": "m"}', "duplicate_key"),
    ],
)
def test_neuron_json_not_of_its_format_is_one_rejection(payload: Any, reason: str) -> None:
    decoded = decode(codec("neuron"), "/neuron/app/upload", payload)
    assert reasons(decoded) == [reason]
    assert decoded.readings == []


def test_one_value_that_is_no_number_costs_only_itself() -> None:
    payload = {**NEURON_VALUES, "values": {"tag0": 1.5, "s": "hello!", "b": True}, "errors": {}}
    decoded = decode(codec("neuron"), "/neuron/app/upload", payload)
    assert [(r[2], r[3]) for r in readings(decoded)] == [("tag0", 1.5), ("b", 1.0)]
    assert reasons(decoded) == ["bad_value"]
    assert decoded.rejections[0].detail.startswith("s.value: expected a finite number")


# --- ThingsBoard IoT Gateway ------------------------------------------------------------------
# https://thingsboard.io/docs/reference/gateway-api/telemetry/ (v1/gateway/telemetry)
# https://thingsboard.io/docs/reference/gateway-mqtt-api/ (v1/gateway/connect, disconnect:
#   {"device": "Device A"})

TB_TELEMETRY = {
    "Device A": [
        {"ts": 1483228800000, "values": {"temperature": 42, "humidity": 80}},
        {"ts": 1483228801000, "values": {"temperature": 43, "humidity": 82}},
    ],
    "Device B": [{"ts": 1483228800000, "values": {"temperature": 42, "humidity": 80}}],
}


def test_thingsboard_telemetry_is_one_part_per_device() -> None:
    decoded = decode(codec("thingsboard"), "v1/gateway/telemetry", TB_TELEMETRY)
    assert [(p.gateway, len(p.readings)) for p in decoded.parts()] == [
        ("Device_A", 4),
        ("Device_B", 2),
    ]
    assert readings(decoded)[:2] == [
        ("E001", "Device_A", "temperature", 42.0, 1483228800000),
        ("E001", "Device_A", "humidity", 80.0, 1483228800000),
    ]
    assert decoded.rejections == []


def test_thingsboard_without_ts_takes_the_receive_time() -> None:
    payload = {"Device A": [{"values": {"temperature": 23.5}}]}
    decoded = decode(codec("thingsboard"), "v1/gateway/telemetry", payload)
    assert decoded.readings[0].ts_ms == NOW
    assert decoded.readings[0].receive_time


@pytest.mark.parametrize(("kind", "state"), [("connect", "online"), ("disconnect", "offline")])
def test_thingsboard_connect_and_disconnect_are_the_devices_status(kind: str, state: str) -> None:
    decoded = decode(codec("thingsboard"), f"v1/gateway/{kind}", {"device": "Device A"})
    assert decoded.status is not None
    assert (decoded.gateway, decoded.status.state) == ("Device_A", GatewayState(state))


def test_thingsboard_enterprise_from_a_topic_prefix() -> None:
    c = codec(
        "thingsboard",
        topics=("+/v1/gateway/telemetry",),
        map=(MappingRule(enterprise="{topic[0]}"),),
    )
    decoded = decode(c, "E002/v1/gateway/telemetry", {"Pump 1": [{"values": {"P": 1}}]})
    assert readings(decoded) == [("E002", "Pump_1", "P", 1.0, NOW)]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("v1/gateway/telemetry", [1], "bad_structure"),
        ("v1/gateway/connect", {"name": "Device A"}, "bad_structure"),
        ("v1/gateway/telemetry", {"Device A": [{"ts": "soon", "values": {"t": 1}}]}, "bad_ts"),
    ],
)
def test_thingsboard_json_not_of_its_format_is_one_rejection(
    topic: str, payload: Any, reason: str
) -> None:
    assert reasons(decode(codec("thingsboard"), topic, payload)) == [reason]


def test_thingsboard_a_device_entry_of_the_wrong_shape_costs_only_that_device() -> None:
    payload = {"Device A": {"temperature": 1}, "Device B": [{"values": {"temperature": 2}}]}
    decoded = decode(codec("thingsboard"), "v1/gateway/telemetry", payload)
    assert readings(decoded) == [("E001", "Device_B", "temperature", 2.0, NOW)]
    assert reasons(decoded) == ["bad_structure"]


# --- Telegraf JSON serializer ------------------------------------------------------------------
# https://docs.influxdata.com/telegraf/v1/data_formats/output/json/ (standard and batch
#   format; json_timestamp_units default "1s")

TELEGRAF_SINGLE = {
    "fields": {"field_1": 30, "field_2": 4, "field_N": 59, "n_images": 660},
    "name": "docker",
    "tags": {"host": "raynor"},
    "timestamp": 1458229140,
}


def test_telegraf_single_metric_in_seconds() -> None:
    decoded = decode(codec("telegraf"), "telegraf/raynor/docker", TELEGRAF_SINGLE)
    assert readings(decoded)[0] == ("E001", "raynor", "docker.field_1", 30.0, 1458229140000)
    assert len(decoded.readings) == 4


def test_telegraf_batch_with_milliseconds_configured() -> None:
    metric = {**TELEGRAF_SINGLE, "timestamp": 1458229140123}
    other = {**metric, "tags": {"host": "kerrigan"}}
    c = codec("telegraf", options={"timestamp_units": "ms"})
    decoded = decode(c, "telegraf/raynor/docker", {"metrics": [metric, other]})
    assert [(p.gateway, len(p.readings)) for p in decoded.parts()] == [
        ("raynor", 4),
        ("kerrigan", 4),
    ]
    assert decoded.readings[0].ts_ms == 1458229140123


def test_telegraf_one_broken_metric_of_a_batch_costs_only_itself() -> None:
    decoded = decode(
        codec("telegraf"), "telegraf/h/p", {"metrics": [TELEGRAF_SINGLE, {"name": "x"}]}
    )
    assert len(decoded.readings) == 4
    assert reasons(decoded) == ["bad_structure"]
    assert decoded.rejections[0].detail.startswith("metrics[1]: ")


def test_telegraf_without_the_tag_a_rule_needs_is_unmapped() -> None:
    decoded = decode(codec("telegraf"), "telegraf/h/p", {**TELEGRAF_SINGLE, "tags": {}})
    assert reasons(decoded) == ["unmapped"]
    assert "host" in decoded.rejections[0].detail


# --- field map (vendors' own JSON) ------------------------------------------------------------


def field_map(**options: Any) -> PayloadCodec:
    return codec(
        "field-map",
        topics=("vendor/+/up",),
        options={
            "readings": "data",
            "tag": "id",
            "value": "val",
            "unit": "unit",
            "device": "devId",
            "time_unit": "s",
            **options,
        },
    )


def test_field_map_list_layout_with_units_scaled() -> None:
    payload = {
        "devId": "DL-0001",
        "ts": 1763820000,
        "data": [{"id": "Ia", "val": 12.3, "unit": "A"}, {"id": "IL", "val": 35, "unit": "mA"}],
    }
    decoded = decode(field_map(units={"mA": 1, "A": 1000}), "vendor/x/up", payload)
    assert readings(decoded) == [
        ("E001", "DL-0001", "Ia", 12300.0, 1763820000000),
        ("E001", "DL-0001", "IL", 35.0, 1763820000000),
    ]


def test_field_map_object_layout_in_milliseconds_with_quoted_numbers() -> None:
    c = codec(
        "field-map",
        topics=("vendor/+/up",),
        options={
            "readings": "values",
            "device": "sn",
            "message_time": "time",
            "time_unit": "ms",
            "numeric_strings": True,
        },
    )
    payload = {"sn": "DL-0002", "time": 1763820000123, "values": {"Ia": "12.3", "T1": 41.5}}
    decoded = decode(c, "vendor/x/up", payload)
    assert readings(decoded) == [
        ("E001", "DL-0002", "Ia", 12.3, 1763820000123),
        ("E001", "DL-0002", "T1", 41.5, 1763820000123),
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"devId": "d", "rows": []}, "bad_structure"),  # no "data"
        ({"data": []}, "bad_structure"),  # no device
        ({"devId": "d", "data": [{"val": 1}]}, "bad_structure"),  # no tag
        ({"devId": "d", "data": [{"id": "a", "val": 1, "unit": "kV"}]}, "bad_unit"),
        ({"devId": "d", "data": [{"id": "a", "val": "1"}]}, "bad_value"),  # quoted: not allowed
        ({"devId": "bad id", "data": []}, "bad_id"),
    ],
)
def test_field_map_json_not_of_its_declared_format(payload: Any, reason: str) -> None:
    decoded = decode(field_map(units={"A": 1}), "vendor/x/up", payload)
    assert reasons(decoded) == [reason]


# --- the shared promises --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["neuron", "thingsboard", "telegraf"])
@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"", "empty"), (b"\xff\xfe", "json"), (b"{" * 5000, "json"), (b"1" * 70_000, "too_large")],
)
def test_every_codec_rejects_garbage_with_a_reason_never_raises(
    kind: str, payload: bytes, reason: str
) -> None:
    c = codec(kind)
    topic = {"neuron": "/neuron/a/upload", "thingsboard": "v1/gateway/telemetry"}.get(
        kind, "telegraf/h/p"
    )
    decoded = c.decode(topic, payload, NOW)
    assert reasons(decoded) == [reason]
    assert decoded.readings == []


def test_a_message_with_more_readings_than_allowed_is_rejected() -> None:
    values = {f"t{n}": n for n in range(51)}
    decoded = decode(codec("neuron"), "/neuron/a/upload", {**NEURON_VALUES, "values": values})
    assert reasons(decoded)[0] == "too_many_readings"
    assert readings(decoded) == []


def test_a_tag_that_is_not_a_registry_tag_stays_a_reading_for_the_unknown_list() -> None:
    decoded = decode(
        codec("neuron"), "/neuron/a/upload", {**NEURON_VALUES, "values": {"温度 1": 20}}
    )
    assert [r.tag for r in decoded.readings] == ["温度 1"]
    assert decoded.readings[0].quality is Quality.GOOD


def test_tags_renames_a_produced_tag_to_the_registry_one() -> None:
    c = codec("neuron", tags={"温度 1": "TK101_TT"})
    decoded = decode(c, "/neuron/a/upload", {**NEURON_VALUES, "values": {"温度 1": 20}})
    assert [r.tag for r in decoded.readings] == ["TK101_TT"]


def test_rules_match_by_glob_and_fill_what_they_leave_out_from_the_next() -> None:
    c = codec(
        "neuron",
        map=(
            MappingRule(match={"node": "plc-a*"}, enterprise="E001", tag="A.{tag}"),
            MappingRule(enterprise="E002"),
        ),
    )
    a = decode(c, "/neuron/x/upload", {**NEURON_VALUES, "node": "plc-a1", "errors": {}})
    b = decode(c, "/neuron/x/upload", {**NEURON_VALUES, "node": "plc-b1", "errors": {}})
    assert readings(a) == [("E001", "plc-a1", "A.tag0", 123.0, 1650006388943)]
    assert readings(b) == [("E002", "plc-b1", "tag0", 123.0, 1650006388943)]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "modbus"}, "ingest.codecs[0].kind: unknown codec kind 'modbus'"),
        (
            {"kind": "hz-json", "topics": ("x/#",)},
            "ingest.codecs[0] (hz-json): hz-json names enterprise, gateway and tag",
        ),
        ({"kind": "neuron"}, "ingest.codecs[0] (neuron): no map rule gives the enterprise"),
        (
            {"kind": "neuron", "map": (MappingRule(enterprise="{plant}"),)},
            "ingest.codecs[0] (neuron).map[0].enterprise: unknown field 'plant'",
        ),
        (
            {"kind": "telegraf", "map": (MappingRule(enterprise="E"),), "options": {"u": 1}},
            "ingest.codecs[0] (telegraf).options.u: unknown option",
        ),
        (
            {"kind": "field-map", "map": (MappingRule(enterprise="E"),)},
            "ingest.codecs[0] (field-map).topics: field-map has no default topics",
        ),
        (
            {"kind": "neuron", "map": (MappingRule(enterprise="E"),), "tags": {"a": "b c"}},
            "expected a registry tag",
        ),
    ],
)
def test_a_bad_entry_stops_start_up_naming_it(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_codecs(IngestSettings(codecs=(CodecSettings(**entry),)))
