"""Properties of the hand-written MQTT reader (``ingest.packets``): it cannot be crashed.

- Any bytes, fed in any splits, give packets or ``MalformedPacket`` — never another
  exception — and the same outcome whichever way the stream was split.
- Every packet a broker may send this client, encoded by an independent encoder (the
  amqtt broker's), comes back as it was sent.
- Remaining lengths at every encoding boundary (127/128, 16383/16384,
  2097151/2097152, 268435455) are read exactly: the packet after them is intact.
"""

from __future__ import annotations

from typing import Any

import pytest
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.pingresp import PingRespPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.suback import SubackPacket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.packets import (
    MAX_REMAINING_LENGTH,
    ConnAck,
    MalformedPacket,
    Packet,
    PacketReader,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    remaining_length,
    utf8,
)

LIMIT = 64 * 1024

# --- an independent encoder: what the amqtt broker sends ---------------------------------

_topics = st.text(
    st.characters(blacklist_characters="+#\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=60,
)


@st.composite
def broker_packets(draw: st.DrawFn) -> tuple[bytes, Packet]:
    """One packet a broker may send us: (amqtt's encoding, what the reader must return)."""
    kind = draw(st.sampled_from(["publish", "connack", "suback", "pingresp"]))
    if kind == "publish":
        topic = draw(_topics)
        payload = draw(st.binary(max_size=400))
        qos = draw(st.integers(0, 1))
        packet_id = draw(st.integers(1, 0xFFFF)) if qos else None
        dup, retain = draw(st.booleans()), draw(st.booleans())
        raw = PublishPacket.build(topic, payload, packet_id, dup, qos, retain).to_bytes()
        return raw, Publish(topic, payload, packet_id or 0, qos, dup, retain)
    if kind == "connack":
        present, code = draw(st.booleans()), draw(st.integers(0, 5))
        return ConnackPacket.build(int(present), code).to_bytes(), ConnAck(present, code)
    if kind == "suback":
        packet_id = draw(st.integers(0, 0xFFFF))
        granted = draw(st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=20))
        raw = SubackPacket.build(packet_id, granted).to_bytes()
        return raw, SubAck(packet_id, tuple(granted))
    return PingRespPacket.build().to_bytes(), PingResp()


def feed_in_pieces(reader: PacketReader, stream: bytes, cuts: list[int]) -> list[Packet]:
    got: list[Packet] = []
    rest = stream
    for cut in cuts:
        got += reader.feed(rest[:cut])
        rest = rest[cut:]
    got += reader.feed(rest)
    return got


def outcome(stream: bytes, cuts: list[int], max_payload: int) -> tuple[str, list[Packet]]:
    """("ok", packets) or ("malformed", []); any other exception fails the test."""
    try:
        packets = feed_in_pieces(PacketReader(max_payload), stream, cuts)
    except MalformedPacket as exc:
        return ("malformed", []) if exc.reason else ("malformed without a reason", [])
    assert all(isinstance(p, Publish | PubAck | ConnAck | SubAck | PingResp) for p in packets)
    return "ok", packets


_cuts = st.lists(st.integers(0, 64), max_size=40)
# Any first byte with a small, well-formed remaining length and that many bytes: the
# reader's per-type checks see every packet type, flag and short body.
_short_packets = st.builds(
    lambda first, body: bytes([first]) + remaining_length(len(body)) + body,
    st.integers(0, 255),
    st.binary(max_size=8),
)
# Streams that are mostly MQTT with garbage between: random bytes alone rarely get
# past the first header, and the reader's interesting paths lie behind it.
_streams = st.one_of(
    st.binary(max_size=3000),
    st.lists(
        st.one_of(
            broker_packets().map(lambda p: p[0]),
            _short_packets,
            st.binary(min_size=1, max_size=6),
        ),
        max_size=12,
    ).map(b"".join),
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(stream=_streams, cuts=_cuts, max_payload=st.sampled_from([0, 10, LIMIT]))
def test_any_bytes_in_any_splits_give_packets_or_malformed_and_nothing_else(
    stream: bytes, cuts: list[int], max_payload: int
) -> None:
    whole = outcome(stream, [], max_payload)
    split = outcome(stream, cuts, max_payload)
    assert split == whole


@pytest.mark.parametrize(
    "raw",
    [b"\x30\x00", b"\x30\x01\x00", b"\x32\x01\x00", b"\x30\x01\x00\xd0\x00", b"\x32\x02\x00\x00"],
)
def test_a_publish_too_short_for_its_topic_is_malformed(raw: bytes) -> None:
    """These raised IndexError (the reader read past the packet) before."""
    with pytest.raises(MalformedPacket, match="PUBLISH"):
        PacketReader(65536).feed(raw)


@settings(max_examples=500)
@given(st.lists(broker_packets(), min_size=1, max_size=12), _cuts)
def test_what_a_broker_encodes_comes_back_as_it_was_sent(
    packets: list[tuple[bytes, Packet]], cuts: list[int]
) -> None:
    stream = b"".join(raw for raw, _ in packets)
    assert feed_in_pieces(PacketReader(LIMIT), stream, cuts) == [p for _, p in packets]


# --- remaining length boundaries ---------------------------------------------------------

TOPIC = "hz/v1/E001/gw1/data"
BOUNDARIES = [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]


@pytest.mark.parametrize("remaining", BOUNDARIES)
def test_a_publish_at_each_length_boundary_round_trips(remaining: int) -> None:
    head = len(utf8(TOPIC)) + 2  # topic + packet id
    payload = bytes(range(256)) * (remaining // 256 + 1)
    payload = payload[: remaining - head]
    raw = PublishPacket.build(TOPIC, payload, 7, dup_flag=False, qos=1, retain=False).to_bytes()
    assert raw[1:].startswith(remaining_length(remaining))
    reader = PacketReader(remaining)  # buffered whole: the payload limit allows it
    got = feed_in_pieces(reader, raw + b"\xd0\x00", [1, 1, 3, 4096])
    assert got == [Publish(TOPIC, payload, 7, 1, dup=False, retain=False), PingResp()]


@pytest.mark.parametrize("codes", [125, 126, 16_381, 16_382])
def test_a_suback_at_each_length_boundary_round_trips(codes: int) -> None:
    granted = [1] * codes
    raw = SubackPacket.build(9, granted).to_bytes()
    assert len(raw) - len(remaining_length(codes + 2)) - 1 == codes + 2
    assert PacketReader(LIMIT).feed(raw + b"\xd0\x00") == [SubAck(9, tuple(granted)), PingResp()]


@pytest.mark.parametrize("remaining", [*BOUNDARIES, MAX_REMAINING_LENGTH])
def test_an_oversized_publish_is_cut_to_its_head_and_skipped_exactly(remaining: int) -> None:
    """Up to the largest remaining length MQTT can express (256 MiB, streamed in 1 MiB
    reads): past the limit the head comes out and the rest is skipped to the byte —
    the PINGRESP after it is read intact."""
    limit = 100
    header = b"\x32" + remaining_length(remaining) + utf8(TOPIC) + b"\x00\x07"
    body = remaining - (len(header) - 1 - len(remaining_length(remaining)))
    reader = PacketReader(limit)
    got: list[Any] = reader.feed(header)
    chunk = b"\xab" * 2**20
    left = body
    while left > 0:
        piece = chunk[: min(left, len(chunk))]
        got += reader.feed(piece)
        left -= len(piece)
    got += reader.feed(b"\xd0\x00")
    # Up to the payload limit plus the largest topic, a PUBLISH is buffered whole.
    kept = body if remaining <= limit + 0xFFFF + 4 else limit + 1
    assert got == [Publish(TOPIC, b"\xab" * kept, 7, 1, dup=False, retain=False), PingResp()]


def test_a_remaining_length_of_five_bytes_is_malformed() -> None:
    with pytest.raises(MalformedPacket, match="at most 4 bytes"):
        PacketReader(LIMIT).feed(b"\x30\xff\xff\xff\xff\x7f")
