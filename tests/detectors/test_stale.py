"""StaleDetector: STALE once after factor × interval_s of silence, cleared by a reading."""

from __future__ import annotations

from detectors.stale import StaleDetector
from hazwatch.models import AlarmType, Point, PointKind, Quality, Reading

T0 = 1_763_820_000_000


def point(tag: str = "GD101", interval_s: float | None = 5) -> Point:
    return Point(
        enterprise="E001",
        installation="MH01",
        tag=tag,
        name=f"Gas detector {tag}",
        kind=PointKind.GAS_LEL,
        unit="%LEL",
        interval_s=interval_s,
    )


def reading(tag: str = "GD101", ts_ms: int = T0, quality: Quality = Quality.GOOD) -> Reading:
    return Reading("E001", "gw1", tag, 3.0, ts_ms, quality)


def test_stale_after_factor_times_interval_once_then_cleared_by_a_reading() -> None:
    stale = StaleDetector([point()], factor=3, start_ms=T0)
    assert stale.tick(T0 + 15_000) == []
    [became] = stale.tick(T0 + 15_001)
    assert (became.type, became.active, became.tag, became.installation) == (
        AlarmType.STALE,
        True,
        "GD101",
        "MH01",
    )
    assert became.ts_ms == T0 + 15_001
    assert (became.value, became.limit) == (None, None)
    assert "no reading for 15.001 s (expected every 5.0 s)" in became.message
    # one condition only, not one per tick
    assert stale.tick(T0 + 16_000) == []
    assert stale.tick(T0 + 60_000) == []
    assert stale.is_stale("E001", "GD101")
    [cleared] = stale.update(reading(ts_ms=T0 + 61_000), T0 + 61_000)
    assert (cleared.type, cleared.active, cleared.ts_ms) == (AlarmType.STALE, False, T0 + 61_000)
    assert not stale.is_stale("E001", "GD101")
    # fresh again: the next reading says nothing, and the clock restarts from it
    assert stale.update(reading(ts_ms=T0 + 62_000), T0 + 62_000) == []
    assert stale.tick(T0 + 77_000) == []
    assert [c.active for c in stale.tick(T0 + 77_001)] == [True]


def test_readings_keep_a_point_fresh() -> None:
    stale = StaleDetector([point()], factor=3, start_ms=T0)
    for n in range(1, 10):
        assert stale.update(reading(ts_ms=T0 + n * 5_000), T0 + n * 5_000) == []
        assert stale.tick(T0 + n * 5_000 + 15_000) == []


def test_seen_is_the_arrival_time_not_the_gateways_clock() -> None:
    stale = StaleDetector([point()], factor=3, start_ms=T0)
    # a gateway whose clock is an hour behind still reports
    assert stale.update(reading(ts_ms=T0 - 3_600_000), T0 + 10_000) == []
    assert stale.tick(T0 + 20_000) == []
    # observe() without an arrival time falls back to the reading's own time
    assert stale.observe(reading(ts_ms=T0 + 30_000)) == []
    assert stale.tick(T0 + 45_000) == []


def test_any_quality_counts_as_reporting() -> None:
    stale = StaleDetector([point()], factor=3, start_ms=T0)
    stale.tick(T0 + 20_000)
    assert [c.active for c in stale.update(reading(quality=Quality.BAD), T0 + 21_000)] == [False]


def test_points_without_interval_are_not_watched_and_unknown_points_ignored() -> None:
    stale = StaleDetector([point("A", 5), point("B", None)], factor=2, start_ms=T0)
    assert stale.watches("E001", "A")
    assert not stale.watches("E001", "B")
    assert [c.tag for c in stale.tick(T0 + 10_000_000)] == ["A"]
    assert stale.update(reading("B"), T0) == []
    assert stale.update(reading("NOT_REGISTERED"), T0) == []


def declared(tag: str, gateway: str | None) -> Point:
    return point(tag).model_copy(update={"gateway": gateway})


def test_a_declared_gateway_that_never_connects_is_one_gateway_offline_not_stale_per_point() -> (
    None
):
    points = [declared(f"GD{n}", "MH01-gw") for n in range(14)] + [declared("LONE", None)]
    stale = StaleDetector(points, factor=3, start_ms=T0)
    changes = stale.tick(T0 + 15_001)
    by_type = sorted((c.type, c.tag) for c in changes)
    assert by_type == [(AlarmType.GATEWAY_OFFLINE, "MH01-gw"), (AlarmType.STALE, "LONE")]
    [offline] = [c for c in changes if c.type is AlarmType.GATEWAY_OFFLINE]
    assert offline.installation == "MH01"
    assert offline.message == (
        "Gateway MH01-gw: not heard from since the service started 15.001 s ago (14 point(s))"
    )
    assert stale.offline_gateways() == [("E001", "MH01-gw")]
    # it connects: one reading clears it, and the points it has not sent yet get a fresh
    # allowance from then — then go STALE one by one, its gateway being alive
    [back] = stale.update(Reading("E001", "MH01-gw", "GD0", 1.0, T0 + 20_000), T0 + 20_000)
    assert (back.type, back.active) == (AlarmType.GATEWAY_OFFLINE, False)
    assert stale.update(Reading("E001", "MH01-gw", "GD0", 1.0, T0 + 30_000), T0 + 30_000) == []
    assert stale.tick(T0 + 35_000) == []
    went = stale.tick(T0 + 35_001)
    assert {(c.type, c.tag) for c in went} == {(AlarmType.STALE, f"GD{n}") for n in range(1, 14)}


def test_a_reading_from_another_gateway_moves_a_declared_point_there() -> None:
    stale = StaleDetector([declared("A", "gw-a"), declared("B", "gw-a")], factor=3, start_ms=T0)
    stale.update(Reading("E001", "gw-b", "A", 1.0, T0), T0)  # rewired in the field
    stale.update(Reading("E001", "gw-a", "B", 1.0, T0), T0)
    stale.update(Reading("E001", "gw-a", "B", 1.0, T0 + 14_000), T0 + 14_000)
    # gw-b (only A) falls silent: A's gateway is gw-b now, so that is what goes offline
    assert [(c.type, c.tag) for c in stale.tick(T0 + 15_001)] == [
        (AlarmType.GATEWAY_OFFLINE, "gw-b")
    ]
