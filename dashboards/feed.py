"""The live feed's items: what the wiring publishes on ``Console.feed`` for the SSE stream.

Each item is ``(kind, data)``; ``/api/stream`` sends it as ``event: <kind>`` and
``data: <json>``. The builders here fix the JSON of each kind in one place, so the
wiring, the stream and the page agree:

- ``reading``: ``{"enterprise", "installation", "tag", "value", "ts", "quality",
  "limit_state"}`` (``limit_state`` as in ``/api/enterprises/{eid}``).
- ``alarm``: the alarm JSON of docs/contract.md §5, after each state change.
- ``gateway``: ``{"enterprise", "gateway", "state", "last_seen", "last_seq",
  "seq_gaps", "seq_repeats", "messages"}``.

Wiring example::

    service = AlarmService(..., on_event=lambda e: feed.publish(alarm_item(e)))
"""

from __future__ import annotations

from typing import Any

from dashboards.deps import FeedItem
from dashboards.status import limit_state
from hazwatch.models import AlarmEvent, Point, Reading, ms_to_iso
from ingest.gateways import GatewayInfo

FEED_KINDS = frozenset({"reading", "alarm", "gateway"})


def reading_item(reading: Reading, point: Point | None) -> FeedItem:
    data: dict[str, Any] = {
        "enterprise": reading.enterprise,
        "installation": point.installation if point is not None else None,
        "tag": reading.tag,
        "value": reading.value,
        "ts": ms_to_iso(reading.ts_ms),
        "quality": reading.quality.value,
        "limit_state": limit_state(point, reading.value) if point is not None else None,
    }
    return ("reading", data)


def alarm_item(event: AlarmEvent) -> FeedItem:
    return ("alarm", event.alarm.model_dump(mode="json"))


def gateway_item(info: GatewayInfo) -> FeedItem:
    data: dict[str, Any] = {
        "enterprise": info.enterprise,
        "gateway": info.gateway,
        "state": info.state,
        "last_seen": ms_to_iso(info.last_seen_ms) if info.last_seen_ms is not None else None,
        "last_seq": info.last_seq,
        "seq_gaps": info.seq_gaps,
        "seq_repeats": info.seq_repeats,
        "messages": info.messages,
    }
    return ("gateway", data)
