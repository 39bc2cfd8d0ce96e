"""The live feed's routing per view and grants, its summaries and its stale values.

Everything real: the example registry, ``LatestValues``, ``GatewayTracker``, a
``ManualClock`` that moves only when told (staleness is checked at the millisecond), and
the feed's own bounded channels, read with ``drain()`` (what is queued now).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dashboards.feed import OVERFLOW_QUIET_MS, FeedEvent, LiveFeed, View, is_stale
from hazwatch.bus import Channel
from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.models import (
    Alarm,
    AlarmType,
    Condition,
    GatewayState,
    GatewayStatus,
    Reading,
    Registry,
)
from ingest.codec import Decoded
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from tests.dashboards.conftest import NOW_MS

MakeReading = Callable[..., Reading]


class Feed:
    def __init__(self, registry: Registry, open_alarms: list[Alarm] | None = None) -> None:
        self.clock = ManualClock(NOW_MS)
        self.latest = LatestValues()
        self.dropped = 0
        self.system: list[Condition] = []
        self.feed = LiveFeed(
            registry,
            self.clock,
            self.latest,
            GatewayTracker(Metrics()),
            open_alarms=lambda: list(open_alarms or []),
            maxsize=100,
            on_drop=self._drop,
            on_system=self.system.extend,
        )

    def _drop(self, name: str) -> None:
        del name
        self.dropped += 1

    def stored(self, *readings: Reading) -> None:
        """What the wiring does with a stored batch."""
        self.latest.update(readings)
        self.feed.readings(list(readings))

    @contextmanager
    def watch(
        self, view: str, sees: Callable[[str], bool] | None = None
    ) -> Iterator[Channel[FeedEvent]]:
        with self.feed.subscribe(View.parse(view), sees) as channel:
            yield channel


@pytest.fixture
def live(example_registry: Registry) -> Feed:
    return Feed(example_registry)


def _alarm(alarm_id: str, enterprise: str = "E001", **changes: Any) -> dict[str, Any]:
    return {
        "id": alarm_id,
        "enterprise": enterprise,
        "installation": "MH01" if enterprise == "E001" else "DB01",
        "tag": "TK101_LT" if enterprise == "E001" else "RC01",
        "type": "HH",
        "priority": "critical",
        "state": "active_unack",
        **changes,
    }


def summaries(channel: Channel[FeedEvent]) -> list[dict[str, Any]]:
    """The summaries queued on an overview channel, one ``summaries`` item per tick."""
    events = channel.drain()
    assert {e.kind for e in events} <= {"summaries"}
    return [s for e in events for s in e.data["summaries"]]


def _kinds(events: list[FeedEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.data.get("enterprise", "")) for e in events]


# --- views ---------------------------------------------------------------------------


def test_view_parameter_is_read_or_refused() -> None:
    assert View.parse("enterprise:E001") == View("enterprise", "E001")
    assert View.parse("installation:E001/MH01") == View("installation", "E001", "MH01")
    assert View.parse("desk") == View("desk")
    for bad in ("", "enterprise:", "enterprise:E 1", "installation:E001", "map", "all\n"):
        with pytest.raises(ValueError, match="view: expected"):
            View.parse(bad)


def test_an_overview_client_gets_summaries_never_readings(
    live: Feed, make_reading: MakeReading
) -> None:
    with live.watch("overview") as channel:
        (snapshot,) = channel.drain()  # one item: every enterprise
        assert snapshot.kind == "summaries"
        assert [s["enterprise"] for s in snapshot.data["summaries"]] == ["E001", "E002"]
        live.stored(make_reading("TK101_LT", 5.0, NOW_MS))
        live.feed.publish(("gateway", {"enterprise": "E001", "gateway": "gw1"}))
        assert channel.drain() == []
        live.feed.publish(("alarm", _alarm("A1")))
        assert channel.drain() == []  # the alarm changes the next summary, not the stream
        live.feed.tick()
        (summary,) = summaries(channel)  # the reading changed E001's no_data too: one
    assert summary["enterprise"] == "E001"
    assert summary["alarms"] == {"critical": 1, "high": 0, "medium": 0, "low": 0}
    assert (summary["risk"], summary["unacked"]) == ("red", 1)


def test_an_enterprise_view_gets_only_that_enterprise(
    live: Feed, make_reading: MakeReading
) -> None:
    with live.watch("enterprise:E002") as channel:
        live.stored(
            make_reading("TK101_LT", 5.0, NOW_MS),
            make_reading("RC01", 20.0, NOW_MS, enterprise="E002"),
        )
        live.feed.publish(("alarm", _alarm("A1")))
        live.feed.publish(("alarm", _alarm("A2", "E002")))
        live.feed.publish(("gateway", {"enterprise": "E001", "gateway": "MH01-gw"}))
        live.feed.publish(("gateway", {"enterprise": "E002", "gateway": "DB01-gw"}))
        live.feed.tick()
        events = channel.drain()
    assert _kinds(events) == [("reading", "E002"), ("alarm", "E002"), ("gateway", "E002")]
    assert events[0].data["tag"] == "RC01"


def test_an_installation_view_gets_its_points_and_its_enterprises_gateways(
    live: Feed, make_reading: MakeReading
) -> None:
    with live.watch("installation:E001/MH02") as channel:
        live.stored(make_reading("TK101_LT", 5.0, NOW_MS), make_reading("R201_TT", 80.0, NOW_MS))
        live.feed.publish(("alarm", _alarm("A1")))  # MH01's
        live.feed.publish(("alarm", _alarm("A2", installation="MH02", tag="R201_TT")))
        live.feed.publish(("gateway", {"enterprise": "E001", "gateway": "MH01-gw"}))
        events = channel.drain()
    assert [(e.kind, e.data.get("tag", e.data.get("gateway"))) for e in events] == [
        ("reading", "R201_TT"),
        ("alarm", "R201_TT"),
        ("gateway", "MH01-gw"),
    ]


def test_the_desk_gets_alarms_only(live: Feed, make_reading: MakeReading) -> None:
    with live.watch("desk") as channel:
        live.stored(make_reading("TK101_LT", 5.0, NOW_MS))
        live.feed.publish(("gateway", {"enterprise": "E001", "gateway": "gw1"}))
        live.feed.publish(("alarm", _alarm("A1")))
        live.feed.publish(("alarm", _alarm("S1", "_system", type="SYSTEM")))
        live.clock.advance(60_000)
        live.feed.tick()
        events = channel.drain()
    assert _kinds(events) == [("alarm", "E001"), ("alarm", "_system")]


def test_grants_filter_every_view(live: Feed, make_reading: MakeReading) -> None:
    def only_e002(enterprise: str) -> bool:
        return enterprise == "E002"

    with (
        live.watch("overview", only_e002) as overview,
        live.watch("desk", only_e002) as desk,
        live.watch("all", only_e002) as everything,
    ):
        assert [s["enterprise"] for s in summaries(overview)] == ["E002"]
        live.stored(make_reading("TK101_LT", 5.0, NOW_MS))
        live.feed.publish(("alarm", _alarm("A1")))
        live.feed.publish(("alarm", _alarm("A2", "E002")))
        live.feed.tick()
        assert _kinds(desk.drain()) == [("alarm", "E002")]
        assert _kinds(everything.drain()) == [("alarm", "E002")]
        assert [s["enterprise"] for s in summaries(overview)] == ["E002"]


def test_leaving_unsubscribes_every_view(live: Feed) -> None:
    with live.watch("enterprise:E001"), live.watch("installation:E001/MH01"):
        with live.watch("overview"), live.watch("desk"):
            assert live.feed.subscriber_count == 4
        assert live.feed.subscriber_count == 2
    assert live.feed.subscriber_count == 0


def test_a_slow_client_loses_its_oldest_items_counted(
    live: Feed, make_reading: MakeReading
) -> None:
    with live.watch("enterprise:E001") as channel:
        live.stored(*(make_reading("TK101_LT", float(v), NOW_MS + v) for v in range(150)))
        events = channel.drain()
    assert len(events) == 100
    assert events[0].data["value"] == 50.0
    assert live.dropped == 50
    assert channel.dropped == 50  # what the stream tells its page (a resync)


def test_drops_raise_the_overflow_condition_until_a_quiet_minute(
    live: Feed, make_reading: MakeReading
) -> None:
    live.feed.tick()
    assert live.system == []  # nothing dropped, nothing raised
    with live.watch("enterprise:E001") as channel:
        live.stored(*(make_reading("TK101_LT", float(v), NOW_MS + v) for v in range(101)))
        live.feed.tick()
        [raised] = live.system
        assert (raised.type, raised.tag, raised.active) == (
            AlarmType.SYSTEM,
            "console_feed_overflow",
            True,
        )
        assert raised.value == 1.0
        assert "dropped 1 items" in raised.message
        channel.drain()
        live.clock.advance(OVERFLOW_QUIET_MS - 1)
        live.stored(*(make_reading("TK101_LT", 1.0, NOW_MS + 200 + v) for v in range(101)))
        live.feed.tick()
        assert len(live.system) == 1  # dropping again: still raised, not raised twice
        live.clock.advance(OVERFLOW_QUIET_MS - 1)
        live.feed.tick()
        assert len(live.system) == 1  # the minute counts from the last drop
        live.clock.advance(1)
        live.feed.tick()
    assert [c.active for c in live.system] == [True, False]
    assert live.system[1].tag == "console_feed_overflow"


def test_an_item_is_serialised_once_for_all_its_streams(live: Feed) -> None:
    with live.watch("desk") as one, live.watch("desk") as two:
        live.feed.publish(("alarm", _alarm("A1", message="水位高")))
        (first,), (second,) = one.drain(), two.drain()
    assert first is second
    assert '"message":"水位高"' in first.raw


# --- summaries -----------------------------------------------------------------------


def test_summaries_count_open_alarms_from_the_journal_then_from_changes(
    example_registry: Registry,
) -> None:
    journal_alarm = Alarm.model_validate(
        {
            **_alarm("J1", priority="high", state="active_ack"),
            "value": 11.2,
            "limit": 11.0,
            "raised_at": "2025-11-22T13:00:00.000Z",
            "cleared_at": None,
            "message": "m",
        }
    )
    live = Feed(example_registry, [journal_alarm])
    with live.watch("overview") as channel:
        e001, _ = summaries(channel)
        assert (e001["alarms"]["high"], e001["unacked"], e001["risk"]) == (1, 0, "orange")
        live.feed.publish(("alarm", _alarm("A1", priority="medium")))
        live.feed.publish(("alarm", _alarm("A1", priority="medium", state="active_ack")))
        live.feed.publish(("alarm", _alarm("J1", priority="high", state="cleared")))
        live.feed.tick()
        (summary,) = summaries(channel)  # two changes in one second: one summary
        live.feed.tick()
        assert channel.drain() == []  # nothing changed: nothing sent
    assert summary["alarms"] == {"critical": 0, "high": 0, "medium": 1, "low": 0}
    assert (summary["open_alarm_count"], summary["unacked"]) == (1, 0)
    assert summary["risk"] == "yellow"


def test_a_summary_counts_gateways_offline(live: Feed) -> None:
    with live.watch("overview") as channel:
        channel.drain()
        live.feed.gateways.observe(
            Decoded(
                codec="hz-json",
                topic="hz/v1/E002/DB01-gw/status",
                received_ms=NOW_MS,
                enterprise="E002",
                gateway="DB01-gw",
                status=GatewayStatus("E002", "DB01-gw", GatewayState.OFFLINE, NOW_MS),
            )
        )
        live.feed.tick()
        (summary,) = summaries(channel)
    assert (summary["enterprise"], summary["gateways_offline"]) == ("E002", 1)


# --- staleness -----------------------------------------------------------------------


def test_stale_means_older_than_three_intervals(example_registry: Registry) -> None:
    gas = example_registry.point("E001", "GD101")  # interval_s 5
    assert gas is not None
    assert not is_stale(gas, NOW_MS, NOW_MS + 15_000)
    assert is_stale(gas, NOW_MS, NOW_MS + 15_001)
    assert not is_stale(gas.model_copy(update={"interval_s": None}), 0, NOW_MS)


def test_a_value_goes_stale_on_the_clock_and_fresh_with_the_next_reading(
    live: Feed, make_reading: MakeReading
) -> None:
    with live.watch("enterprise:E001") as page, live.watch("overview") as overview:
        overview.drain()
        live.stored(make_reading("GD101", 3.0, NOW_MS))
        (reading,) = page.drain()
        assert (reading.data["stale"], reading.data["age_s"]) == (False, 0.0)
        assert reading.data["interval_s"] == 5.0
        live.feed.tick()
        (summary,) = summaries(overview)
        assert (summary["no_data"], summary["stale_points"]) == (16, 0)

        live.clock.set(NOW_MS + 15_000)
        live.feed.tick()
        assert page.drain() == []
        assert overview.drain() == []  # 3 × 5 s is not yet older than 3 intervals

        live.clock.set(NOW_MS + 15_001)
        live.feed.tick()
        (stale,) = page.drain()
        assert stale.kind == "stale"
        assert stale.data == {
            "enterprise": "E001",
            "installation": "MH01",
            "tag": "GD101",
            "ts": "2025-11-22T14:00:00.000Z",
            "interval_s": 5.0,
            "age_s": 15.0,
            "stale": True,
        }
        (summary,) = summaries(overview)
        assert summary["stale_points"] == 1
        assert summary["oldest_stale_ts"] == "2025-11-22T14:00:00.000Z"
        assert summary["worst_stale_s"] == 15.0
        assert summary["at"] == "2025-11-22T14:00:15.001Z"

        live.clock.advance(10_000)
        live.feed.tick()
        assert page.drain() == []  # told once
        assert overview.drain() == []  # only its age grew: the page counts that itself

        live.stored(make_reading("GD101", 3.1, NOW_MS + 25_000))
        (fresh,) = page.drain()
        assert (fresh.kind, fresh.data["stale"]) == ("reading", False)
        live.feed.tick()
        (summary,) = summaries(overview)
        assert (summary["stale_points"], summary["worst_stale_s"]) == (0, None)


def test_a_reading_that_arrives_old_is_marked_stale(live: Feed, make_reading: MakeReading) -> None:
    with live.watch("enterprise:E001") as page:
        live.stored(make_reading("GD101", 3.0, NOW_MS - 60_000))  # a gateway's backlog
        (reading,) = page.drain()
    assert (reading.data["stale"], reading.data["age_s"]) == (True, 60.0)


def test_points_that_never_reported_are_counted_apart(
    live: Feed, make_reading: MakeReading
) -> None:
    with live.watch("overview") as overview:
        e001, e002 = summaries(overview)
        assert (e001["point_count"], e001["no_data"], e001["stale_points"]) == (17, 17, 0)
        assert (e002["point_count"], e002["no_data"]) == (3, 3)
        live.stored(make_reading("GD101", 3.0, NOW_MS))
        live.feed.tick()
        (summary,) = summaries(overview)
    assert summary["no_data"] == 16
