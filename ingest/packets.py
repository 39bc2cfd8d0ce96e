"""MQTT 3.1.1 packets: the few the ingest's receive path sends and reads, by hand.

The receive path (:mod:`ingest.connection`) needs exactly this: CONNECT (a
persistent session: ``clean_session=0``, username/password; a will for a session
that has duties, like a Sparkplug host's STATE), SUBSCRIBE at QoS 1, PUBLISH in,
PUBACK out, PINGREQ/PINGRESP, DISCONNECT — and the few PUBLISHes a session's duties
send (PUBACK in for those at QoS 1). Everything else a broker could send a client
that never unsubscribes and never asks for QoS 2 is a protocol error here.

Why written by hand rather than taken from a library (docs/architecture.md; measured on this
2-core box, pure Python on both sides of the comparison):

- paho-mqtt (under aiomqtt) costs ~90 µs per QoS 1 message end to end, aiomqtt
  more: its per-message objects, callbacks and futures are the singles load's limit.
- ``mqtt5`` (the Rust sans-I/O codec aiomqtt 3 is built on) decodes a PUBLISH in
  ~0.7 µs, but from Python, with the slicing and attribute reads a receive loop
  needs, it measured 5.2 µs per PUBLISH against 4.1 µs for the loop here, and 2.1
  µs per PUBACK object against 0.9 µs for a ``struct`` pack — the cost is Python
  objects, not parsing. And it speaks MQTT 5 only: the pure-Python broker of
  ``hazwatch demo`` (amqtt) speaks 3.1.1 only.

So the hot path is a ~200-line codec with no dependency; the control plane (alarm
notifications out, tests) keeps aiomqtt.

:class:`PacketReader` takes bytes as they arrive and returns every complete packet
in them; a packet split across reads waits for its rest. A PUBLISH larger than
the payload limit is not buffered whole: its topic, packet id and the first
``max_payload + 1`` payload bytes are returned (the codec rejects it as too large,
and it is acknowledged — closing the connection instead would get it redelivered
forever), the rest is skipped as it streams in. Anything malformed raises
:class:`MalformedPacket` with a reason; the connection is then closed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

PROTOCOL_LEVEL = 4  # MQTT 3.1.1
MAX_REMAINING_LENGTH = 268_435_455
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"
SUBACK_FAILURE = 0x80

CONNACK_REFUSALS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}

_PUBACK = struct.Struct("!BBH")
_NAMES = {
    0: "reserved (0)",
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "reserved (15)",
}


class MalformedPacket(Exception):
    """The broker sent something this client cannot accept; ``reason`` says what."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Publish(NamedTuple):
    topic: str
    payload: bytes
    packet_id: int
    """0 for QoS 0 (nothing to acknowledge)."""
    qos: int
    dup: bool
    retain: bool


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    return_code: int


@dataclass(frozen=True, slots=True)
class SubAck:
    packet_id: int
    granted: tuple[int, ...]
    """Per topic filter: the QoS granted, or 0x80 (refused)."""


@dataclass(frozen=True, slots=True)
class PingResp:
    pass


@dataclass(frozen=True, slots=True)
class PubAck:
    packet_id: int


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for a client whose connection is lost."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


Packet = Publish | ConnAck | SubAck | PingResp | PubAck


# --- encoding (client → broker) ----------------------------------------------------------


def remaining_length(n: int) -> bytes:
    """The fixed header's variable-length integer: 7 bits a byte, low bits first."""
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length: expected 0..{MAX_REMAINING_LENGTH}, got {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def utf8(text: str) -> bytes:
    """A length-prefixed UTF-8 string."""
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"string: expected at most 65535 bytes of UTF-8, got {len(raw)}")
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining_length(len(body)) + body


def connect(
    client_id: str,
    keepalive_s: int,
    *,
    username: str | None = None,
    password: str | None = None,
    clean_session: bool = False,
    will: Will | None = None,
) -> bytes:
    if password is not None and username is None:
        raise ValueError("MQTT 3.1.1: expected a user name with the password, got none")
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    flags |= 0x02 if clean_session else 0
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    body = utf8("MQTT") + bytes([PROTOCOL_LEVEL, flags]) + keepalive_s.to_bytes(2, "big")
    body += utf8(client_id)
    if will is not None:
        if len(will.payload) > 0xFFFF:
            raise ValueError(f"will: expected at most 65535 bytes, got {len(will.payload)}")
        body += utf8(will.topic) + len(will.payload).to_bytes(2, "big") + will.payload
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return _packet(0x10, body)


def subscribe(packet_id: int, topic_filters: list[tuple[str, int]]) -> bytes:
    body = packet_id.to_bytes(2, "big")
    for topic_filter, qos in topic_filters:
        body += utf8(topic_filter) + bytes([qos])
    return _packet(0x82, body)


def pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs for these packet ids, in this order, as one write."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, pid) for pid in packet_ids])


def publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 1,
    packet_id: int = 1,
    dup: bool = False,
    retain: bool = False,
) -> bytes:
    """A PUBLISH, either way: a session's duties send it, the tests' broker too."""
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = utf8(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return _packet(first, body)


# --- decoding (broker → client) ----------------------------------------------------------


class PacketReader:
    """Turns the byte stream from the broker into packets (see the module docstring)."""

    def __init__(self, max_payload: int) -> None:
        self._rest = b""
        self._skip = 0  # bytes of an oversized PUBLISH still to discard
        # Buffered whole up to: payload limit + topic (<= 65535 + 2) + packet id.
        self._max_whole = max_payload + 0xFFFF + 4
        self._max_payload = max_payload

    def feed(self, data: bytes) -> list[Packet]:
        """Every packet completed by ``data``, in order. Raises ``MalformedPacket``."""
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip :]
            self._skip = 0
        buf = self._rest + data if self._rest else data
        packets: list[Packet] = []
        append = packets.append
        end = len(buf)
        off = 0
        while off < end:
            first = buf[off]
            # remaining length: 1-4 bytes, 7 bits each, low bits first
            pos = off + 1
            length = shift = 0
            while True:
                if pos >= end:
                    self._rest = buf[off:]
                    return packets
                byte = buf[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift >= 28:
                    raise MalformedPacket("remaining length: expected at most 4 bytes, got 5")
            stop = pos + length
            if first >> 4 == 3:
                if stop > end:
                    if length <= self._max_whole:
                        break  # wait for the rest
                    oversized = self._oversized(buf, first, pos)
                    if oversized is None:
                        break  # not even the head is here yet
                    append(oversized)
                    self._skip = stop - end
                    self._rest = b""
                    return packets
                append(_publish(buf, first, pos, stop))
            elif stop > end:
                if length > 0xFFFF:  # nothing but PUBLISH can be this long here
                    raise MalformedPacket(
                        f"{_NAMES[first >> 4]}: expected a short packet, got {length} bytes"
                    )
                break
            else:
                append(_control(buf[pos:stop], first))
            off = stop
        self._rest = buf[off:] if off < end else b""
        return packets

    def _oversized(self, buf: bytes, first: int, pos: int) -> Publish | None:
        """An oversized PUBLISH cut to its head, once the head is in ``buf``."""
        if pos + 2 > len(buf):
            return None
        head = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
        head += (2 if first & 0x06 else 0) + self._max_payload + 1
        if head > len(buf):
            return None
        return _publish(buf, first, pos, head)


def _publish(buf: bytes, first: int, pos: int, stop: int) -> Publish:
    qos = (first >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH: expected QoS 0, 1 or 2, got 3")
    if stop - pos < 2:  # not even the topic's length: never read past the packet
        raise MalformedPacket(f"PUBLISH: expected a topic, got {stop - pos} bytes")
    topic_end = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
    payload_start = topic_end + 2 if qos else topic_end
    if payload_start > stop:
        raise MalformedPacket(
            f"PUBLISH: expected the topic and packet id within {stop - pos} bytes"
        )
    try:
        topic = buf[pos + 2 : topic_end].decode()
    except UnicodeDecodeError:
        raise MalformedPacket("PUBLISH: expected a UTF-8 topic") from None
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise MalformedPacket(f"PUBLISH: expected a topic name, got {topic!r}")
    packet_id = 0
    if qos:
        packet_id = buf[topic_end] << 8 | buf[topic_end + 1]
        if not packet_id:
            raise MalformedPacket("PUBLISH: expected a packet id above 0 at QoS 1 or 2")
    return Publish(
        topic, buf[payload_start:stop], packet_id, qos, bool(first & 0x08), bool(first & 0x01)
    )


def _control(body: bytes, first: int) -> Packet:
    kind, flags = first >> 4, first & 0x0F
    if flags:
        raise MalformedPacket(f"{_NAMES[kind]}: expected flags 0, got {flags}")
    if kind == 2:
        if len(body) != 2 or body[0] & 0xFE:
            raise MalformedPacket(f"CONNACK: expected 2 bytes, flags 0 or 1, got {body.hex()}")
        return ConnAck(bool(body[0]), body[1])
    if kind == 9:
        granted = tuple(body[2:])
        if len(body) < 3 or any(g not in (0, 1, 2, SUBACK_FAILURE) for g in granted):
            raise MalformedPacket(
                f"SUBACK: expected a packet id and return codes, got {body.hex()}"
            )
        return SubAck(body[0] << 8 | body[1], granted)
    if kind == 4:
        if len(body) != 2:
            raise MalformedPacket(f"PUBACK: expected a packet id, got {body.hex()}")
        return PubAck(body[0] << 8 | body[1])
    if kind == 13:
        if body:
            raise MalformedPacket(f"PINGRESP: expected no body, got {len(body)} bytes")
        return PingResp()
    raise MalformedPacket(f"{_NAMES[kind]}: a broker never sends it to this client")
