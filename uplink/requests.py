"""Queued records → the requests that carry them upstream.

A batch from the queue is all alarm changes or all readings. With ``per_enterprise``
(the default; provincial formats put the enterprise code in the envelope) it is
split by enterprise, each part one request, parts in the order of their first
record — so each point's records stay in queue order. Each record is built from
the stream's record template, the request from its body template
(:mod:`uplink.template`), then sealed (:mod:`uplink.sealing`).

A request's ``key`` (``<uplink>-<first seq>-<last seq>``, also ``{batch_id}``) is the
same on every attempt to send the same records; each record carries its ``{seq}``.
Receivers deduplicate on either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from hazwatch.clock import Clock
from hazwatch.errors import ConfigError
from hazwatch.models import Reading, Registry, iso_to_ms, ms_to_iso
from hazwatch.uplink_settings import UplinkSettings, UplinkStream
from uplink.queue import Kind, QueuedRecord
from uplink.sealing import RequestSealer
from uplink.template import (
    ALARM_FIELDS,
    BODY_FIELDS,
    DEFAULT_ALARM_RECORD,
    DEFAULT_BODY,
    DEFAULT_READING_RECORD,
    READING_FIELDS,
    JsonTemplate,
    LocalTime,
    check,
)
from uplink.transport import UplinkRequest

STREAMS: dict[Kind, str] = {"reading": "readings", "alarm": "alarms"}
_SAMPLE_MS = 1_763_820_000_123
_SAMPLE_ALARM = (
    '{"alarm": {"id": "01JD0000000000000000000000", "enterprise": "E001", '
    '"installation": "MH01", "tag": "TK101_LT", "type": "HH", "priority": "critical", '
    '"state": "active_unack", "value": 11.2, "limit": 11.0, '
    '"raised_at": "2025-11-22T14:00:00.123Z", "cleared_at": null, "message": "sample"}, '
    '"previous_state": null, "kind": "raised", "at": "2025-11-22T14:00:00.123Z", "seq": 1}'
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request and the queue sequence numbers of the records it carries."""

    request: UplinkRequest
    seqs: list[int]
    kind: Kind


@dataclass(frozen=True, slots=True)
class _Stream:
    target: str
    record: JsonTemplate
    body: JsonTemplate


class RequestBuilder:
    """Templates compiled and checked once (``ConfigError`` at start), then used per batch."""

    def __init__(
        self, settings: UplinkSettings, registry: Registry, sealer: RequestSealer, clock: Clock
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._sealer = sealer
        self._clock = clock
        self._local = LocalTime(settings.time_format, settings.timezone)
        where = f"uplink {settings.name!r}"
        self._streams: dict[Kind, _Stream] = {
            "reading": self._stream(
                settings.readings, "readings", READING_FIELDS, DEFAULT_READING_RECORD, where
            ),
            "alarm": self._stream(
                settings.alarms, "alarms", ALARM_FIELDS, DEFAULT_ALARM_RECORD, where
            ),
        }
        sample = QueuedRecord(1, "reading", "E001", _SAMPLE_MS, reading=_sample_reading())
        self._check("reading", sample, f"{where}: readings")
        alarm = QueuedRecord(2, "alarm", "E001", _SAMPLE_MS, event=_SAMPLE_ALARM)
        self._check("alarm", alarm, f"{where}: alarms")

    def _stream(
        self,
        stream: UplinkStream,
        name: str,
        fields: frozenset[str],
        default_record: dict[str, Any],
        where: str,
    ) -> _Stream:
        target = stream.path or (
            f"hazwatch/{self._settings.name}/{name}" if self._settings.mqtt else ""
        )
        try:
            target.format(enterprise="E001", uplink="u")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{where}: {name}.path {target!r}: only {{enterprise}} and {{uplink}} may appear"
            ) from exc
        record = JsonTemplate(stream.record or default_record, fields, f"{where}: {name}.record")
        body = JsonTemplate(stream.body or DEFAULT_BODY, BODY_FIELDS, f"{where}: {name}.body")
        return _Stream(target, record, body)

    def _check(self, kind: Kind, sample: QueuedRecord, where: str) -> None:
        stream = self._streams[kind]
        check(stream.record, self._fields(sample), f"{where}.record")
        check(stream.body, self._body_fields(kind, [sample], [{}]), f"{where}.body")

    def requests(self, batch: list[QueuedRecord]) -> list[Outgoing]:
        groups: dict[str, list[QueuedRecord]] = {}
        for record in batch:
            key = record.enterprise if self._settings.per_enterprise else ""
            groups.setdefault(key, []).append(record)
        return [self._request(records) for records in groups.values()]

    def _request(self, records: list[QueuedRecord]) -> Outgoing:
        kind = records[0].kind
        stream = self._streams[kind]
        rendered = [stream.record.render(self._fields(r)) for r in records]
        body = stream.body.render(self._body_fields(kind, records, rendered))
        sealed = self._sealer.seal(orjson.dumps(body))
        enterprise = records[0].enterprise if self._settings.per_enterprise else ""
        target = stream.target.format(enterprise=enterprise, uplink=self._settings.name)
        request = UplinkRequest(target, sealed, self._batch_id(records))
        return Outgoing(request, [r.seq for r in records], kind)

    def _batch_id(self, records: list[QueuedRecord]) -> str:
        return f"{self._settings.name}-{records[0].seq}-{records[-1].seq}"

    def _body_fields(
        self, kind: Kind, records: list[QueuedRecord], rendered: list[Any]
    ) -> dict[str, Any]:
        now_ms = self._clock.now_ms()
        return {
            "uplink": self._settings.name,
            "stream": STREAMS[kind],
            "batch_id": self._batch_id(records),
            "enterprise": records[0].enterprise if self._settings.per_enterprise else "",
            "count": len(records),
            "first_seq": records[0].seq,
            "last_seq": records[-1].seq,
            "sent_ms": now_ms,
            "sent_s": now_ms // 1000,
            "sent_time": ms_to_iso(now_ms),
            "local_sent_time": self._local(now_ms),
            "records": rendered,
        }

    def _fields(self, record: QueuedRecord) -> dict[str, Any]:
        if record.reading is not None:
            return self._reading_fields(record.seq, record.reading)
        assert record.event is not None
        return self._alarm_fields(record.seq, record.event)

    def _reading_fields(self, seq: int, r: Reading) -> dict[str, Any]:
        point = self._registry.point(r.enterprise, r.tag)
        enterprise = self._registry.enterprises.get(r.enterprise)
        return {
            "seq": seq,
            "uplink": self._settings.name,
            "enterprise": r.enterprise,
            "enterprise_name": enterprise.name if enterprise is not None else "",
            "installation": point.installation if point is not None else "",
            "gateway": r.gateway,
            "tag": r.tag,
            "name": point.name if point is not None else "",
            "kind": point.kind.value if point is not None else "",
            "unit": point.unit if point is not None else "",
            "value": r.value,
            "quality": r.quality.value,
            "ts_ms": r.ts_ms,
            "ts_s": r.ts_ms // 1000,
            "time": ms_to_iso(r.ts_ms),
            "local_time": self._local(r.ts_ms),
        }

    def _alarm_fields(self, seq: int, event_json: str) -> dict[str, Any]:
        event = orjson.loads(event_json)
        alarm = event["alarm"]
        at_ms = iso_to_ms(event["at"])
        return {
            "seq": seq,
            "uplink": self._settings.name,
            "key": f"{alarm['id']}:{event.get('seq')}",
            "event": event,
            "alarm": alarm,
            "alarm_id": alarm["id"],
            "alarm_seq": event.get("seq"),
            "kind": event["kind"],
            "at": event["at"],
            "at_ms": at_ms,
            "local_time": self._local(at_ms),
            "previous_state": event.get("previous_state"),
            **{k: alarm[k] for k in _ALARM_KEYS},
        }


_ALARM_KEYS = (
    "enterprise", "installation", "tag", "type", "priority", "state", "value", "limit",
    "message", "raised_at", "cleared_at",
)  # fmt: skip


def _sample_reading() -> Reading:
    return Reading("E001", "gw1", "TK101_LT", 3.42, _SAMPLE_MS)
