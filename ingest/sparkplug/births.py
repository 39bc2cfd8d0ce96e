"""What a Sparkplug host remembers of each edge node: its session, its births, its seq.

A DATA message carries aliases and values, not names or types: the BIRTH of its edge
node (NBIRTH) or device (DBIRTH) said what each alias is. :class:`NodeSession` keeps
that per edge node and device — alias → :class:`MetricInfo` (name, datatype, the
hazwatch tag its name maps to) — with the ``bdSeq`` of the node's MQTT session (an
NDEATH counts only with the same ``bdSeq``: a late will of an older session must not
take the new one offline) and the ``seq`` of its messages (:class:`SeqTracker`).

Values are read by their BIRTH datatype (Sparkplug 3.0, payloads): Int8/16/32 travel
as a uint32 two's complement (:func:`signed`), Int64 as a uint64 two's complement,
Boolean as a bool; UInt*, Float and Double as they are. Other datatypes (String, DateTime,
DataSet, Template, arrays...) are not readings: they are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.mapping import Target

SEQ_MODULUS = 256
MAX_MISSING = SEQ_MODULUS // 2
"""A seq more than this far ahead is taken for an old one (a repeat), not a gap."""

# DataType numbers of the specification (sparkplug_b.proto)
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN = 9, 10, 11
_SIGNED = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_NUMERIC = {
    INT8: "int_value",
    INT16: "int_value",
    INT32: "int_value",
    UINT8: "int_value",
    UINT16: "int_value",
    UINT32: "int_value",
    INT64: "long_value",
    UINT64: "long_value",
    FLOAT: "float_value",
    DOUBLE: "double_value",
    BOOLEAN: "boolean_value",
}
CONTROL_PREFIXES = ("Node Control/", "Device Control/")
"""Metrics that are commands to the edge node, not measurements."""
BDSEQ = "bdSeq"


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One metric as its BIRTH declared it."""

    name: str
    datatype: int
    tag: str
    """The hazwatch tag its name maps to (``[[ingest.codecs.map]]``, ``tags``)."""
    field: str | None
    """The payload field its value travels in; ``None``: not a reading (skipped)."""
    signed_bits: int
    """8, 16, 32 or 64 for signed integers (two's complement on the wire), else 0."""


def metric_info(name: str, datatype: int, tag: str) -> MetricInfo:
    reading = datatype in _NUMERIC and not name.startswith(CONTROL_PREFIXES) and name != BDSEQ
    return MetricInfo(
        name, datatype, tag, _NUMERIC[datatype] if reading else None, _SIGNED.get(datatype, 0)
    )


def signed(value: int, bits: int) -> int:
    """A two's complement integer as its signed value. An Int8 or Int16 may come as a
    32-bit two's complement (Eclipse Tahu) or in its own width (other encoders): both
    are read.

    >>> signed(4294967295, 8), signed(65531, 16), signed(5, 32), signed(2**64 - 2, 64)
    (-1, -5, 5, -2)
    """
    if bits < 32 and value >= 1 << 31:
        bits = 32
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


@dataclass(slots=True)
class Birth:
    """The metrics of one BIRTH (an edge node's own, or one device's)."""

    target: Target
    by_alias: dict[int, MetricInfo] = field(default_factory=dict)
    by_name: dict[str, MetricInfo] = field(default_factory=dict)


class SeqTracker:
    """The ``seq`` (0-255) of one edge node's messages: gaps, late arrivals, repeats.

    A gap opens the reorder window: the missing numbers may still come (a broker
    cluster delivers topics in different orders) until :meth:`overdue`.

    >>> seqs = SeqTracker(0)
    >>> seqs.observe(1, 0), seqs.observe(4, 10), seqs.observe(2, 20), seqs.overdue(1000, 2000)
    (0, 2, 0, False)
    >>> seqs.overdue(2010, 2000), seqs.observe(4, 30)
    (True, -1)
    """

    __slots__ = ("last", "missing")

    def __init__(self, first: int) -> None:
        self.last = first
        self.missing: dict[int, int] = {}
        """Missing seq → when its absence was noticed (epoch ms)."""

    def observe(self, seq: int, now_ms: int) -> int:
        """The numbers newly found missing (0: in order or a late one; -1: a repeat)."""
        expected = (self.last + 1) % SEQ_MODULUS
        if seq == expected:
            self.last = seq
            return 0
        if self.missing.pop(seq, None) is not None:
            return 0
        ahead = (seq - expected) % SEQ_MODULUS
        if ahead >= MAX_MISSING:
            return -1
        for k in range(ahead):
            self.missing[(expected + k) % SEQ_MODULUS] = now_ms
        self.last = seq
        return ahead

    def overdue(self, now_ms: int, timeout_ms: int) -> bool:
        """Has a missing number been waited for ``timeout_ms``? (Then they are given up.)"""
        if self.missing and now_ms - min(self.missing.values()) >= timeout_ms:
            self.missing.clear()
            return True
        return False


@dataclass(slots=True)
class NodeSession:
    """One edge node between its NBIRTH and its NDEATH."""

    group: str
    edge_node: str
    bd_seq: int | None
    seqs: SeqTracker
    node: Birth
    devices: dict[str, Birth] = field(default_factory=dict)

    def aliases_in_use(self, except_device: str | None = None) -> set[int]:
        """Aliases of the node and its devices (a DBIRTH may not reuse one)."""
        used = set(self.node.by_alias)
        for device, birth in self.devices.items():
            if device != except_device:
                used.update(birth.by_alias)
        return used
