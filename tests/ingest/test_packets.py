"""MQTT 3.1.1 packets of the receive path: encodings, the reader, and what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.packets import (
    MAX_REMAINING_LENGTH,
    ConnAck,
    MalformedPacket,
    PacketReader,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Will,
    connect,
    pubacks,
    publish,
    remaining_length,
    subscribe,
)

LIMIT = 64 * 1024
TOPIC = "hz/v1/E001/gw1/tag/TK101_LT"


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (MAX_REMAINING_LENGTH, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_edges(n: int, encoded: bytes) -> None:
    assert remaining_length(n) == encoded


def test_remaining_length_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="remaining length"):
        remaining_length(MAX_REMAINING_LENGTH + 1)
    with pytest.raises(ValueError, match="remaining length"):
        remaining_length(-1)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 70_000])
def test_publish_round_trips_at_every_length_boundary(size: int) -> None:
    topic_bytes = len(TOPIC.encode()) + 2 + 2
    payload = bytes(range(256)) * (max(0, size - topic_bytes) // 256 + 1)
    payload = payload[: max(0, size - topic_bytes)]
    raw = publish(TOPIC, payload, packet_id=513)
    assert raw[1:].startswith(remaining_length(len(payload) + topic_bytes))
    reader = PacketReader(max(LIMIT, size))
    assert reader.feed(raw) == [Publish(TOPIC, payload, 513, 1, dup=False, retain=False)]


@given(
    st.lists(
        st.tuples(
            st.text(
                st.characters(blacklist_characters="+#\x00", blacklist_categories=["Cs"]),
                min_size=1,
                max_size=40,
            ),
            st.binary(max_size=300),
            st.integers(0, 1),
            st.integers(1, 0xFFFF),
            st.booleans(),
            st.booleans(),
        ),
        max_size=8,
    ),
    st.lists(st.integers(1, 64), max_size=30),
)
def test_packets_split_anywhere_across_reads_come_out_whole_and_in_order(
    messages: list[tuple[str, bytes, int, int, bool, bool]], cuts: list[int]
) -> None:
    expected: list[Publish] = []
    stream = b"\x20\x02\x01\x00"  # CONNACK, session present
    for topic, payload, qos, packet_id, dup, retain in messages:
        stream += publish(topic, payload, qos=qos, packet_id=packet_id, dup=dup, retain=retain)
        expected.append(Publish(topic, payload, packet_id if qos else 0, qos, dup, retain))
    stream += b"\xd0\x00"  # PINGRESP
    reader = PacketReader(LIMIT)
    got = []
    rest = stream
    for cut in cuts:
        got += reader.feed(rest[:cut])
        rest = rest[cut:]
    got += reader.feed(rest)
    assert got == [ConnAck(session_present=True, return_code=0), *expected, PingResp()]


def test_control_packets() -> None:
    reader = PacketReader(LIMIT)
    assert reader.feed(b"\x20\x02\x00\x05") == [ConnAck(session_present=False, return_code=5)]
    assert reader.feed(b"\x90\x05\x00\x07\x01\x00\x80") == [SubAck(7, (1, 0, 0x80))]
    assert reader.feed(b"\xd0\x00") == [PingResp()]
    assert reader.feed(b"\x40\x02\x01\x02") == [PubAck(258)]  # for a session duty's PUBLISH


def test_connect_with_a_will_and_a_clean_session() -> None:
    """A Sparkplug host's CONNECT: clean session, will QoS 1 retained (MQTT 3.1.1 §3.1.2)."""
    packet = connect("h", 30, clean_session=True, will=Will("spBv1.0/STATE/h", b"{}"))
    assert packet[9] == 0x02 | 0x04 | 0x08 | 0x20  # clean, will, will QoS 1, will retain
    assert packet.endswith(b"\x00\x01h\x00\x0fspBv1.0/STATE/h\x00\x02{}")
    at_most_once = connect("h", 30, will=Will("t", b"x", qos=0, retain=False))
    assert at_most_once[9] == 0x04


def test_client_packets_are_what_the_spec_says() -> None:
    assert connect("hw", 30) == (
        b"\x10\x0e\x00\x04MQTT\x04\x00\x00\x1e\x00\x02hw"  # clean_session=0, no credentials
    )
    with_credentials = connect("hw", 30, username="u", password="p")
    assert with_credentials[9] == 0xC0  # user name and password flags
    assert with_credentials.endswith(b"\x00\x01u\x00\x01p")
    assert subscribe(1, [("a/+", 1), ("b/#", 1)]) == (
        b"\x82\x0e\x00\x01\x00\x03a/+\x01\x00\x03b/#\x01"
    )
    assert pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    with pytest.raises(ValueError, match="user name"):
        connect("hw", 30, password="p")


def test_an_oversized_publish_comes_as_its_head_and_the_rest_is_skipped() -> None:
    reader = PacketReader(100)
    big = publish(TOPIC, b"x" * 200_000, packet_id=9)
    after = publish(TOPIC, b"1.5", packet_id=10)
    stream = big + after
    got = []
    for start in range(0, len(stream), 4096):
        got += [p for p in reader.feed(stream[start : start + 4096]) if isinstance(p, Publish)]
    assert [(p.packet_id, len(p.payload)) for p in got] == [(9, 101), (10, 3)]
    assert got[1].payload == b"1.5"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "at most 4 bytes"),
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 0, 1 or 2, got 3"),
        (b"\x32\x03\x00\x01a", "topic and packet id"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet id above 0"),
        (b"\x30\x03\x00\x01\xff", "UTF-8 topic"),
        (b"\x30\x03\x00\x01+", "topic name"),
        (b"\x30\x02\x00\x00", "topic name"),
        (b"\x20\x03\x00\x00\x00", "CONNACK"),
        (b"\x20\x02\x02\x00", "CONNACK"),
        (b"\x21\x02\x00\x00", "flags 0"),
        (b"\x90\x02\x00\x01", "SUBACK"),
        (b"\x90\x03\x00\x01\x05", "SUBACK"),
        (b"\xd0\x01\x00", "PINGRESP"),
        (b"\x10\x00", "CONNECT: a broker never sends it"),
        (b"\x50\x02\x00\x01", "PUBREC: a broker never sends it"),
        (b"\x40\x03\x00\x01\x00", "PUBACK: expected a packet id"),
        (b"\x00\x00", "reserved"),
        (b"\xf0\x00", "reserved"),
        (b"\x20\x80\x80\x04", "expected a short packet"),
    ],
)
def test_malformed_packets_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason) as caught:
        PacketReader(LIMIT).feed(raw)
    assert caught.value.reason
