"""The live stream ``GET /api/stream``: server-sent events from ``Console.feed``.

The stream never ends by itself, so every read has a deadline: lines are read in a
worker thread and each wait is bounded. Tests synchronise on events (the ``: connected``
comment that the server sends once subscribed, then the awaited event), never on sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from dashboards.feed import gateway_item, reading_item
from hazwatch.models import AlarmType, Condition, Reading
from ingest.gateways import GatewayInfo
from tests.dashboards.conftest import NOW_MS, ConsoleHarness

EVENT_TIMEOUT_S = 5.0
SseEvent = dict[str, str]


def _parse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """SSE wire format -> {"event", "data", "comment", "retry", ...} per blank-line block."""
    fields: SseEvent = {}
    for line in lines:
        if not line:
            if fields:
                yield fields
                fields = {}
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        key = name or "comment"
        fields[key] = f"{fields[key]}\n{value}" if key in fields else value


class EventReader:
    """Reads events from a streaming response, each read bounded by a timeout."""

    def __init__(self, response: httpx.Response, pool: ThreadPoolExecutor) -> None:
        self._events = _parse(response.iter_lines())
        self._pool = pool

    def next(self, timeout: float = EVENT_TIMEOUT_S) -> SseEvent:
        return self._pool.submit(next, self._events).result(timeout=timeout)

    def until(self, wanted: Callable[[SseEvent], bool]) -> SseEvent:
        skipped = []
        for _ in range(50):
            event = self.next()
            if wanted(event):
                return event
            skipped.append(event)
        raise AssertionError(f"wanted event not among the first 50: {skipped}")


@contextmanager
def open_stream(
    harness: ConsoleHarness, view: str | None = None
) -> Iterator[tuple[httpx.Response, EventReader]]:
    # The pool outlives the response: closing the response ends a read still waiting.
    params = {"view": view} if view is not None else None
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        harness.client.stream("GET", "/api/stream", params=params) as response,
    ):
        reader = EventReader(response, pool)
        hello = reader.next()
        assert hello == {"comment": "connected", "retry": "5000"}
        yield response, reader


def _data(event: SseEvent) -> Any:
    return json.loads(event["data"])


def test_stream_is_an_event_stream(harness: ConsoleHarness) -> None:
    with open_stream(harness) as (response, _):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert harness.console.feed.subscriber_count == 1


def test_stream_delivers_an_alarm_published_on_the_feed(harness: ConsoleHarness) -> None:
    alarm = {"id": "01JDTEST", "enterprise": "E001", "state": "active_unack", "message": "水位"}
    with open_stream(harness) as (_, reader):
        harness.publish(("alarm", alarm))
        event = reader.next()
    assert event["event"] == "alarm"
    assert _data(event) == alarm


def test_alarm_service_events_and_acks_reach_the_stream(
    harness: ConsoleHarness, make_condition: Callable[..., Condition]
) -> None:
    with open_stream(harness) as (_, reader):
        (raised,) = harness.apply(make_condition(AlarmType.HH))
        event = reader.until(lambda e: e.get("event") == "alarm")
        assert _data(event) == raised.alarm.model_dump(mode="json")
        assert _data(event)["state"] == "active_unack"

        ack = harness.client.post(f"/api/alarms/{raised.alarm.id}/ack", json={"comment": "ok"})
        assert ack.status_code == 200
        event = reader.until(lambda e: e.get("event") == "alarm")
        assert (_data(event)["id"], _data(event)["state"]) == (raised.alarm.id, "active_ack")


def test_reading_and_gateway_events_carry_what_the_page_shows(
    harness: ConsoleHarness, make_reading: Callable[..., Reading]
) -> None:
    point = harness.console.registry.point("E001", "TK101_LT")
    reading = make_reading("TK101_LT", 11.3, NOW_MS)
    gateway = GatewayInfo("E001", "gw1", "offline", NOW_MS, 7, 1, 0, 9)
    with open_stream(harness) as (_, reader):
        harness.publish(reading_item(reading, point))
        harness.publish(gateway_item(gateway))
        first, second = reader.next(), reader.next()
    assert first["event"] == "reading"
    assert _data(first) == {
        "enterprise": "E001",
        "installation": "MH01",
        "tag": "TK101_LT",
        "value": 11.3,
        "ts": "2025-11-22T14:00:00.000Z",
        "quality": "good",
        "limit_state": "HH",
        "interval_s": 5.0,
        "age_s": 0.0,
        "stale": False,
    }
    assert second["event"] == "gateway"
    assert _data(second)["state"] == "offline"
    assert _data(second)["last_seen"] == "2025-11-22T14:00:00.000Z"


def test_items_of_an_unknown_kind_are_not_sent(harness: ConsoleHarness) -> None:
    with open_stream(harness) as (_, reader):
        harness.publish(("bogus\nevent: alarm", {"x": 1}))
        harness.publish(("alarm", {"id": "A2"}))
        event = reader.next()
    assert (event["event"], _data(event)) == ("alarm", {"id": "A2"})


def test_an_idle_stream_sends_keepalive_comments(
    harness: ConsoleHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stream pings after 15 s of silence; shortened here.
    monkeypatch.setattr("dashboards.api.SSE_PING_S", 0.05)
    with open_stream(harness) as (_, reader):
        assert reader.next() == {"comment": "ping"}


def test_a_stream_that_fell_behind_tells_its_page_to_resync(harness: ConsoleHarness) -> None:
    # 150 alarms in one turn of the server's loop: the stream's channel holds 100.
    def flood() -> None:
        for n in range(150):
            harness.console.feed.publish(("alarm", {"id": f"A{n}", "enterprise": "E001"}))

    with open_stream(harness, "desk") as (_, reader):
        harness.call(flood)
        resync = reader.next()
        first, *rest = (reader.next() for _ in range(100))
    assert (resync["event"], _data(resync)) == ("resync", {"dropped": 50})
    assert _data(first)["id"] == "A50"  # the oldest went; the newest are all sent
    assert _data(rest[-1])["id"] == "A149"


def test_leaving_the_stream_unsubscribes(harness: ConsoleHarness) -> None:
    with open_stream(harness):
        assert harness.console.feed.subscriber_count == 1
    assert harness.console.feed.subscriber_count == 0
    harness.publish(("alarm", {"id": "after"}))  # no subscriber: nothing queued, no error


# --- views (docs/contract.md, "Live stream views") -----------------------------------


def test_the_overview_stream_starts_with_every_enterprises_summary(
    harness: ConsoleHarness, make_reading: Callable[..., Reading]
) -> None:
    with open_stream(harness, "overview") as (_, reader):
        first = reader.next()
        harness.call(harness.console.feed.readings, [make_reading("TK101_LT", 11.3, NOW_MS)])
        harness.publish(
            (
                "alarm",
                {"id": "A9", "enterprise": "E002", "state": "active_unack", "priority": "high"},
            )
        )
        harness.call(harness.console.feed.tick)
        second = reader.next()
    assert (first["event"], second["event"]) == ("summaries", "summaries")
    assert [s["enterprise"] for s in _data(first)["summaries"]] == ["E001", "E002"]
    # the reading of E001 is not sent; E002's alarm changed its summary
    (changed,) = _data(second)["summaries"]
    assert (changed["enterprise"], changed["risk"], changed["alarms"]["high"]) == (
        "E002",
        "orange",
        1,
    )


def test_an_enterprise_stream_sends_only_that_enterprises_items(
    harness: ConsoleHarness, make_reading: Callable[..., Reading]
) -> None:
    with open_stream(harness, "enterprise:E002") as (_, reader):
        harness.call(
            harness.console.feed.readings,
            [
                make_reading("TK101_LT", 1.0, NOW_MS),
                make_reading("RC01", 2.0, NOW_MS, enterprise="E002"),
            ],
        )
        harness.publish(("alarm", {"id": "A1", "enterprise": "E001", "state": "active_unack"}))
        harness.publish(("alarm", {"id": "A2", "enterprise": "E002", "state": "active_unack"}))
        first, second = reader.next(), reader.next()
    assert (first["event"], _data(first)["tag"]) == ("reading", "RC01")
    assert (second["event"], _data(second)["id"]) == ("alarm", "A2")


@pytest.mark.parametrize(
    ("view", "status"),
    [
        ("enterprise:E999", 404),
        ("installation:E001/XX01", 404),
        ("installation:E999/MH01", 404),
        ("enterprise:E0 01", 422),
        ("map", 422),
    ],
)
def test_a_view_of_nothing_known_is_refused_before_the_stream_opens(
    harness: ConsoleHarness, view: str, status: int
) -> None:
    response = harness.client.get("/api/stream", params={"view": view})
    assert response.status_code == status
    assert "detail" in response.json()
    assert harness.console.feed.subscriber_count == 0
