"""The gateways of a simulated site, and the messages they send (docs/contract.md §1).

Points are reported by the gateway of their point table's ``gateway`` column; without
one, every installation has one gateway, ``{installation}-gw``. A plant
installation's gateway publishes one batch per sample on
``hz/v1/{enterprise}/{gateway}/data`` with an increasing ``seq``; an installation whose
points are all electricity meters publishes one value per point on
``hz/v1/{enterprise}/{gateway}/tag/{tag}``. Gateways announce ``online`` (retained)
on their status topic and leave ``offline`` as their MQTT will.

:class:`GatewayBehaviour` is what a scenario's gateway faults do to that stream — a
clock that is off, duplicated messages, out-of-order delivery, malformed payloads.
Pure: bytes in, bytes out, no sockets (the publisher sends them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson

from hazwatch.models import Point, PointKind, Quality, Registry

METER_KINDS = frozenset(
    {
        PointKind.RESIDUAL_CURRENT,
        PointKind.CABLE_TEMP,
        PointKind.POWER,
        PointKind.CURRENT,
        PointKind.VOLTAGE,
    }
)

MalformedKind = Literal[
    "not_json",
    "truncated",
    "empty",
    "duplicate_key",
    "nan_value",
    "string_value",
    "bad_quality",
    "unknown_tag",
]
"""Broken payloads a scenario can inject, each refused at the edge with a reason
(docs/contract.md, "Rejections") — or, for ``unknown_tag``, counted and listed."""


@dataclass(frozen=True)
class SiteGateway:
    enterprise: str
    gateway: str
    points: tuple[Point, ...]
    meter: bool
    """One value per message on the tag topic, rather than batches on the data topic."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.enterprise, self.gateway)

    @property
    def topic_prefix(self) -> str:
        return f"hz/v1/{self.enterprise}/{self.gateway}"

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}/status"


def gateway_id(installation: str) -> str:
    return f"{installation}-gw"


def gateways_for(registry: Registry) -> list[SiteGateway]:
    """The gateways of the point tables' ``gateway`` column — one per installation,
    ``{installation}-gw``, for points without one — in registry order."""
    found: dict[tuple[str, str], list[Point]] = {}
    for enterprise in registry.enterprises.values():
        for installation in enterprise.installations:
            for point in installation.points:
                gateway = point.gateway or gateway_id(installation.id)
                found.setdefault((enterprise.id, gateway), []).append(point)
    return [
        SiteGateway(enterprise, gateway, tuple(points), all(p.kind in METER_KINDS for p in points))
        for (enterprise, gateway), points in found.items()
    ]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


class Encoder(Protocol):
    """A gateway's messages in a format other than hz-json (:mod:`simulators.formats`)."""

    def sample(self, values: list[tuple[Point, float, Quality]], ts: int) -> list[Message]: ...

    def malformed(self, kind: MalformedKind, ts: int) -> Message: ...

    def reconnect(self) -> None: ...


@dataclass
class GatewayBehaviour:
    """One gateway's message stream, with the faults a scenario switched on."""

    gateway: SiteGateway
    seq: int = 0
    skew_ms: int = 0
    """Added to every timestamp the gateway writes (its clock is off)."""
    duplicates: int = 0
    """The next this many messages are sent twice (a resend after a lost ack)."""
    swaps: int = 0
    """The next this many messages are held back and sent after their successor."""
    encoder: Encoder | None = None
    """The gateway's format, when it is not hz-json."""
    _held: Message | None = field(default=None, repr=False)

    def messages(self, values: list[tuple[Point, float, Quality]], stamp_ms: int) -> list[Message]:
        """The messages of one sample, as the broker receives them, faults included."""
        ts = stamp_ms + self.skew_ms
        out: list[Message] = []
        for message in self._encode(values, ts):
            if self.swaps and self._held is None:
                self._held = message
                continue
            out.append(message)
            if self.duplicates:
                self.duplicates -= 1
                out.append(message)
            if self._held is not None:  # the held one arrives after its successor
                out.append(self._held)
                self._held = None
                self.swaps -= 1
        return out

    def discard_held(self) -> None:
        """The link dropped: a message still held back is lost with it."""
        if self._held is not None:
            self._held = None
            self.swaps -= 1

    def _encode(self, values: list[tuple[Point, float, Quality]], ts: int) -> list[Message]:
        if self.encoder is not None:
            return self.encoder.sample(values, ts)
        prefix = self.gateway.topic_prefix
        if self.gateway.meter:
            return [
                Message(
                    f"{prefix}/tag/{point.tag}",
                    orjson.dumps(_reading(None, _json_value(point, value), q, ts)),
                )
                for point, value, q in values
            ]
        self.seq += 1
        readings = [_reading(p.tag, _json_value(p, v), q, None) for p, v, q in values]
        payload = orjson.dumps({"seq": self.seq, "ts": ts, "readings": readings})
        return [Message(f"{prefix}/data", payload)]

    def malformed(self, kind: MalformedKind, stamp_ms: int) -> Message:
        """A broken message on the gateway's data topic (it carries no ``seq``)."""
        ts = stamp_ms + self.skew_ms
        if self.encoder is not None:
            return self.encoder.malformed(kind, ts)
        tag = self.gateway.points[0].tag
        good = b'{"ts": %d, "readings": [{"tag": "%s", "v": 1.0}]}' % (ts, tag.encode())
        payloads: dict[MalformedKind, bytes] = {
            "not_json": b"<reading tag='%s'>1.0</reading>" % tag.encode(),
            "truncated": good[: len(good) // 2],
            "empty": b"",
            "duplicate_key": b'{"ts": %d, "ts": %d, "readings": []}' % (ts, ts + 1),
            "nan_value": good.replace(b"1.0", b"NaN"),
            "string_value": good.replace(b"1.0", b'"1.0"'),
            "bad_quality": good.replace(b"1.0}", b'1.0, "q": "excellent"}'),
            "unknown_tag": good.replace(tag.encode(), b"NOT_REGISTERED_01"),
        }
        return Message(f"{self.gateway.topic_prefix}/data", payloads[kind])


def _json_value(point: Point, value: float) -> float | bool:
    """Digital points travel as JSON booleans, as real gateways send them."""
    return value >= 0.5 if point.kind is PointKind.STATE else value


def _reading(
    tag: str | None, value: float | bool, quality: Quality, ts: int | None
) -> dict[str, object]:
    reading: dict[str, object] = {} if tag is None else {"tag": tag}
    reading["v"] = value
    if quality is not Quality.GOOD:
        reading["q"] = quality.value
    if ts is not None:
        reading["ts"] = ts
    return reading
