"""The Sparkplug B codec against payloads of an independent encoder (pysparkplug's).

pysparkplug (installed without its dependencies by scripts/venv: its paho pin clashes)
compiles its own copy of the specification's proto; these payloads never pass through
hazwatch's encoder, so a wrong field number or type on our side would show.
"""

from __future__ import annotations

from typing import Any

import pysparkplug as spb
import pytest

from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.models import GatewayState, Quality
from hazwatch.settings import CodecSettings, IngestSettings, MappingRule
from ingest.codec import CodecContext, Decoded
from ingest.sparkplug import sparkplug_b_pb2 as pb
from ingest.sparkplug.codec import SparkplugCodec

T = 1_763_820_000_000
D = spb.DataType
NODE = "spBv1.0/PlantA/{kind}/gw1"
DEVICE = "spBv1.0/PlantA/{kind}/gw1/plc1"


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def codec(metrics: Metrics) -> SparkplugCodec:
    entry = CodecSettings(
        kind="sparkplug-b",
        map=(MappingRule(match={"group": "PlantA"}, enterprise="E001"),),
        tags={"Tank 101/Level": "TK101_LT"},
        options={"reorder_timeout_s": 2, "rebirth_interval_s": 10},
    )
    return SparkplugCodec(entry, "test", CodecContext(IngestSettings(), ManualClock(T), metrics))


def metric(name: str | None, datatype: Any, value: Any, alias: int | None = None, **kw: Any) -> Any:
    return spb.Metric(
        timestamp=kw.pop("ts", T), name=name, datatype=datatype, value=value, alias=alias, **kw
    )


def nbirth(bd_seq: int = 3, *extra: Any) -> bytes:
    return spb.NBirth(
        timestamp=T,
        seq=0,
        metrics=(
            metric("bdSeq", D.INT64, bd_seq),
            metric("Node Control/Rebirth", D.BOOLEAN, value=False),
            metric("Tank 101/Level", D.DOUBLE, 3.5, alias=1),
            metric("TK101_TT", D.INT16, -5, alias=2),
            metric("ESD101_ZSC", D.BOOLEAN, value=True, alias=3),
            metric("Properties/Hardware Make", D.STRING, "acme", alias=4),
            *extra,
        ),
    ).encode(include_dtypes=True)


def ndata(seq: int, *metrics: Any) -> bytes:
    return spb.NData(timestamp=T + 1000, seq=seq, metrics=metrics).encode()


def ndeath(bd_seq: int) -> bytes:
    return spb.NDeath(timestamp=T, bd_seq_metric=metric("bdSeq", D.INT64, bd_seq)).encode()


def decode(codec: SparkplugCodec, topic: str, payload: bytes, at: int = T) -> Decoded:
    return codec.decode(topic, payload, at)


def values(decoded: Decoded) -> list[tuple[str, str, float, int, str]]:
    return [
        (r.gateway, r.tag, r.value, r.ts_ms, r.quality.value)
        for part in decoded.parts()
        for r in part.readings
    ]


def born(codec: SparkplugCodec) -> Decoded:
    return decode(codec, NODE.format(kind="NBIRTH"), nbirth())


def test_nbirth_values_are_readings_and_the_node_goes_online(codec: SparkplugCodec) -> None:
    decoded = born(codec)
    assert values(decoded) == [
        ("gw1", "TK101_LT", 3.5, T, "good"),  # renamed by `tags`
        ("gw1", "TK101_TT", -5.0, T, "good"),  # Int16, two's complement
        ("gw1", "ESD101_ZSC", 1.0, T, "good"),
    ]  # bdSeq, Node Control/*, and a String metric are no readings
    assert decoded.status is not None
    assert (decoded.enterprise, decoded.status.state) == ("E001", GatewayState.ONLINE)


def test_ndata_by_alias_with_metric_timestamps(codec: SparkplugCodec) -> None:
    born(codec)
    decoded = decode(
        codec,
        NODE.format(kind="NDATA"),
        ndata(
            1,
            metric(None, D.DOUBLE, 4.25, alias=1, ts=T + 900),
            metric(None, D.INT16, -7, alias=2, ts=T + 500),
        ),
    )
    assert values(decoded) == [
        ("gw1", "TK101_LT", 4.25, T + 900, "good"),
        ("gw1", "TK101_TT", -7.0, T + 500, "good"),
    ]
    assert decoded.rejections == []


@pytest.mark.parametrize(
    ("code", "quality"), [(0, Quality.BAD), (192, Quality.GOOD), (500, Quality.UNCERTAIN)]
)
def test_the_quality_property(codec: SparkplugCodec, code: int, quality: Quality) -> None:
    """pysparkplug 0.6 drops properties, so this DATA is built on our own proto."""
    born(codec)
    payload = pb.Payload(timestamp=T, seq=1)
    m = payload.metrics.add()
    m.alias = 1
    m.double_value = 9.5
    m.properties.keys.append("Quality")
    m.properties.values.add(type=3, int_value=code)
    decoded = decode(codec, NODE.format(kind="NDATA"), payload.SerializeToString())
    assert [r.quality for r in decoded.readings] == [quality]


def test_qualities_of_many_property_sets_stay_apart_when_remembered(
    codec: SparkplugCodec,
) -> None:
    """Property sets are remembered by their bytes: sets that differ in the code, in
    its integer width or in other properties must not share an answer, message after
    message; a set without Quality is good."""
    born(codec)
    sets: list[tuple[list[tuple[str, dict[str, Any]]], Quality]] = [
        ([("Quality", {"type": 3, "int_value": 192})], Quality.GOOD),
        ([("Quality", {"type": 3, "int_value": 0})], Quality.BAD),
        ([("Quality", {"type": 4, "long_value": 500})], Quality.UNCERTAIN),
        ([("engUnit", {"type": 12, "string_value": "m"})], Quality.GOOD),
        (
            [("engUnit", {"type": 12, "string_value": "m"}), ("Quality", {"type": 3})],
            Quality.BAD,
        ),
        ([("Quality", {"type": 3, "int_value": 7})], Quality.UNCERTAIN),
    ]
    for seq in (1, 2, 3):
        payload = pb.Payload(timestamp=T, seq=seq)
        for properties, _ in [*sets, *reversed(sets)]:
            m = payload.metrics.add(alias=1, double_value=1.5)
            for key, value in properties:
                m.properties.keys.append(key)
                m.properties.values.add(**value)
        decoded = decode(codec, NODE.format(kind="NDATA"), payload.SerializeToString())
        expected = [q for _, q in sets]
        assert [r.quality for r in decoded.readings] == [*expected, *reversed(expected)]


def test_a_metric_named_quality_does_not_make_properties_count(codec: SparkplugCodec) -> None:
    """The bytes ``Quality`` in a payload only let the properties be read: a property set
    without a Quality key still reads as good."""
    born(codec)
    payload = pb.Payload(timestamp=T, seq=1)
    m = payload.metrics.add(name="Tank 101/Level", double_value=2.5)
    m.properties.keys.append("QualityNote")
    m.properties.values.add(type=12, string_value="Quality checked")
    decoded = decode(codec, NODE.format(kind="NDATA"), payload.SerializeToString())
    assert [(r.tag, r.quality) for r in decoded.readings] == [("TK101_LT", Quality.GOOD)]


def test_devices_are_gateways_and_ndeath_takes_them_offline(codec: SparkplugCodec) -> None:
    born(codec)
    dbirth = spb.DBirth(
        timestamp=T, seq=1, metrics=(metric("PT1", D.FLOAT, 1.5, alias=10),)
    ).encode(include_dtypes=True)
    device = decode(codec, DEVICE.format(kind="DBIRTH"), dbirth)
    assert values(device) == [("gw1-plc1", "PT1", 1.5, T, "good")]
    assert device.status is not None
    assert device.status.state is GatewayState.ONLINE
    death = decode(codec, NODE.format(kind="NDEATH"), ndeath(3))
    assert [(p.gateway, p.status.state if p.status else None) for p in death.parts()] == [
        ("gw1", GatewayState.OFFLINE),
        ("gw1-plc1", GatewayState.OFFLINE),
    ]
    after = decode(codec, NODE.format(kind="NDATA"), ndata(2, metric(None, D.DOUBLE, 1.0, alias=1)))
    assert [r.reason for r in after.rejections] == ["no_birth"]


def test_ddeath_takes_only_the_device_offline(codec: SparkplugCodec) -> None:
    born(codec)
    dbirth = spb.DBirth(timestamp=T, seq=1, metrics=(metric("PT1", D.FLOAT, 1.5, alias=10),))
    decode(codec, DEVICE.format(kind="DBIRTH"), dbirth.encode(include_dtypes=True))
    death = decode(codec, DEVICE.format(kind="DDEATH"), spb.DDeath(timestamp=T, seq=2).encode())
    assert death.status is not None
    assert (death.gateway, death.status.state) == ("gw1-plc1", GatewayState.OFFLINE)
    data = decode(
        codec,
        DEVICE.format(kind="DDATA"),
        spb.DData(timestamp=T, seq=3, metrics=(metric(None, D.FLOAT, 2.0, alias=10),)).encode(),
    )
    assert [r.reason for r in data.rejections] == ["no_birth"]
    node = decode(codec, NODE.format(kind="NDATA"), ndata(4, metric(None, D.DOUBLE, 1.0, alias=1)))
    assert node.rejections == []


def test_an_ndeath_of_an_older_session_is_ignored(codec: SparkplugCodec, metrics: Metrics) -> None:
    born(codec)  # bdSeq 3
    stale = decode(codec, NODE.format(kind="NDEATH"), ndeath(2))
    assert (stale.status, stale.rejections) == (None, [])
    assert metrics.value("hazwatch_sparkplug_stale_deaths_total") == 1
    data = decode(codec, NODE.format(kind="NDATA"), ndata(1, metric(None, D.DOUBLE, 1.0, alias=1)))
    assert len(data.readings) == 1  # the session lives on


def test_data_before_birth_is_rejected_and_asks_for_a_rebirth(codec: SparkplugCodec) -> None:
    decoded = decode(
        codec, NODE.format(kind="NDATA"), ndata(7, metric(None, D.DOUBLE, 1.0, alias=1))
    )
    assert [r.reason for r in decoded.rejections] == ["no_birth"]
    assert codec.duties._pending == {("PlantA", "gw1"): "no_birth"}


def test_an_unknown_alias_costs_its_metric_and_asks_for_a_rebirth(codec: SparkplugCodec) -> None:
    born(codec)
    decoded = decode(
        codec,
        NODE.format(kind="NDATA"),
        ndata(1, metric(None, D.DOUBLE, 1.0, alias=1), metric(None, D.DOUBLE, 2.0, alias=99)),
    )
    assert [r.tag for r in decoded.readings] == ["TK101_LT"]
    assert [r.reason for r in decoded.rejections] == ["unknown_alias"]
    assert "99" in decoded.rejections[0].detail
    assert codec.duties._pending == {("PlantA", "gw1"): "unknown_alias"}


def test_a_birth_with_duplicate_aliases_is_not_taken(codec: SparkplugCodec) -> None:
    payload = nbirth(3, metric("Other", D.DOUBLE, 1.0, alias=1))
    decoded = decode(codec, NODE.format(kind="NBIRTH"), payload)
    assert [r.reason for r in decoded.rejections] == ["duplicate_alias"]
    assert decoded.readings == []
    assert decoded.status is None
    assert codec.duties._pending == {("PlantA", "gw1"): "duplicate_alias"}


def test_malformed_protobuf_is_one_rejection(codec: SparkplugCodec) -> None:
    decoded = decode(codec, NODE.format(kind="NDATA"), b"\x0a\xff\xff\xff\xff")
    assert [r.reason for r in decoded.rejections] == ["protobuf"]


def test_a_seq_gap_waits_for_the_reorder_timeout_then_asks_for_a_rebirth(
    codec: SparkplugCodec, metrics: Metrics
) -> None:
    born(codec)
    one = metric(None, D.DOUBLE, 1.0, alias=1)
    decode(codec, NODE.format(kind="NDATA"), ndata(1, one))
    late = decode(codec, NODE.format(kind="NDATA"), ndata(3, one), at=T + 100)  # 2 missing
    assert len(late.readings) == 1  # processed as it comes: readings carry their own time
    assert (
        metrics.value("hazwatch_gateway_seq_gaps_total", {"enterprise": "E001", "gateway": "gw1"})
        == 1
    )
    decode(codec, NODE.format(kind="NDATA"), ndata(2, one), at=T + 500)  # arrives in time
    codec.check_reorder(T + 5000)
    assert codec.duties._pending == {}
    decode(codec, NODE.format(kind="NDATA"), ndata(6, one), at=T + 6000)  # 4 and 5 never come
    codec.check_reorder(T + 7000)
    assert codec.duties._pending == {}  # within the timeout
    codec.check_reorder(T + 8000)
    assert codec.duties._pending == {("PlantA", "gw1"): "seq_gap"}


def test_rebirths_of_one_node_are_rate_limited(codec: SparkplugCodec, metrics: Metrics) -> None:
    host = codec.duties
    host.request_rebirth("G", "n", "no_birth", T)
    host._pending.clear()
    host._asked["G", "n"] = T  # as if sent
    for n in range(100):
        host.request_rebirth("G", "n", "no_birth", T + n * 50)  # a storm within 5 s
    assert host._pending == {}
    assert metrics.value("hazwatch_sparkplug_rebirth_requests_held_total") == 100
    host.request_rebirth("G", "n", "no_birth", T + 10_000)
    assert host._pending == {("G", "n"): "no_birth"}


@pytest.mark.parametrize(
    ("payload", "online"),
    [(b'{"online": false, "timestamp": 1}', False), (b"OFFLINE", False), (b"ONLINE", True)],
)
def test_own_state_offline_while_online_is_said_again(
    codec: SparkplugCodec, payload: bytes, online: bool
) -> None:
    codec.duties.online = True
    decoded = decode(codec, "spBv1.0/STATE/hazwatch", payload)
    assert decoded.rejections == []
    assert codec.duties._republish is not online


def test_a_state_that_is_neither_form_is_rejected(codec: SparkplugCodec) -> None:
    decoded = decode(codec, "spBv1.0/STATE/hazwatch", b"maybe")
    assert [r.reason for r in decoded.rejections] == ["bad_status"]


@pytest.mark.parametrize(
    "topic", ["spBv1.0/PlantA/NDATA", "spBv1.0/PlantA/DDATA/gw1", "spAv1.0/G/NDATA/n"]
)
def test_bad_topics(codec: SparkplugCodec, topic: str) -> None:
    assert [r.reason for r in decode(codec, topic, b"").rejections] == ["bad_topic"]


def test_commands_are_left_aside(codec: SparkplugCodec) -> None:
    decoded = decode(codec, "spBv1.0/PlantA/NCMD/gw1", b"\x00")
    assert (decoded.readings, decoded.rejections) == ([], [])


def test_a_named_metric_is_not_taken_for_alias_0(codec: SparkplugCodec) -> None:
    """An unset alias reads as 0: with a BIRTH that used alias 0, names decide."""
    birth = spb.NBirth(
        timestamp=T,
        seq=0,
        metrics=(metric("A", D.DOUBLE, 1.0, alias=0), metric("B", D.DOUBLE, 2.0, alias=5)),
    ).encode(include_dtypes=True)
    decode(codec, NODE.format(kind="NBIRTH"), birth)
    data = ndata(1, metric("B", D.DOUBLE, 7.0), metric(None, D.DOUBLE, 8.0, alias=0))
    decoded = decode(codec, NODE.format(kind="NDATA"), data)
    assert [(r.tag, r.value) for r in decoded.readings] == [("B", 7.0), ("A", 8.0)]


def test_a_zero_value_is_a_reading_and_a_null_is_none(codec: SparkplugCodec) -> None:
    born(codec)
    payload = pb.Payload(timestamp=T, seq=1)
    payload.metrics.add(alias=1, double_value=0.0)
    payload.metrics.add(alias=2, is_null=True)
    payload.metrics.add(alias=3, string_value="on")  # a Boolean metric sent as a string
    decoded = decode(codec, NODE.format(kind="NDATA"), payload.SerializeToString())
    assert [(r.tag, r.value) for r in decoded.readings] == [("TK101_LT", 0.0)]
    assert [r.reason for r in decoded.rejections] == ["bad_value"]


def test_a_name_that_is_not_utf8_is_a_reason_not_a_crash(codec: SparkplugCodec) -> None:
    """The proto is proto2: upb does not check strings, and hands such a name over as
    bytes (found by tests/ingest/test_codec_properties.py)."""
    good = nbirth()
    bad_birth = good.replace(b"TK101_TT", b"TK101\x9fTT")
    assert bad_birth != good
    decoded = decode(codec, NODE.format(kind="NBIRTH"), bad_birth)
    assert [r.reason for r in decoded.rejections] == ["bad_structure"]
    assert "not UTF-8" in decoded.rejections[0].detail
    born(codec)
    data = ndata(1, metric("Tank 101/Level", D.DOUBLE, 1.0)).replace(b"Tank 101", b"Tank\xff101")
    decoded = decode(codec, NODE.format(kind="NDATA"), data)
    assert [r.reason for r in decoded.rejections] == ["unknown_alias"]
    assert "Tank\\xff101" in decoded.rejections[0].detail
