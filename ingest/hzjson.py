"""hz-json, the platform's own gateway format (docs/contract.md §1).

Topics::

    hz/v1/{enterprise}/{gateway}/data       {"seq": 1842, "ts": ..., "readings": [...]}
    hz/v1/{enterprise}/{gateway}/tag/{tag}  3.42   or   {"v": 3.42, "ts": ..., "q": "good"}
    hz/v1/{enterprise}/{gateway}/status     online | offline

Parsing is orjson (fast, rejects ``NaN``/``Infinity`` literals and ``1e999``, caps
nesting at 1024 so deep nesting is a ``JSONDecodeError``, never a
``RecursionError``). The payload size is capped *before* parsing. Keys that this
version does not know are ignored, so gateways may add fields ahead of the
platform. Timestamps are validated for form here; the time window is checked by
:class:`ingest.validation.ReadingValidator`, which knows "now".
"""

from __future__ import annotations

import re
from typing import Any

import structlog

from hazwatch.errors import ConfigError
from hazwatch.models import ID_PATTERN, TAG_PATTERN, GatewayState, GatewayStatus, Quality, Reading
from hazwatch.settings import CodecSettings, IngestSettings
from ingest.codec import CodecContext, Decoded, decode_guarded, describe, payload_head, rejection
from ingest.codec import Problem as _Reject
from ingest.jsonpayload import check_size, item_head, number, parse_json, rfc3339_ms

log = structlog.get_logger(__name__)

# fullmatch, not match: with match, "$" also matches before a trailing newline.
_ID = re.compile(ID_PATTERN)
_TAG = re.compile(TAG_PATTERN)
_QUALITIES = {q.value: q for q in Quality}
_STATES = {b"online": GatewayState.ONLINE, b"offline": GatewayState.OFFLINE}
_ID_RULE = "1-64 characters of A-Z a-z 0-9 _ -"
_TAG_RULE = "1-128 characters of A-Z a-z 0-9 _ . : -"
_TS_RULE = "epoch milliseconds (integer) or an RFC 3339 string"


TOPICS_CACHED = 100_000
"""Distinct valid topics whose parts are remembered (one per gateway and kind, or per
single-value tag): checking ids with regular expressions was a tenth of a single
reading's decode."""
TAGS_CACHED = 1_000_000
"""Distinct valid tags remembered, so a known tag is not matched against the pattern again."""
_Topic = tuple[str, str, str, str]
"""(enterprise, gateway, kind, tag — "" unless kind is "tag")."""


class HzJsonCodec:
    """Decoder of the hz-json topics; one instance serves all gateways."""

    name = "hz-json"

    def __init__(self, limits: IngestSettings) -> None:
        self._max_bytes = limits.max_payload_bytes
        self._max_readings = limits.max_readings
        self._topics: dict[str, _Topic] = {}
        self._tags: dict[str, str] = {}
        """Tags that passed TAG_PATTERN, each to the first string decoded for it: the
        readings of a tag share that one string (the latest value kept per point holds
        a reading, and would otherwise hold another copy of the tag)."""

    def topic_filters(self) -> list[str]:
        return ["hz/v1/+/+/data", "hz/v1/+/+/tag/+", "hz/v1/+/+/status"]

    def decode(self, topic: str, payload: bytes, received_ms: int) -> Decoded:
        decoded = Decoded(codec=self.name, topic=topic, received_ms=received_ms)
        return decode_guarded(decoded, payload, self._decode)

    def _decode(self, decoded: Decoded, payload: bytes) -> None:
        topic = self._topics.get(decoded.topic) or self._topic(decoded.topic)
        enterprise, gateway, kind, tag = topic
        decoded.enterprise, decoded.gateway = enterprise, gateway
        check_size(payload, self._max_bytes)
        if kind == "data":
            self._data(decoded, payload)
        elif kind == "status":
            state = _STATES.get(payload)
            if state is None:
                raise _Reject(
                    "bad_status", f"expected online or offline, got {payload_head(payload, 40)!r}"
                )
            decoded.status = GatewayStatus(enterprise, gateway, state, decoded.received_ms)
        else:
            self._single(decoded, payload, tag)

    def _topic(self, topic: str) -> _Topic:
        """A topic's parts, checked once per distinct topic (then remembered)."""
        parts = topic.split("/")
        if len(parts) not in (5, 6) or parts[:2] != ["hz", "v1"]:
            raise _Reject(
                "bad_topic",
                f"expected hz/v1/{{enterprise}}/{{gateway}}/..., got {describe(topic, 80)}",
            )
        enterprise, gateway, kind = parts[2], parts[3], parts[4]
        for what, value in (("enterprise", enterprise), ("gateway", gateway)):
            if not _ID.fullmatch(value):
                raise _Reject("bad_id", f"{what} id: expected {_ID_RULE}, got {describe(value)}")
        if len(parts) == 6 and kind == "tag":
            tag = parts[5]
            if not _TAG.fullmatch(tag):
                raise _Reject("bad_tag", f"tag in topic: expected {_TAG_RULE}, got {describe(tag)}")
        elif len(parts) == 5 and kind in ("data", "status"):
            tag = ""
        else:
            raise _Reject(
                "bad_topic",
                f"expected .../data, .../tag/{{tag}} or .../status, got {describe(topic, 80)}",
            )
        if len(self._topics) >= TOPICS_CACHED:
            self._topics.clear()
        found = self._topics[topic] = (enterprise, gateway, kind, tag)
        return found

    def _data(self, decoded: Decoded, payload: bytes) -> None:
        doc = parse_json(payload)
        if not isinstance(doc, dict):
            raise _Reject(
                "bad_structure", f'expected an object {{"readings": [...]}}, got {describe(doc)}'
            )
        seq = doc.get("seq")
        if seq is not None and (type(seq) is not int or seq < 0):
            raise _Reject("bad_seq", f"seq: expected an integer >= 0, got {describe(seq)}")
        msg_ts = None if "ts" not in doc else _timestamp(doc["ts"])
        items = doc.get("readings")
        if not isinstance(items, list):
            raise _Reject("bad_structure", f"readings: expected an array, got {describe(items)}")
        if len(items) > self._max_readings:
            raise _Reject(
                "too_many_readings",
                f"expected at most {self._max_readings} readings per message, got {len(items)}",
            )
        decoded.seq = seq
        enterprise, gateway = decoded.enterprise, decoded.gateway
        assert enterprise is not None
        assert gateway is not None
        received_ms = decoded.received_ms
        readings = decoded.readings
        append = readings.append
        tags = self._tags
        stamped = msg_ts is None  # a reading without ts takes the receive time
        default_ts = received_ms if msg_ts is None else msg_ts
        good = Quality.GOOD
        for index, item in enumerate(items):
            # The common shape {"tag": known, "v": finite float[, "ts": int]} without a
            # call, a regular expression or a string built; anything else: the full path.
            if type(item) is dict and len(item) <= 3:
                tag = item.get("tag")
                value = item.get("v")
                ts = item.get("ts", default_ts)
                if (
                    type(tag) is str
                    and tag in tags
                    and type(value) is float
                    and value - value == 0.0  # finite
                    and type(ts) is int
                    and len(item) == 2 + ("ts" in item)
                ):
                    append(
                        Reading(
                            enterprise,
                            gateway,
                            tags[tag],  # the tag's one string
                            value,
                            ts,
                            good,
                            stamped and ts is default_ts,
                        )
                    )
                    continue
            try:
                reading = _batch_reading(enterprise, gateway, item, msg_ts, received_ms)
                append(reading)
                if len(tags) < TAGS_CACHED:
                    tags.setdefault(reading.tag, reading.tag)
            except _Reject as exc:  # one bad reading: the others of the message are kept
                tag = item.get("tag") if isinstance(item, dict) else None
                where = f"readings[{index}]"
                if isinstance(tag, str) and _TAG.fullmatch(tag):
                    where += f" ({tag})"
                head = item_head(item) if isinstance(item, dict) else None
                decoded.rejections.append(rejection(decoded, payload, exc.at(where), head))

    def _single(self, decoded: Decoded, payload: bytes, tag: str) -> None:
        doc = parse_json(payload)
        item = doc if isinstance(doc, dict) else {"v": doc}
        assert decoded.enterprise is not None
        assert decoded.gateway is not None
        try:
            reading = _reading(
                item,
                tag,
                None,
                enterprise=decoded.enterprise,
                gateway=decoded.gateway,
                received_ms=decoded.received_ms,
            )
        except _Reject as exc:
            raise exc.at(tag) from None
        decoded.readings.append(reading)


def _batch_reading(
    enterprise: str, gateway: str, item: Any, msg_ts: int | None, received_ms: int
) -> Reading:
    if type(item) is not dict:
        raise _Reject("bad_structure", f'expected an object {{"tag", "v"}}, got {describe(item)}')
    tag = item.get("tag")
    if type(tag) is not str or not _TAG.fullmatch(tag):
        raise _Reject("bad_tag", f"expected {_TAG_RULE}, got {describe(tag)}", "tag")
    return _reading(
        item, tag, msg_ts, enterprise=enterprise, gateway=gateway, received_ms=received_ms
    )


def _reading(
    item: dict[str, Any],
    tag: str,
    msg_ts: int | None,
    *,
    enterprise: str,
    gateway: str,
    received_ms: int,
) -> Reading:
    # The hot path: no string is built unless something is wrong.
    if "v" not in item:
        raise _Reject("bad_value", "expected a finite number or a boolean, got no v", "v")
    value = number(item["v"])
    quality = Quality.GOOD
    if "q" in item:
        q = item["q"]
        found = _QUALITIES.get(q) if type(q) is str else None
        if found is None:
            raise _Reject("bad_quality", f"expected good, uncertain or bad, got {describe(q)}", "q")
        quality = found
    if "ts" in item:
        return Reading(enterprise, gateway, tag, value, _timestamp(item["ts"]), quality)
    if msg_ts is not None:
        return Reading(enterprise, gateway, tag, value, msg_ts, quality)
    return Reading(enterprise, gateway, tag, value, received_ms, quality, receive_time=True)


def _timestamp(raw: Any) -> int:
    if type(raw) is int:
        return int(raw)
    if type(raw) is str:
        parsed = rfc3339_ms(raw)
        if parsed is not None:
            return parsed
    raise _Reject("bad_ts", f"expected {_TS_RULE}, got {describe(raw)}", "ts")


def build(entry: CodecSettings, where: str, context: CodecContext) -> HzJsonCodec:
    """The ``[[ingest.codecs]] kind = "hz-json"`` entry: its topics name enterprise,
    gateway and tag, so it takes no ``topics``, ``map``, ``tags`` or ``options``."""
    given = [key for key in ("topics", "map", "tags", "options") if getattr(entry, key)]
    if given:
        raise ConfigError(
            f"{where}: hz-json names enterprise, gateway and tag in its own topics; "
            f"it takes no {', '.join(given)}"
        )
    codec = HzJsonCodec(context.limits)
    if entry.name:
        codec.name = entry.name
    return codec
