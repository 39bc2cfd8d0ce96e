"""What the JSON codecs of common gateways share: limits, parsing, mapping, rejections.

A gateway codec (:mod:`ingest.neuron`, :mod:`ingest.thingsboard`, :mod:`ingest.telegraf`,
:mod:`ingest.fieldmap`) only walks its format's document and calls :meth:`Walk.reading`
and :meth:`Walk.status` for what it finds, naming each source by the format's own
fields; this base checks the payload size, parses (:mod:`ingest.jsonpayload`), places
each source with the codec's rules (:mod:`ingest.mapping`) and keeps the codec
promises of :mod:`ingest.codec`: ``decode`` never raises, a structural problem rejects
the message, a problem with one reading (or one source) rejects only that.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hazwatch.errors import ConfigError
from hazwatch.models import GatewayState, GatewayStatus, Quality, Reading
from hazwatch.settings import CodecSettings, IngestSettings, MappingRule
from ingest.codec import Decoded, Problem, decode_guarded, describe, printable, rejection
from ingest.jsonpayload import check_size, item_head, number, parse_json
from ingest.jsonpayload import rfc3339_ms as _rfc3339_ms
from ingest.mapping import MappingProblem, NameMapper, Target, TopicLevels

TIME_UNITS_MS = {"s": 1000, "ms": 1, "us": 0.001, "ns": 0.000001}
"""Epoch time units a gateway may write, in milliseconds."""

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class CodecOptions(BaseModel):
    """Base of a kind's ``[ingest.codecs.options]``: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_options(model: type[OptionsT], entry: CodecSettings, where: str) -> OptionsT:
    """A kind's options, validated; ``ConfigError`` names the key."""
    try:
        return model.model_validate(entry.options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.options.{'.'.join(str(p) for p in e['loc'])}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        )
        raise ConfigError(problems) from exc


def epoch_ms(raw: Any, unit_ms: float, field: str = "ts") -> int:
    """A gateway's timestamp in epoch milliseconds: a number in its unit, or RFC 3339.

    >>> epoch_ms(1458229140, 1000), epoch_ms(1650006388943, 1), epoch_ms("2025-11-22T14:00:00Z", 1)
    (1458229140000, 1650006388943, 1763820000000)
    """
    kind = type(raw)
    if kind is int or (kind is float and math.isfinite(raw) and abs(raw) < 1e15):
        return round(float(raw) * unit_ms)
    if kind is str and (parsed := _rfc3339_ms(raw)) is not None:
        return parsed
    raise Problem(
        "bad_ts", f"expected epoch time or an RFC 3339 string, got {describe(raw)}", field
    )


class Walk:
    """One message being decoded: its gateway parts and their readings."""

    def __init__(self, codec: GatewayJsonCodec, decoded: Decoded, payload: bytes) -> None:
        self.codec = codec
        self.decoded = decoded
        self.payload = payload
        self.topic = TopicLevels(decoded.topic.split("/"))
        self._parts: dict[tuple[str, str], Decoded] = {}

    def target(self, key: Hashable, fields: Mapping[str, Any]) -> Target | None:
        """The source's target; ``None`` (and one rejection) when the rules cannot place it."""
        try:
            return self.codec.mapper.target(key, {**fields, "topic": self.topic})
        except MappingProblem as problem:
            self.reject(Problem(problem.reason, problem.detail))
            return None

    def part(self, target: Target) -> Decoded:
        """The ``Decoded`` of the target's gateway (the message itself for the first)."""
        key = (target.enterprise, target.gateway)
        found = self._parts.get(key)
        if found is None:
            d = self.decoded
            if d.enterprise is None:
                found = d
            else:
                found = Decoded(codec=d.codec, topic=d.topic, received_ms=d.received_ms)
            found.enterprise, found.gateway = key
            self._parts[key] = found
        return found

    def reading(  # noqa: PLR0917 - a reading is all of these
        self,
        target: Target,
        key: Hashable,
        fields: Mapping[str, Any],
        point: tuple[str, str],
        raw: Any,
        ts_ms: int | None,
        quality: Quality = Quality.GOOD,
    ) -> None:
        """One value of a point; ``point`` is the format's field naming it and its name
        (``("tag", "TK101_LT")``). A value that is no number rejects only itself."""
        field, name = point
        mapper = self.codec.mapper
        tag = mapper.cached(key, name)
        if tag is None:
            tag = mapper.tag(key, target, {**fields, field: name, "topic": self.topic}, name)
        try:
            value = self.codec.value(raw)
        except Problem as exc:
            head = item_head({"name": name, "value": raw}) if _jsonable(raw) else None
            self.reject(exc.at(printable(name, 80)), head)
            return
        part = self.part(target)
        if len(part.readings) >= self.codec.max_readings:
            raise Problem(
                "too_many_readings",
                f"expected at most {self.codec.max_readings} readings per gateway and message",
            )
        received = part.received_ms
        part.readings.append(
            Reading(
                target.enterprise,
                target.gateway,
                tag,
                value,
                received if ts_ms is None else ts_ms,
                quality,
                receive_time=ts_ms is None,
            )
        )

    def status(self, target: Target, state: GatewayState) -> None:
        part = self.part(target)
        part.status = GatewayStatus(target.enterprise, target.gateway, state, part.received_ms)

    def reject(self, problem: Problem, head: str | None = None) -> None:
        self.decoded.rejections.append(rejection(self.decoded, self.payload, problem, head))

    def finish(self) -> None:
        self.decoded.also = tuple(p for p in self._parts.values() if p is not self.decoded)


class GatewayJsonCodec:
    """Base of the gateway JSON codecs; a kind sets the class variables and ``walk``."""

    kind: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...] | None]
    """The format's fields that rules can match and templates use (``None``: open)."""
    TOPICS: ClassVar[tuple[str, ...]]
    MAP: ClassVar[tuple[MappingRule, ...]]
    """The kind's default rules (tried after the configured ones)."""

    def __init__(self, entry: CodecSettings, where: str, limits: IngestSettings) -> None:
        self.name = entry.name or entry.kind
        self._topics = list(entry.topics or self.TOPICS)
        self.mapper = NameMapper(where, entry.map, self.MAP, entry.tags, self.FIELDS)
        self.max_bytes = limits.max_payload_bytes
        self.max_readings = limits.max_readings

    def topic_filters(self) -> list[str]:
        return list(self._topics)

    def decode(self, topic: str, payload: bytes, received_ms: int) -> Decoded:
        decoded = Decoded(codec=self.name, topic=topic, received_ms=received_ms)
        return decode_guarded(decoded, payload, self._decode)

    def _decode(self, decoded: Decoded, payload: bytes) -> None:
        walk = Walk(self, decoded, payload)
        check_size(payload, self.max_bytes)
        self.walk(walk, parse_json(payload))
        walk.finish()

    def walk(self, walk: Walk, doc: Any) -> None:
        raise NotImplementedError

    def value(self, raw: Any) -> float:
        """A JSON value as a reading's value (a kind may accept more, e.g. numeric strings)."""
        return number(raw, "value")


def _jsonable(raw: Any) -> bool:
    return raw is None or isinstance(raw, str | int | float | bool | list | dict)


def object_doc(doc: Any, shape: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise Problem("bad_structure", f"expected an object {shape}, got {describe(doc)}")
    return doc
