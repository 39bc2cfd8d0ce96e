"""hz-json decoding (docs/contract.md §1): every bad input has its reason, nothing raises."""

from __future__ import annotations

import json
import math
import re
import string
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazwatch.models import TAG_PATTERN, GatewayState, Quality
from hazwatch.settings import IngestSettings
from ingest.codec import Decoded
from ingest.hzjson import HzJsonCodec

RECEIVED = 1_763_820_000_500
DATA = "hz/v1/E001/gw1/data"


@pytest.fixture
def codec() -> HzJsonCodec:
    return HzJsonCodec(IngestSettings(max_payload_bytes=4096, max_readings=10))


def decode(codec: HzJsonCodec, payload: bytes | str | dict[str, Any], topic: str = DATA) -> Decoded:
    if isinstance(payload, dict):
        payload = orjson.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return codec.decode(topic, payload, RECEIVED)


def only_reason(decoded: Decoded) -> str:
    """The single rejection of a message that was refused as a whole."""
    assert decoded.readings == []
    assert len(decoded.rejections) == 1, decoded.rejections
    return decoded.rejections[0].reason


# --- good messages ---------------------------------------------------------------


def test_batch_with_message_and_per_reading_timestamps(codec: HzJsonCodec) -> None:
    decoded = decode(
        codec,
        {
            "seq": 1842,
            "ts": 1763820000123,
            "readings": [
                {"tag": "TK101_LT", "v": 3.42},
                {"tag": "TK101_TT", "v": 25.1, "ts": 1763820000000, "q": "good"},
                {"tag": "ESD101_ZSC", "v": True},
            ],
        },
    )
    assert decoded.rejections == []
    assert (decoded.enterprise, decoded.gateway, decoded.seq) == ("E001", "gw1", 1842)
    assert decoded.codec == "hz-json"
    assert [(r.tag, r.value, r.ts_ms, r.receive_time) for r in decoded.readings] == [
        ("TK101_LT", 3.42, 1763820000123, False),
        ("TK101_TT", 25.1, 1763820000000, False),
        ("ESD101_ZSC", 1.0, 1763820000123, False),
    ]
    assert all(r.gateway == "gw1" and r.enterprise == "E001" for r in decoded.readings)


@pytest.mark.parametrize(
    ("ts", "expected_ms"),
    [
        ("2025-11-22T14:00:00.123Z", 1763820000123),
        ("2025-11-22T22:00:00.123+08:00", 1763820000123),
        ("2025-11-22t14:00:00z", 1763820000000),
        ("2025-11-22T14:00:00.123456789Z", 1763820000123),  # Go/InfluxDB nanoseconds
        ("2025-11-22T13:30:00.1-00:30", 1763820000100),
    ],
)
def test_rfc3339_timestamps(codec: HzJsonCodec, ts: str, expected_ms: int) -> None:
    decoded = decode(codec, {"readings": [{"tag": "A", "v": 1, "ts": ts}]})
    assert decoded.rejections == []
    assert decoded.readings[0].ts_ms == expected_ms


def test_message_without_ts_takes_the_receive_time_and_says_so(codec: HzJsonCodec) -> None:
    decoded = decode(codec, {"readings": [{"tag": "A", "v": 1}, {"tag": "B", "v": 2, "ts": 5}]})
    a, b = decoded.readings
    assert (a.ts_ms, a.receive_time) == (RECEIVED, True)
    assert (b.ts_ms, b.receive_time) == (5, False)
    assert decoded.seq is None


def test_booleans_are_digital_values_and_a_bare_1_is_a_number(codec: HzJsonCodec) -> None:
    decoded = decode(
        codec,
        '{"readings": [{"tag": "A", "v": true}, {"tag": "B", "v": false}, {"tag": "C", "v": 1}]}',
    )
    assert [r.value for r in decoded.readings] == [1.0, 0.0, 1.0]
    assert all(type(r.value) is float for r in decoded.readings)


def test_quality_defaults_to_good(codec: HzJsonCodec) -> None:
    decoded = decode(
        codec, {"readings": [{"tag": "A", "v": 1}, {"tag": "B", "v": 1, "q": "uncertain"}]}
    )
    assert [r.quality for r in decoded.readings] == [Quality.GOOD, Quality.UNCERTAIN]


def test_unknown_keys_are_ignored(codec: HzJsonCodec) -> None:
    decoded = decode(codec, {"readings": [{"tag": "A", "v": 1, "unit": "m"}], "fw": "1.2"})
    assert decoded.rejections == []
    assert len(decoded.readings) == 1


@pytest.mark.parametrize(("payload", "value"), [(b"3.42", 3.42), (b"-7", -7.0), (b"true", 1.0)])
def test_single_value_topic_bare_number(codec: HzJsonCodec, payload: bytes, value: float) -> None:
    decoded = decode(codec, payload, "hz/v1/E002/meter-7/tag/P01")
    assert decoded.rejections == []
    (reading,) = decoded.readings
    assert (reading.enterprise, reading.gateway, reading.tag) == ("E002", "meter-7", "P01")
    assert (reading.value, reading.ts_ms, reading.receive_time) == (value, RECEIVED, True)


def test_single_value_topic_object(codec: HzJsonCodec) -> None:
    decoded = decode(codec, {"v": 12.5, "ts": 1763820000000, "q": "bad"}, "hz/v1/E002/m1/tag/CT01")
    (reading,) = decoded.readings
    assert (reading.tag, reading.value, reading.ts_ms) == ("CT01", 12.5, 1763820000000)
    assert reading.quality is Quality.BAD
    assert reading.receive_time is False


@pytest.mark.parametrize("state", ["online", "offline"])
def test_status(codec: HzJsonCodec, state: str) -> None:
    decoded = decode(codec, state, "hz/v1/E001/gw1/status")
    assert decoded.rejections == []
    assert decoded.status is not None
    assert decoded.status.state is GatewayState(state)
    assert (decoded.status.enterprise, decoded.status.gateway) == ("E001", "gw1")
    assert decoded.status.ts_ms == RECEIVED


def test_topic_filters_cover_the_three_topics(codec: HzJsonCodec) -> None:
    assert codec.topic_filters() == ["hz/v1/+/+/data", "hz/v1/+/+/tag/+", "hz/v1/+/+/status"]


# --- whole message rejected ------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"readings": [', "json"),
        (b"{'readings': []}", "json"),
        (b"\xff\xfe{}", "json"),
        (b"", "empty"),
        (b"[1, 2]", "bad_structure"),
        (b'"readings"', "bad_structure"),
        (b'{"seq": 1}', "bad_structure"),
        (b'{"readings": {"tag": "A", "v": 1}}', "bad_structure"),
        (b'{"readings": [], "seq": "7"}', "bad_seq"),
        (b'{"readings": [], "seq": true}', "bad_seq"),
        (b'{"readings": [], "seq": -1}', "bad_seq"),
        (b'{"readings": [{"tag": "A", "v": 1}], "ts": "yesterday"}', "bad_ts"),
        (b'{"readings": [], "ts": true}', "bad_ts"),
        (b'{"readings": [], "ts": 1763820000000.5}', "bad_ts"),
        (b'{"readings": [], "ts": "2025-11-22T14:00:00"}', "bad_ts"),  # no offset
        (b'{"readings": [], "ts": "2025-02-30T14:00:00Z"}', "bad_ts"),
        (b'{"readings": [], "seq": 1, "seq": 2}', "duplicate_key"),
    ],
)
def test_structural_problems_reject_the_message(
    codec: HzJsonCodec, payload: bytes, reason: str
) -> None:
    decoded = decode(codec, payload)
    assert only_reason(decoded) == reason
    assert decoded.seq is None
    rejection = decoded.rejections[0]
    assert rejection.topic == DATA
    assert rejection.ts_ms == RECEIVED
    assert "expected" in rejection.detail
    assert "got" in rejection.detail


def test_oversize_payload_is_rejected_before_parsing(codec: HzJsonCodec) -> None:
    readings = [{"tag": f"T{n}", "v": n} for n in range(10)]
    payload = orjson.dumps({"readings": readings, "pad": "x" * 5000})
    decoded = decode(codec, payload)
    assert only_reason(decoded) == "too_large"
    assert f"got {len(payload)}" in decoded.rejections[0].detail
    assert len(decoded.rejections[0].payload_head) == 200


def test_too_many_readings(codec: HzJsonCodec) -> None:
    decoded = decode(codec, {"readings": [{"tag": f"T{n}", "v": n} for n in range(11)]})
    assert only_reason(decoded) == "too_many_readings"
    assert "at most 10" in decoded.rejections[0].detail
    assert "got 11" in decoded.rejections[0].detail


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"readings": [{"tag": "A", "v": ' + b"[" * 3000 + b"]" * 3000 + b"}]}",
        # \u forces the stdlib duplicate-key check, which recurses (orjson allows 1024)
        b'{"x": "\\u0041", "y": ' + b"[" * 1000 + b"]" * 1000 + b', "readings": []}',
        # NaN forces the stdlib parser
        b'{"readings": [{"tag": "A", "v": NaN}], "y": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
)
def test_deep_nesting_is_rejected_not_raised(codec: HzJsonCodec, payload: bytes) -> None:
    big = HzJsonCodec(IngestSettings())
    assert only_reason(big.decode(DATA, payload, RECEIVED)) == "json"


@pytest.mark.parametrize(
    "topic",
    [
        "hz/v1/E 001/gw1/data",
        "hz/v1/E001/gw,1/data",
        "hz/v1/E001/gw1\n/data",
        "hz/v1/E001\n/gw1/data",
        "hz/v1/E001/+/data",
        "hz/v1/#/gw1/data",
        "hz/v1/E001/gw=1/data",
        "hz/v1/企业/gw1/data",
        "hz/v1//gw1/data",
        "hz/v1/" + "E" * 65 + "/gw1/data",
    ],
)
def test_bad_ids_in_the_topic(codec: HzJsonCodec, topic: str) -> None:
    decoded = decode(codec, {"readings": [{"tag": "A", "v": 1}]}, topic)
    assert only_reason(decoded) == "bad_id"
    assert "A-Z a-z 0-9 _ -" in decoded.rejections[0].detail


@pytest.mark.parametrize(
    "tag", ["TK 101", "TK,101", "TK101\n", "TK+", "TK#", "TK=1", "温度", "", "T" * 129]
)
def test_bad_tag_in_the_single_value_topic(codec: HzJsonCodec, tag: str) -> None:
    assert only_reason(decode(codec, b"1.5", f"hz/v1/E001/gw1/tag/{tag}")) == "bad_tag"


@pytest.mark.parametrize(
    "topic",
    [
        "hz/v2/E001/gw1/data",
        "hz/v1/E001/gw1",
        "hz/v1/E001/gw1/readings",
        "hz/v1/E001/gw1/tag",
        "hz/v1/E001/gw1/data/extra",
        "hz/v1/E001/gw1/status/x",
        "spBv1.0/E001/DDATA/gw1/dev",
    ],
)
def test_bad_topics(codec: HzJsonCodec, topic: str) -> None:
    assert only_reason(decode(codec, b"1", topic)) == "bad_topic"


@pytest.mark.parametrize("payload", [b"ONLINE", b"online\n", b'"online"', b"1", b"\x00"])
def test_status_other_than_online_offline(codec: HzJsonCodec, payload: bytes) -> None:
    decoded = decode(codec, payload, "hz/v1/E001/gw1/status")
    assert only_reason(decoded) == "bad_status"
    assert decoded.status is None


def test_empty_status_is_rejected(codec: HzJsonCodec) -> None:
    assert only_reason(decode(codec, b"", "hz/v1/E001/gw1/status")) == "empty"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'"3.42"', "bad_value"),
        (b"null", "bad_value"),
        (b"[1]", "bad_value"),
        (b"NaN", "not_finite"),
        (b'{"v": 1, "q": "GOOD"}', "bad_quality"),
        (b'{"ts": 5}', "bad_value"),
        (b"1e999", "not_finite"),
    ],
)
def test_single_value_problems(codec: HzJsonCodec, payload: bytes, reason: str) -> None:
    assert only_reason(decode(codec, payload, "hz/v1/E001/gw1/tag/A")) == reason


# --- one reading rejected, the others kept ---------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"tag": "B", "v": "3.4"}', "bad_value"),
        ('{"tag": "B", "v": [3.4]}', "bad_value"),
        ('{"tag": "B", "v": null}', "bad_value"),
        ('{"tag": "B", "v": {"x": 1}}', "bad_value"),
        ('{"tag": "B"}', "bad_value"),
        ('{"tag": "B", "v": NaN}', "not_finite"),
        ('{"tag": "B", "v": Infinity}', "not_finite"),
        ('{"tag": "B", "v": -Infinity}', "not_finite"),
        ('{"tag": "B", "v": 1e999}', "not_finite"),
        ('{"tag": "B", "v": 1' + "0" * 400 + "}", "not_finite"),
        ('{"tag": "B", "v": 1, "q": "excellent"}', "bad_quality"),
        ('{"tag": "B", "v": 1, "q": 1}', "bad_quality"),
        ('{"tag": "B", "v": 1, "q": ["good"]}', "bad_quality"),
        ('{"tag": "B", "v": 1, "ts": "soon"}', "bad_ts"),
        ('{"tag": "B", "v": 1, "ts": false}', "bad_ts"),
        ('{"tag": "B", "v": 1, "ts": "2025-11-22T14:00:60Z"}', "bad_ts"),
        ('{"tag": "B", "v": 1, "ts": "2025-11-22T14:00:00+24:00"}', "bad_ts"),
        ('{"tag": "TK 101", "v": 1}', "bad_tag"),
        ('{"tag": "TK,101", "v": 1}', "bad_tag"),
        ('{"tag": "TK101\\n", "v": 1}', "bad_tag"),
        ('{"tag": "TK+", "v": 1}', "bad_tag"),
        ('{"tag": "TK#", "v": 1}', "bad_tag"),
        ('{"tag": 101, "v": 1}', "bad_tag"),
        ('{"v": 1}', "bad_tag"),
        ('{"tag": "B", "v": 1, "v": 2}', "duplicate_key"),
        ('"B=1"', "bad_structure"),
        ("[1]", "bad_structure"),
    ],
)
def test_one_bad_reading_costs_only_itself(codec: HzJsonCodec, bad: str, reason: str) -> None:
    payload = f'{{"seq": 9, "readings": [{{"tag": "A", "v": 1}}, {bad}, {{"tag": "C", "v": 3}}]}}'
    decoded = decode(codec, payload)
    if reason == "duplicate_key":  # a repeated key anywhere makes the text ambiguous
        assert only_reason(decoded) == "duplicate_key"
        return
    assert [r.tag for r in decoded.readings] == ["A", "C"]
    assert decoded.seq == 9
    (rejection,) = decoded.rejections
    assert rejection.reason == reason
    assert rejection.detail.startswith("readings[1]")
    assert "expected" in rejection.detail
    assert "got" in rejection.detail


def test_reading_rejection_shows_the_reading(codec: HzJsonCodec) -> None:
    decoded = decode(codec, '{"readings": [{"tag": "A", "v": "abc"}, {"tag": "B", "v": NaN}]}')
    heads = [r.payload_head for r in decoded.rejections]
    assert heads == ['{"tag": "A", "v": "abc"}', '{"tag": "B", "v": NaN}']
    assert decoded.rejections[0].detail == (
        "readings[0] (A).v: expected a finite number or a boolean, got string 'abc'"
    )


# --- duplicate keys: the fast check has no false positives and misses none ---------


@pytest.mark.parametrize(
    "payload",
    [
        '{"readings": [{"tag": "A:B", "v": 1, "ts": "2025-11-22T14:00:00Z"}]}',
        '{"readings": [{"tag": "A", "v": 1}], "note": "a:b:c\\":"}',
        '{"readings": [{"tag": "A", "v": 1}], "x": {"a:": {":": [":", "::"]}}}',
        '{"readings" : [ {"tag" : "A" , "v" : 1} ] }',
        '{"readings": [{"tag": "A", "v": 1}], "x": "\\u003a"}',
    ],
)
def test_colons_in_strings_are_not_duplicates(codec: HzJsonCodec, payload: str) -> None:
    decoded = decode(codec, payload)
    assert decoded.rejections == []
    assert len(decoded.readings) == 1


@pytest.mark.parametrize(
    "payload",
    [
        '{"readings": [{"tag": "A", "v": 1, "tag": "B"}]}',
        '{"readings": [], "readings": [{"tag": "A", "v": 1}]}',
        '{"readings": [{"tag": "A", "v": 1}], "x": {"k": "a:b", "k": "c:d"}}',
        '{"readings": [{"tag": "A", "v": 1}], "x": {"k:": 1, "k:": 2}}',
        '{"readings": [{"tag": "A", "v": 1}], "x": {"\\u006b": 1, "k": 2}}',
        '{"readings": [{"tag": "A", "v": 1}], "x": {"a": "\\u003a", "a": 1}}',
        '{"readings": [{"tag": "A", "v": NaN, "v": 1}]}',
    ],
)
def test_duplicate_keys_anywhere_reject_the_message(codec: HzJsonCodec, payload: str) -> None:
    assert only_reason(decode(codec, payload)) == "duplicate_key"


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(
    extra=st.dictionaries(st.text(), _json, max_size=5),
    ascii_only=st.booleans(),
    indent=st.none() | st.integers(0, 2),
)
def test_duplicate_check_agrees_with_the_stdlib(
    extra: dict[str, object], ascii_only: bool, indent: int | None
) -> None:
    codec = HzJsonCodec(IngestSettings())
    for known in ("readings", "seq", "ts"):  # extra keys only, no meaning attached
        extra.pop(known, None)
    doc = {"readings": [{"tag": "A", "v": 1}], **extra}
    text = json.dumps(doc, ensure_ascii=ascii_only, indent=indent)
    decoded = codec.decode(DATA, text.encode(), RECEIVED)
    assert [r.reason for r in decoded.rejections] == []
    # the same document with one key written twice
    duplicated = text.replace('"readings":', '"readings": [], "readings":', 1)
    assert only_reason(codec.decode(DATA, duplicated.encode(), RECEIVED)) == "duplicate_key"


# --- never raises ----------------------------------------------------------------

_topics = st.one_of(
    st.text(),
    st.builds(
        "/".join,
        st.lists(
            st.sampled_from(["hz", "v1", "E001", "gw1", "data", "tag", "status", "A", "", "+"])
            | st.text(string.printable, max_size=5),
            max_size=7,
        ),
    ),
)
_payloads = st.one_of(
    st.binary(max_size=300),
    _json.map(lambda doc: json.dumps(doc).encode()),
    st.builds(
        lambda readings, ts: json.dumps({"seq": 1, "ts": ts, "readings": readings}).encode(),
        st.lists(st.dictionaries(st.sampled_from(["tag", "v", "ts", "q"]), _json), max_size=5),
        _json,
    ),
)


def _no_readings(payload: bytes) -> bool:
    """A message whose ``readings`` is an empty list: accepted, with nothing in it (a
    gateway's heartbeat, say); its ``seq`` still counts."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("readings") == []


_valid_topics = st.sampled_from(
    ["hz/v1/E001/gw1/data", "hz/v1/E001/gw1/status", "hz/v1/E001/gw1/tag/TK101_LT"]
)
REASONS = {
    "empty", "too_large", "json", "duplicate_key", "bad_structure", "too_many_readings",
    "bad_topic", "bad_id", "bad_tag", "bad_value", "not_finite", "bad_ts", "bad_quality",
    "bad_seq", "bad_status",
}  # fmt: skip
"""What hz-json may reject with; ``decoder_error`` (a bug in the codec) is not one."""


@settings(max_examples=1000)
@given(topic=_topics | _valid_topics, payload=_payloads)
def test_any_bytes_give_readings_or_a_rejection_with_a_reason(topic: str, payload: bytes) -> None:
    """Never an exception — and never the codec's own safety net (``decoder_error``):
    every input has a reason of its own, and every reading is one storage can take."""
    decoded = HzJsonCodec(IngestSettings(max_readings=20)).decode(topic, payload, RECEIVED)
    assert decoded.readings or decoded.rejections or decoded.status or _no_readings(payload)
    for rejection in decoded.rejections:
        assert rejection.reason in REASONS, rejection
        assert rejection.detail
        assert len(rejection.payload_head) <= 200
        assert rejection.payload_head.isprintable()
    for reading in decoded.readings:
        assert math.isfinite(reading.value)
        assert type(reading.ts_ms) is int
        assert re.fullmatch(TAG_PATTERN, reading.tag)
        assert (reading.enterprise, reading.gateway) == ("E001", "gw1")


READING_ITEMS = st.fixed_dictionaries(
    {"tag": st.sampled_from(["A", "B.1", "bad tag", ""])},
    optional={
        "v": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False, width=32),
            st.integers(-5, 5),
            st.booleans(),
            st.none(),
            st.just("1"),
        ),
        "ts": st.one_of(st.integers(0, 2**40), st.just("2025-11-22T14:00:00Z"), st.none()),
        "q": st.sampled_from(["good", "bad", "awful"]),
        "x": st.just(1),
    },
)


@given(st.lists(READING_ITEMS, max_size=8), st.one_of(st.none(), st.integers(0, 2**40)))
def test_the_fast_path_for_known_tags_decodes_as_the_full_one(
    items: list[dict[str, Any]], msg_ts: int | None
) -> None:
    """Known tags take a shortcut; the result must not tell which way a reading went."""
    doc: dict[str, Any] = {"readings": items}
    if msg_ts is not None:
        doc["ts"] = msg_ts
    fresh = HzJsonCodec(IngestSettings())
    first = decode(fresh, doc)  # every tag new: the full path
    second = decode(fresh, doc)  # valid tags known now: the fast path where it applies
    assert second.readings == first.readings
    assert [(r.reason, r.detail) for r in second.rejections] == [
        (r.reason, r.detail) for r in first.rejections
    ]
