"""Sparkplug B 3.0 as a hazwatch host application: the codec.

Topics ``spBv1.0/{group}/{NBIRTH|NDATA|NDEATH}/{edge_node}`` and
``spBv1.0/{group}/{DBIRTH|DDATA|DDEATH}/{edge_node}/{device}``; payloads are the
specification's protobuf (``sparkplug_b.proto``, compiled into ``sparkplug_b_pb2``).
Its own STATE topic ``spBv1.0/STATE/{host_id}`` is read too (JSON of 3.0, or 2.2's
plain ``ONLINE``/``OFFLINE``) for :mod:`ingest.sparkplug.host`.

- **BIRTH**: the metrics' aliases, names and datatypes are remembered
  (:mod:`ingest.sparkplug.births`) and their current values are readings; an edge
  node's or device's gateway goes ``online``.
- **DATA**: each metric found by alias (or name) is a reading, with the metric's own
  timestamp (else the payload's); a ``Quality`` property 0 / 192 / 500 makes it
  ``bad`` / ``good`` / ``uncertain`` (any other value ``uncertain``). Null values,
  control metrics (``Node Control/*``, ``bdSeq``) and non-numeric datatypes are skipped.
- **DEATH**: NDEATH with the node's current ``bdSeq`` takes its gateway and all its
  devices' gateways ``offline`` (GATEWAY_OFFLINE, through the status path of every
  codec); another ``bdSeq`` is an older session's will and is ignored (counted).
  DDEATH takes the device's gateway offline.
- **seq**: every BIRTH, DATA and DDEATH of a node is numbered 0-255. A gap is waited
  for up to ``reorder_timeout_s`` (the messages are processed as they come: readings
  carry their own times); then a rebirth is requested. Gaps are counted in
  ``hazwatch_gateway_seq_gaps_total`` of the node's gateway.

Bad input is one rejection with a reason, never an exception: ``protobuf`` (not a
Sparkplug payload), ``duplicate_alias`` (a BIRTH declaring an alias twice; the BIRTH
is not taken), ``unknown_alias`` (DATA naming an alias its BIRTH did not; the other
metrics are kept), ``no_birth`` (DATA before its BIRTH), ``bad_seq``, ``bad_topic``,
``bad_status`` (a STATE that is neither form). Each of the last four but ``bad_topic``
and ``bad_status`` also asks the edge node for a rebirth (rate-limited by the host).

Mapping (``[[ingest.codecs.map]]``): fields ``group``, ``edge_node``, ``device`` (""
for the node's own metrics), ``metric``. Defaults: enterprise ``{group}``, gateway
``{edge_node}`` (a device: ``{edge_node}-{device}``), tag ``{metric}``. A metric whose
tag is not in the registry is listed under unknown tags, like any unregistered tag.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
import structlog
from google.protobuf.message import DecodeError
from pydantic import Field, field_validator

from hazwatch.metrics import Metrics
from hazwatch.models import GatewayState, GatewayStatus, Quality, Reading
from hazwatch.settings import CodecSettings, MappingRule
from ingest.codec import (
    CodecContext,
    Decoded,
    Problem,
    decode_guarded,
    describe,
    payload_head,
    printable,
    rejection,
)
from ingest.gatewayjson import CodecOptions, parse_options
from ingest.jsonpayload import check_size
from ingest.mapping import MappingProblem, NameMapper, Target, TopicLevels
from ingest.sparkplug import sparkplug_b_pb2 as pb
from ingest.sparkplug.births import BDSEQ, Birth, NodeSession, SeqTracker, metric_info, signed
from ingest.sparkplug.host import SparkplugHost

log = structlog.get_logger(__name__)

NAMESPACE = "spBv1.0"
NODE_TYPES = ("NBIRTH", "NDATA", "NDEATH")
DEVICE_TYPES = ("DBIRTH", "DDATA", "DDEATH")
COMMANDS = ("NCMD", "DCMD")
QUALITIES = {0: Quality.BAD, 192: Quality.GOOD, 500: Quality.UNCERTAIN}
PROPERTY_SETS_KEPT = 1024
"""Distinct property sets whose quality is remembered (see :class:`QualityReader`)."""
PROPERTY_SET_BYTES_KEPT = 256
NODES_KEPT = 100_000
"""Edge node sessions remembered at most (the oldest is forgotten: it rebirths)."""


class SparkplugOptions(CodecOptions):
    host_id: str = "hazwatch"
    """This host application's id: its STATE topic ``spBv1.0/STATE/{host_id}``."""
    groups: tuple[str, ...] = ("+",)
    """Group ids subscribed (``+``: all)."""
    reorder_timeout_s: float = Field(default=2.0, ge=0)
    rebirth_interval_s: float = Field(default=10.0, gt=0)
    """One edge node is asked for a rebirth at most this often."""
    rebirths_per_s: float = Field(default=10.0, gt=0)
    """All edge nodes together are asked at most this often."""

    @field_validator("host_id", "groups")
    @classmethod
    def _no_wildcards(cls, value: Any) -> Any:
        for text in [value] if isinstance(value, str) else value:
            if not text or "/" in text or "#" in text or ("+" in text and text != "+"):
                raise ValueError(f"expected an id without / # + (or + alone), got {text!r}")
        return value


class SparkplugCodec:
    kind = "sparkplug-b"
    FIELDS = ("group", "edge_node", "device", "metric")
    MAP: ClassVar[tuple[MappingRule, ...]] = (
        MappingRule(match={"device": ""}, enterprise="{group}", gateway="{edge_node}"),
        MappingRule(enterprise="{group}", gateway="{edge_node}-{device}", tag="{metric}"),
    )

    def __init__(self, entry: CodecSettings, where: str, context: CodecContext) -> None:
        self.options = o = parse_options(SparkplugOptions, entry, where)
        self.name = entry.name or entry.kind
        self.mapper = NameMapper(where, entry.map, self.MAP, entry.tags, self.FIELDS)
        self._topics = list(entry.topics) or [
            f"{NAMESPACE}/{group}/{kind}/+" + ("/+" if kind in DEVICE_TYPES else "")
            for group in o.groups
            for kind in (*NODE_TYPES, *DEVICE_TYPES)
        ] + [f"{NAMESPACE}/STATE/{o.host_id}"]
        self._max_bytes = context.limits.max_payload_bytes
        self._max_readings = context.limits.max_readings
        self._metrics: Metrics = context.metrics
        self._reorder_ms = round(o.reorder_timeout_s * 1000)
        self._nodes: dict[tuple[str, str], NodeSession] = {}
        self._qualities = QualityReader()
        self.duties = SparkplugHost(
            self.name,
            o.host_id,
            context.clock,
            context.metrics,
            o.rebirth_interval_s,
            o.rebirths_per_s,
        )
        self.duties.on_tick = self.check_reorder

    def topic_filters(self) -> list[str]:
        return list(self._topics)

    def decode(self, topic: str, payload: bytes, received_ms: int) -> Decoded:
        decoded = Decoded(codec=self.name, topic=topic, received_ms=received_ms)
        return decode_guarded(decoded, payload, self._decode)

    def check_reorder(self, now_ms: int) -> None:
        """Ask for a rebirth of every node whose missing seq waited out the timeout."""
        for session in self._nodes.values():
            if session.seqs.missing and session.seqs.overdue(now_ms, self._reorder_ms):
                self.duties.request_rebirth(session.group, session.edge_node, "seq_gap", now_ms)

    # --- per message type -----------------------------------------------------------------

    def _decode(self, decoded: Decoded, payload: bytes) -> None:
        parts = decoded.topic.split("/")
        if len(parts) == 3 and parts[:2] == [NAMESPACE, "STATE"]:
            self._state(parts[2], payload)
            return
        if parts[0] != NAMESPACE or len(parts) not in (4, 5):
            raise Problem(
                "bad_topic",
                f"expected spBv1.0/{{group}}/{{type}}/{{edge_node}}[/{{device}}], got "
                f"{describe(decoded.topic, 80)}",
            )
        group, kind, edge_node = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else ""
        if kind in COMMANDS:
            return  # commands to edge nodes (ours among them): nothing to store
        if (kind in NODE_TYPES) != (len(parts) == 4) or kind not in (*NODE_TYPES, *DEVICE_TYPES):
            raise Problem(
                "bad_topic",
                "expected a Sparkplug message type with its ids, got "
                f"{describe(decoded.topic, 80)}",
            )
        key = (group, edge_node)
        target = self._target(decoded, group, edge_node, device)
        check_size(payload, self._max_bytes)
        try:
            message = pb.Payload.FromString(payload)
        except DecodeError as exc:
            raise Problem(
                "protobuf",
                f"expected a Sparkplug B payload (protobuf), got undecodable bytes ({exc})",
            ) from None
        now_ms = decoded.received_ms
        if kind == "NDEATH":
            self._node_death(decoded, key, message, target)
            return
        if kind == "NBIRTH":
            self._node_birth(decoded, key, message, target)
            return
        session = self._nodes.get(key)
        if session is None:
            self._ask(key, "no_birth", now_ms)
            raise Problem("no_birth", f"{kind} from {group}/{edge_node} before its NBIRTH")
        self._seq(decoded, session, message)
        if kind == "DBIRTH":
            self._device_birth(decoded, session, device, message, target)
        elif kind == "DDEATH":
            session.devices.pop(device, None)
            decoded.status = GatewayStatus(
                target.enterprise, target.gateway, GatewayState.OFFLINE, now_ms
            )
        else:
            birth = session.node if kind == "NDATA" else session.devices.get(device)
            if birth is None:
                self._ask(key, "no_birth", now_ms)
                raise Problem(
                    "no_birth", f"DDATA from {group}/{edge_node}/{device} before its DBIRTH"
                )
            # A Quality property spells its key in the payload: without those bytes no
            # metric has one, and the per-metric HasField (a tenth of the loop) is skipped.
            self._readings(decoded, birth, message, key, qualities=b"Quality" in payload)

    def _node_birth(
        self, decoded: Decoded, key: tuple[str, str], message: Any, target: Target
    ) -> None:
        group, edge_node = key
        self._nodes.pop(key, None)  # a new session: devices must be born again
        birth = self._birth(decoded, key, "", message, target, set())
        bd_seq = _bd_seq(message)
        seq = message.seq if message.HasField("seq") else 0
        if len(self._nodes) >= NODES_KEPT:
            del self._nodes[next(iter(self._nodes))]
        self._nodes[key] = NodeSession(group, edge_node, bd_seq, SeqTracker(seq), birth)
        decoded.status = GatewayStatus(
            target.enterprise, target.gateway, GatewayState.ONLINE, decoded.received_ms
        )
        self._readings(decoded, birth, message, key)

    def _device_birth(
        self, decoded: Decoded, session: NodeSession, device: str, message: Any, target: Target
    ) -> None:
        key = (session.group, session.edge_node)
        used = session.aliases_in_use(except_device=device)
        session.devices.pop(device, None)
        birth = self._birth(decoded, key, device, message, target, used)
        session.devices[device] = birth
        decoded.status = GatewayStatus(
            target.enterprise, target.gateway, GatewayState.ONLINE, decoded.received_ms
        )
        self._readings(decoded, birth, message, key)

    def _node_death(
        self, decoded: Decoded, key: tuple[str, str], message: Any, target: Target
    ) -> None:
        session = self._nodes.get(key)
        bd_seq = _bd_seq(message)
        if session is not None and session.bd_seq is not None and bd_seq != session.bd_seq:
            self._metrics.sparkplug_stale_deaths.inc()
            log.info("sparkplug_stale_death", group=key[0], edge_node=key[1], bd_seq=bd_seq)
            decoded.enterprise = decoded.gateway = None  # nothing about the live session
            return
        now_ms = decoded.received_ms
        decoded.status = GatewayStatus(
            target.enterprise, target.gateway, GatewayState.OFFLINE, now_ms
        )
        if session is None:
            return
        del self._nodes[key]
        parts = []
        for birth in session.devices.values():
            t = birth.target
            part = Decoded(codec=self.name, topic=decoded.topic, received_ms=now_ms)
            part.enterprise, part.gateway = t.enterprise, t.gateway
            part.status = GatewayStatus(t.enterprise, t.gateway, GatewayState.OFFLINE, now_ms)
            parts.append(part)
        decoded.also = tuple(parts)

    # --- pieces -----------------------------------------------------------------------------

    def _target(self, decoded: Decoded, group: str, edge_node: str, device: str) -> Target:
        fields = {
            "group": group,
            "edge_node": edge_node,
            "device": device,
            "topic": TopicLevels(decoded.topic.split("/")),
        }
        try:
            target = self.mapper.target((group, edge_node, device), fields)
        except MappingProblem as problem:
            raise Problem(problem.reason, problem.detail) from None
        decoded.enterprise, decoded.gateway = target.enterprise, target.gateway
        return target

    def _birth(  # noqa: PLR0917 - the pieces of one BIRTH
        self,
        decoded: Decoded,
        key: tuple[str, str],
        device: str,
        message: Any,
        target: Target,
        used: set[int],
    ) -> Birth:
        group, edge_node = key
        birth = Birth(target)
        fields = {"group": group, "edge_node": edge_node, "device": device}
        where = f"{group}/{edge_node}" + (f"/{device}" if device else "")
        duplicates: list[str] = []
        for n, metric in enumerate(message.metrics):
            name = metric.name
            if not name or type(name) is not str:  # bytes: not UTF-8 (proto2 does not check)
                self._ask(key, "bad_birth", decoded.received_ms)
                shown = "no name" if not name else f"a name that is not UTF-8: {name[:60]!r}"
                raise Problem("bad_structure", f"{where}: BIRTH metric {n} has {shown}")
            tag = self.mapper.tag(
                (group, edge_node, device), target, {**fields, "metric": name}, name
            )
            info = metric_info(name, metric.datatype, tag)
            birth.by_name[name] = info
            if metric.HasField("alias"):
                alias = metric.alias
                if alias in birth.by_alias or alias in used:
                    duplicates.append(f"{alias} ({printable(name, 60)})")
                birth.by_alias[alias] = info
        if duplicates:
            self._ask(key, "duplicate_alias", decoded.received_ms)
            raise Problem(
                "duplicate_alias",
                f"{where}: expected each alias once per edge node, got "
                f"{', '.join(duplicates[:5])} again; the BIRTH is not taken",
            )
        return birth

    def _seq(self, decoded: Decoded, session: NodeSession, message: Any) -> None:
        if not message.HasField("seq") or message.seq >= 256:
            shown = message.seq if message.HasField("seq") else "none"
            raise Problem("bad_seq", f"expected a seq 0-255, got {shown}")
        gap = session.seqs.observe(message.seq, decoded.received_ms)
        if gap > 0:
            node_target = session.node.target
            self._metrics.seq_gaps.labels(node_target.enterprise, node_target.gateway).inc(gap)
            if self._reorder_ms == 0:
                session.seqs.missing.clear()
                self._ask((session.group, session.edge_node), "seq_gap", decoded.received_ms)
        elif gap < 0:
            node_target = session.node.target
            self._metrics.seq_repeats.labels(node_target.enterprise, node_target.gateway).inc()

    def _readings(
        self,
        decoded: Decoded,
        birth: Birth,
        message: Any,
        key: tuple[str, str],
        *,
        qualities: bool = True,
    ) -> None:
        """Every metric of a BIRTH or DATA as a reading (the hot path: no string is built
        unless something is wrong). ``qualities=False``: no metric has a Quality property."""
        target = birth.target
        enterprise, gateway = target.enterprise, target.gateway
        received = decoded.received_ms
        message_ts = message.timestamp or received
        by_alias, by_name = birth.by_alias, birth.by_name
        readings = decoded.readings
        append = readings.append
        good = Quality.GOOD
        qualities_known, learn_quality = self._qualities.known, self._qualities.learn
        unknown: list[str] = []
        alias_first = bool(by_alias) and 0 not in by_alias  # 0: also an unset alias
        for metric in message.metrics:
            # DATA names metrics by alias; a name, when sent, is authoritative.
            info = by_alias.get(metric.alias) if alias_first else None
            if info is None:
                name = metric.name
                info = by_name.get(name) if name else by_alias.get(metric.alias)
                if info is None:
                    unknown.append(_shown(name) if name else str(metric.alias))
                    continue
            field = info.field
            if field is None:
                continue
            value = getattr(metric, field)
            if not value:  # 0 or false — or a null, or another type's field set
                kind = metric.WhichOneof("value")
                if kind != field:
                    if kind is not None:  # None: a null value, nothing measured
                        self._reject_metric(decoded, info.name, f"expected {field}, got {kind}")
                    continue
            if info.signed_bits:
                value = signed(value, info.signed_bits)
            value = float(value)
            if value - value != 0.0:  # NaN or infinite
                self._reject_metric(
                    decoded, info.name, f"expected a finite number, got {value}", "not_finite"
                )
                continue
            quality = good
            if qualities and metric.HasField("properties"):
                properties = metric.properties
                quality = qualities_known.get(properties.SerializeToString()) or learn_quality(
                    properties
                )
            append(
                Reading(
                    enterprise, gateway, info.tag, value, metric.timestamp or message_ts, quality
                )
            )
        if len(readings) > self._max_readings:
            raise Problem(
                "too_many_readings",
                f"expected at most {self._max_readings} readings per message, got {len(readings)}",
            )
        if unknown:
            self._ask(key, "unknown_alias", received)
            decoded.rejections.append(
                rejection(
                    decoded,
                    b"",
                    Problem(
                        "unknown_alias",
                        f"{key[0]}/{key[1]}: metrics {', '.join(unknown[:10])} are not in "
                        "the BIRTH (a rebirth is requested)",
                    ),
                    "",
                )
            )

    def _reject_metric(
        self, decoded: Decoded, name: str, problem: str, reason: str = "bad_value"
    ) -> None:
        decoded.rejections.append(
            rejection(decoded, b"", Problem(reason, f"{printable(name, 80)}: {problem}"), "")
        )

    def _state(self, host_id: str, payload: bytes) -> None:
        """A STATE message (3.0 JSON or 2.2 plain text) for our own host id."""
        online: bool | None = {b"ONLINE": True, b"OFFLINE": False}.get(payload)
        if online is None:
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError:
                doc = None
            online = doc.get("online") if isinstance(doc, dict) else None
            if type(online) is not bool:
                raise Problem(
                    "bad_status",
                    'expected STATE {"online": true|false, "timestamp": ...} or ONLINE/OFFLINE, '
                    f"got {payload_head(payload, 60)!r}",
                )
        if host_id == self.options.host_id:
            self.duties.own_state(online=online)

    def _ask(self, key: tuple[str, str], reason: str, now_ms: int) -> None:
        self.duties.request_rebirth(key[0], key[1], reason, now_ms)


def _shown(name: str | bytes) -> str:
    """A metric's name for a message: printable, also when it is not UTF-8 (the proto is
    proto2, whose strings are not checked: such a name comes as bytes)."""
    if isinstance(name, bytes):
        return payload_head(name, 60)
    return printable(name, 60)


def _bd_seq(message: Any) -> int | None:
    """The ``bdSeq`` metric's value (an Int64 by the specification; any integer taken)."""
    for metric in message.metrics:
        if metric.name == BDSEQ:
            kind = metric.WhichOneof("value")
            if kind in ("long_value", "int_value"):
                return int(getattr(metric, kind))
    return None


class QualityReader:
    """A metric's ``Quality`` property as a :class:`Quality`, remembered per property set.

    Reading a property set through protobuf's wrappers costs ~1 µs a metric — more than
    the rest of the metric — and edge nodes that send properties send the same few sets
    again and again (``Quality`` 192 on every metric, maybe an ``engUnit``): the hot
    loop looks the set's bytes up in :attr:`known` and calls :meth:`learn` on a miss.
    """

    __slots__ = ("known",)

    def __init__(self) -> None:
        self.known: dict[bytes, Quality] = {}
        """A property set's serialized bytes → its quality (bounded)."""

    def learn(self, properties: Any) -> Quality:
        found = _quality(properties)
        raw = properties.SerializeToString()
        if len(raw) <= PROPERTY_SET_BYTES_KEPT:
            if len(self.known) >= PROPERTY_SETS_KEPT:
                self.known.clear()
            self.known[raw] = found
        return found


def _quality(properties: Any) -> Quality:
    for key, value in zip(properties.keys, properties.values, strict=False):
        if key == "Quality":
            code = value.int_value if value.WhichOneof("value") == "int_value" else value.long_value
            return QUALITIES.get(code, Quality.UNCERTAIN)
    return Quality.GOOD


def build(entry: CodecSettings, where: str, context: CodecContext) -> SparkplugCodec:
    return SparkplugCodec(entry, where, context)
