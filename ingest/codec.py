"""The seam for payload formats: one codec per format, each yielding the same values.

A codec turns one MQTT message (topic + bytes) into a :class:`Decoded`: the
readings it carried, the rejections (what was wrong, and why), a gateway status or
a sequence number. Codecs are chosen by the subscription a message arrived on
(:meth:`PayloadCodec.topic_filters`, routed by :class:`ingest.routes.CodecRoutes`), so
topic parsing stays inside each codec. Which codecs run is configuration
(``[[ingest.codecs]]``, built by :mod:`ingest.codecs`): hz-json (the default),
Sparkplug B, and the JSON of common gateways.

Two promises every codec keeps:

- ``decode`` never raises, whatever the bytes: a bad message becomes a
  :class:`Rejection` with a short countable ``reason`` and a ``detail`` that says
  what was expected and what came.
- A structural problem rejects the whole message; a problem with one reading
  rejects only that reading.

Reason codes used across codecs and the validator::

    empty  too_large  json  duplicate_key  bad_structure  too_many_readings
    bad_topic  bad_id  bad_tag  bad_value  not_finite  bad_ts  bad_quality
    bad_seq  bad_status  ts_out_of_window  unknown_enterprise  sink_rejected  decoder_error
    unmapped  source_error  bad_unit                       (gateway JSON codecs)
    protobuf  no_birth  unknown_alias  duplicate_alias             (Sparkplug B)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import GatewayStatus, Reading
from hazwatch.settings import IngestSettings

log = structlog.get_logger(__name__)

PAYLOAD_HEAD_CHARS = 200


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message, or one reading of it, was not accepted."""

    ts_ms: int
    """Receive time (epoch ms)."""
    topic: str
    reason: str
    """Short countable code (see the module docstring)."""
    detail: str
    """Human sentence: what was expected, what came."""
    payload_head: str
    """First <= 200 characters of the payload (or of the reading), printable."""


@dataclass(slots=True)
class Decoded:
    """What one MQTT message became."""

    codec: str
    topic: str
    received_ms: int
    enterprise: str | None = None
    gateway: str | None = None
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    status: GatewayStatus | None = None
    seq: int | None = None
    also: tuple[Decoded, ...] = ()
    """Further gateways of the same MQTT message, each its own ``Decoded`` (a
    ThingsBoard message carries several devices; an NDEATH takes a Sparkplug node's
    devices offline too). They are handled after this one, in order; the message is
    acknowledged after the last of them."""

    def parts(self) -> tuple[Decoded, ...]:
        """This message's gateway parts, in order: itself, then ``also``."""
        return (self, *self.also)


class PayloadCodec(Protocol):
    name: str

    def topic_filters(self) -> list[str]:
        """MQTT subscriptions this codec decodes, e.g. ``hz/v1/+/+/data``."""
        ...

    def decode(self, topic: str, payload: bytes, received_ms: int) -> Decoded:
        """Never raises: problems become ``Decoded.rejections``."""
        ...


@dataclass(frozen=True, slots=True)
class CodecContext:
    """What a codec may be built with (:mod:`ingest.codecs`): the limits, a clock, metrics."""

    limits: IngestSettings
    clock: Clock
    metrics: Metrics


class Problem(Exception):
    """One problem found while decoding: a rejection code, and where and what."""

    def __init__(self, reason: str, detail: str, field: str = "") -> None:
        self.reason = reason
        self.field = field
        self.problem = detail
        self.detail = f"{field}: {detail}" if field else detail
        super().__init__(f"{reason}: {self.detail}")

    def at(self, where: str) -> Problem:
        """The same problem, located: ``readings[3] (TK101_LT).v: expected ...``."""
        located = f"{where}.{self.field}" if self.field else where
        return Problem(self.reason, f"{located}: {self.problem}")


def rejection(
    decoded: Decoded, payload: bytes, problem: Problem, head: str | None = None
) -> Rejection:
    return Rejection(
        ts_ms=decoded.received_ms,
        topic=decoded.topic,
        reason=problem.reason,
        detail=problem.detail,
        payload_head=payload_head(payload) if head is None else head,
    )


def decode_guarded(
    decoded: Decoded, payload: bytes, work: Callable[[Decoded, bytes], None]
) -> Decoded:
    """``work(decoded, payload)`` — a codec's decoding — with the codec's promises kept:
    a :class:`Problem` becomes one rejection of the whole message, anything else a
    ``decoder_error`` (logged with its traceback) — never an exception."""
    try:
        work(decoded, payload)
    except Problem as exc:
        _reject_all(decoded, rejection(decoded, payload, exc))
    except Exception as exc:
        log.exception("decoder_error", codec=decoded.codec, topic=printable(decoded.topic))
        problem = Problem("decoder_error", f"the decoder failed unexpectedly: {exc!r}")
        _reject_all(decoded, rejection(decoded, payload, problem))
    return decoded


def _reject_all(decoded: Decoded, problem: Rejection) -> None:
    decoded.readings.clear()
    decoded.status = None
    decoded.seq = None
    decoded.also = ()
    decoded.rejections.append(problem)


def payload_head(payload: bytes, limit: int = PAYLOAD_HEAD_CHARS) -> str:
    """The first ``limit`` characters of a payload, safe to show in a list or a log.

    Invalid UTF-8 becomes ``\\xNN``; control characters (newlines included) are
    escaped, so a hostile payload cannot forge lines in a log or a table.

    >>> payload_head(b'{"v": 1}\\n\\xff')
    '{"v": 1}\\\\n\\\\xff'
    """
    text = payload[:limit].decode("utf-8", errors="backslashreplace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text[:limit]


def printable(text: str, limit: int = PAYLOAD_HEAD_CHARS) -> str:
    """A topic or other gateway-supplied text, safe for one log line (see payload_head)."""
    return payload_head(text.encode("utf-8", "backslashreplace"), limit)


def reading_head(reading: Reading) -> str:
    """What stands in for the payload when one reading is rejected: the reading itself."""
    return payload_head(
        f'{{"tag": "{reading.tag}", "v": {reading.value!r}, "ts": {reading.ts_ms}, '
        f'"q": "{reading.quality.value}"}}'.encode()
    )


def describe(value: Any, limit: int = 40) -> str:
    """Name a JSON value's type and show it briefly: for "expected X, got Y" messages.

    >>> describe("abc"), describe(None), describe([1, 2]), describe(True)
    ("string 'abc'", 'null', 'array [1, 2]', 'boolean true')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean true" if value else "boolean false"
    kind = {
        str: "string",
        int: "integer",
        float: "number",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)
    shown = repr(value)
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"{kind} {shown}"
