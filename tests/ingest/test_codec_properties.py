"""Every codec of the registry, fuzzed: any bytes on any of its topics give readings or
rejections with a reason — never an exception, never the ``decoder_error`` safety net.

The properties iterate over ``ingest.codecs.CODEC_KINDS``, so a new codec is covered
by adding it there. Each kind is built from the first entry that configures it: bare,
with an enterprise map, or as the simulators configure it (``codec_entry``).

Sparkplug B gets structurally valid protobufs too, in sequences through one codec (its
BIRTH cache, seq and bdSeq are state): aliases repeated or unknown, datatypes that do
not match the value sent, NaN, infinities and 64-bit extremes, Quality properties of
every type, DATA before any BIRTH, devices of nodes never born.
"""

from __future__ import annotations

import json
import math
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingest.codec
from hazwatch.clock import ManualClock
from hazwatch.errors import ConfigError
from hazwatch.models import ID_PATTERN, Quality
from hazwatch.registry import load_registry
from hazwatch.settings import CodecSettings, IngestSettings
from ingest.codec import Decoded, PayloadCodec
from ingest.codecs import CODEC_KINDS, build_codecs
from ingest.sparkplug import sparkplug_b_pb2 as pb
from simulators.formats import FORMATS, codec_entry, gateway_format
from simulators.gateways import GatewayBehaviour, gateways_for
from tests.conftest import EXAMPLE_REGISTRY

T = 1_763_820_000_000
LIMITS: dict[str, Any] = {"max_readings": 50, "max_payload_bytes": 8192}


def _reasons() -> set[str]:
    """The reason codes ``ingest/codec.py`` documents, less ``decoder_error``."""
    doc = ingest.codec.__doc__ or ""
    listed = doc.split("Reason codes used across codecs and the validator::", 1)[1]
    codes = set(re.findall(r"\b[a-z_]+\b", re.sub(r"\([^)]*\)", "", listed)))
    assert {"bad_topic", "protobuf", "unmapped", "decoder_error"} <= codes, codes
    return codes - {"decoder_error"}


REASONS = _reasons()


def build(kind: str) -> PayloadCodec:
    """The codec of ``kind`` from the first entry that configures it."""
    candidates: list[dict[str, Any]] = [
        {"kind": kind},
        {"kind": kind, "map": [{"enterprise": "E001"}]},
    ]
    if kind in FORMATS:
        candidates.append(codec_entry(kind))
    problems = []
    for entry in candidates:
        settings_ = IngestSettings(codecs=(CodecSettings.model_validate(entry),), **LIMITS)
        try:
            [codec] = build_codecs(settings_, clock=ManualClock(T))
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        return codec
    raise AssertionError(f"{kind}: no entry here configures it; add one: {problems}")


CODECS = {kind: build(kind) for kind in CODEC_KINDS}

_LEVELS = st.sampled_from(
    ["E001", "gw1", "PlantA", "n1", "d1", "NBIRTH", "NDATA", "DDATA", "STATE", "hazwatch",
     "upload", "", "+", "#", "a b", "x" * 70, "\x00", "ü", "..", "telemetry", "connect"]
)  # fmt: skip


@st.composite
def topics(draw: st.DrawFn, codec: PayloadCodec) -> str:
    """One of the codec's filters with its wildcards filled — or any topic at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(string.printable, max_size=40))
    topic_filter = draw(st.sampled_from(codec.topic_filters()))
    levels = []
    for level in topic_filter.split("/"):
        if level == "+":
            levels.append(draw(_LEVELS))
        elif level == "#":
            levels += draw(st.lists(_LEVELS, max_size=3))
        else:
            levels.append(level)
    return "/".join(levels)


_KEYS = st.sampled_from(
    ["readings", "tag", "v", "ts", "q", "seq", "timestamp", "node", "node_name", "group",
     "group_name", "values", "errors", "tags", "fields", "name", "metrics", "host", "device",
     "devId", "data", "id", "val", "unit", "gw1", "Device A", "E001", "online"]
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from([T, T // 1000, "2025-11-22T14:00:00Z", "NaN", "good", "bad", "12.5"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=25,
)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()  # NaN and Infinity on the wire too


PAYLOADS = st.one_of(
    st.binary(max_size=300),
    _JSON.map(_dumps),
    st.dictionaries(_KEYS, _JSON, max_size=6).map(_dumps),
    st.sampled_from([b"", b"online", b"offline", b"ONLINE", b"1.5", b"{}", b"[]", b"\xff"]),
)


def check(decoded: Decoded) -> None:
    """What every decoded message must be, whatever came in."""
    for part in decoded.parts():
        for rejection in part.rejections:
            assert rejection.reason in REASONS, rejection
            assert rejection.detail
            assert len(rejection.payload_head) <= 200
            assert rejection.payload_head.isprintable()
        for reading in part.readings:
            assert math.isfinite(reading.value), reading
            assert type(reading.value) is float
            assert type(reading.ts_ms) is int
            assert isinstance(reading.quality, Quality)
            assert re.fullmatch(ID_PATTERN, reading.enterprise), reading
            assert re.fullmatch(ID_PATTERN, reading.gateway), reading
            assert reading.tag.isprintable()
            assert (reading.enterprise, reading.gateway) == (part.enterprise, part.gateway)


@pytest.mark.parametrize("kind", CODEC_KINDS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_bytes_on_any_topic_give_readings_or_reasons(kind: str, data: st.DataObject) -> None:
    codec = CODECS[kind]
    topic = data.draw(topics(codec), label="topic")
    payload = data.draw(PAYLOADS, label="payload")
    check(codec.decode(topic, payload, T))


# --- valid messages of each format, mutated -------------------------------------------------


def _seeds(kind: str) -> list[tuple[str, bytes]]:
    """Two samples of the example registry's first gateway, as the simulator sends them
    in ``kind`` (a Sparkplug edge node: its NBIRTH, then an NDATA)."""
    gateway = gateways_for(load_registry(EXAMPLE_REGISTRY))[0]
    behaviour = GatewayBehaviour(gateway, encoder=gateway_format(kind, gateway))  # type: ignore[arg-type]
    values = [(p, 1.5 + n, Quality.GOOD) for n, p in enumerate(gateway.points)]
    return [(m.topic, m.payload) for ts in (T, T + 1000) for m in behaviour.messages(values, ts)]


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*path, key))
    elif isinstance(doc, list):
        for n, value in enumerate(doc):
            found += _paths(value, (*path, n))
    return found


@st.composite
def mutated(draw: st.DrawFn, payload: bytes) -> bytes:
    """``payload`` as it was, cut short, with bytes changed, or — JSON — with one value
    anywhere in it replaced by another JSON value (or removed)."""
    how = draw(st.sampled_from(["same", "json", "json", "json", "bytes", "cut"]))
    if how == "json":
        try:
            doc = json.loads(payload)
        except ValueError:
            how = "bytes"
        else:
            path = draw(st.sampled_from(_paths(doc)))
            if not path:
                return _dumps(draw(_JSON))
            parent = doc
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()) and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(_JSON)
            return _dumps(doc)
    if how == "cut":
        return payload[: draw(st.integers(0, len(payload)))]
    if how == "bytes" and payload:
        changed = bytearray(payload)
        for _ in range(draw(st.integers(1, 4))):
            changed[draw(st.integers(0, len(changed) - 1))] = draw(st.integers(0, 255))
        return bytes(changed)
    return payload


SEEDS: dict[str, list[tuple[str, bytes]]] = {
    kind: _seeds(kind) for kind in CODEC_KINDS if kind in FORMATS
}


@pytest.mark.parametrize("kind", SEEDS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_formats_own_messages_mutated_give_readings_or_reasons(
    kind: str, data: st.DataObject
) -> None:
    """The simulator's valid messages of the format (decoded with the entry the
    simulators use), one value at a time made hostile: this reaches the decoding of
    readings, which random bytes seldom do."""
    [codec] = build_codecs(
        IngestSettings(codecs=(CodecSettings.model_validate(codec_entry(kind)),), **LIMITS),  # type: ignore[arg-type]
        clock=ManualClock(T),
    )
    for topic, payload in SEEDS[kind]:
        check(codec.decode(topic, data.draw(mutated(payload), label=topic), T))


def test_the_seeds_are_valid_messages() -> None:
    """Unmutated, every seed gives readings: the mutations start from the good path."""
    for kind, seeds in SEEDS.items():
        [codec] = build_codecs(
            IngestSettings(codecs=(CodecSettings.model_validate(codec_entry(kind)),)),  # type: ignore[arg-type]
            clock=ManualClock(T),
        )
        decoded = [codec.decode(topic, payload, T) for topic, payload in seeds]
        assert all(d.readings and not d.rejections for d in decoded), (kind, decoded)


# --- Sparkplug B: valid protobufs, hostile contents ---------------------------------------

_U64 = 2**64 - 1
_PROPERTY_VALUES = st.one_of(
    st.tuples(st.just("int_value"), st.integers(0, 2**32 - 1) | st.sampled_from([0, 192, 500])),
    st.tuples(st.just("long_value"), st.integers(0, _U64)),
    st.tuples(st.just("float_value"), st.floats(width=32)),
    st.tuples(st.just("double_value"), st.floats() | st.sampled_from([1e308, -0.0])),
    st.tuples(st.just("boolean_value"), st.booleans()),
    st.tuples(st.just("string_value"), st.text(max_size=8)),
    st.none(),
)
_VALUES = _PROPERTY_VALUES | st.tuples(st.just("bytes_value"), st.binary(max_size=8))
AUTO = -1
"""A BIRTH metric's alias: its position (1, 2, ...), so births are mostly taken."""
_NAMES = st.sampled_from(
    ["TK101_LT", "TK101_LT", "TK101_TT", "TK101_TT", "TK101_PT", "bdSeq",
     "Node Control/Rebirth", "Tank 101/Level", "", "x" * 300, "a\nb", "温度", "Quality"]
)  # fmt: skip
_DATATYPES = st.sampled_from([1, 2, 3, 4, 5, 8, 9, 10, 10, 10, 11, 12]) | st.integers(0, 40)
_QUALITY = st.one_of(
    st.none(),
    st.none(),
    st.tuples(st.sampled_from([3, 4, 12]), _PROPERTY_VALUES),
    st.just("engUnit"),
)
_BIRTH_METRIC = st.fixed_dictionaries(
    {"name": _NAMES, "datatype": _DATATYPES, "value": _VALUES},
    optional={
        "alias": st.sampled_from([AUTO, AUTO, AUTO, 1, 0, _U64]),
        "timestamp": st.sampled_from([0, T, _U64]),
        "is_null": st.booleans(),
        "quality": _QUALITY,
    },
)
_DATA_METRIC = st.fixed_dictionaries(
    {"alias": st.sampled_from([1, 1, 2, 2, 3, 0, 9, _U64]), "value": _VALUES},
    optional={
        "name": _NAMES,
        "timestamp": st.sampled_from([0, T, _U64]),
        "datatype": _DATATYPES,
        "is_null": st.booleans(),
        "quality": _QUALITY,
    },
)


def _payload(seq: int | None, metrics: list[dict[str, Any]]) -> bytes:
    payload = pb.Payload(timestamp=T)
    if seq is not None:
        payload.seq = seq
    for n, spec in enumerate(metrics, start=1):
        metric = payload.metrics.add()
        for key in ("name", "alias", "timestamp", "datatype", "is_null"):
            if key in spec:
                setattr(metric, key, n if spec[key] == AUTO else spec[key])
        if spec.get("value") is not None:
            field, value = spec["value"]
            setattr(metric, field, value)
        quality = spec.get("quality")
        if quality == "engUnit":
            metric.properties.keys.append("engUnit")
            metric.properties.values.add(type=12, string_value="m")
        elif quality is not None:
            datatype, value = quality
            metric.properties.keys.append("Quality")
            property_value = metric.properties.values.add(type=datatype)
            if value is not None:
                setattr(property_value, value[0], value[1])
    return payload.SerializeToString()


NEXT = -1
"""A message's ``seq`` one past its node's last: most messages keep order."""
_SEQS = st.sampled_from([NEXT, NEXT, NEXT, NEXT, None, 0, 2, 255, 256, _U64])


@st.composite
def _messages(draw: st.DrawFn) -> tuple[str, str, str, int | None, list[dict[str, Any]]]:
    kind = draw(st.sampled_from(["NBIRTH", "NBIRTH", "NDATA", "NDATA", "NDATA", "NDEATH",
                                 "DBIRTH", "DDATA", "DDATA", "DDEATH"]))  # fmt: skip
    birth = kind.endswith("BIRTH")
    metrics = draw(st.lists(_BIRTH_METRIC if birth else _DATA_METRIC, max_size=5))
    return (
        kind,
        draw(st.sampled_from(["n1", "n2"])),
        draw(st.sampled_from(["d1", "d2"])),
        draw(_SEQS),
        metrics,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(_messages(), min_size=1, max_size=10))
def test_sparkplug_sessions_of_hostile_protobufs(
    born: bool, messages: list[tuple[str, str, str, int | None, list[dict[str, Any]]]]
) -> None:
    codec = build("sparkplug-b")  # a fresh host: births, seqs and bdSeqs are state
    last: dict[str, int] = {}
    if born:  # node n1 comes with a good NBIRTH first, so DATA meets a BIRTH cache
        metrics = [{"name": t, "datatype": 10, "value": ("double_value", 1.0), "alias": AUTO}
                   for t in ("TK101_LT", "TK101_TT", "TK101_PT")]  # fmt: skip
        birth = codec.decode("spBv1.0/E001/NBIRTH/n1", _payload(0, metrics), T)
        assert len(birth.readings) == 3, birth
        last["n1"] = 0
    for kind, node, device, seq, metrics in messages:
        topic = f"spBv1.0/E001/{kind}/{node}" + (f"/{device}" if kind.startswith("D") else "")
        number = seq
        if number == NEXT:
            number = 0 if kind == "NBIRTH" else (last.get(node, 0) + 1) % 256
        if number is not None and number < 256:
            last[node] = number
        check(codec.decode(topic, _payload(number, metrics), T))
