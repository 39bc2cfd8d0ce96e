"""``GET /api/alarms?active=true`` in the operators' order, and a re-raised alarm as
it is now (the journal's order and fields, seen through the API)."""

from __future__ import annotations

from collections.abc import Callable

from hazwatch.models import AlarmType, Condition, ms_to_iso
from tests.dashboards.conftest import NOW_MS, ConsoleHarness

MakeCondition = Callable[..., Condition]


def test_open_alarms_come_by_priority_then_unacknowledged_then_newest(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    critical = harness.apply(make_condition(AlarmType.HH, ts_ms=NOW_MS))[0].alarm
    for n in range(14):  # newer, and more of them
        harness.clock.advance(1_000)
        harness.apply(make_condition(AlarmType.STALE, tag=f"S{n:02d}", ts_ms=NOW_MS + 1_000 * n))
    listed = harness.client.get("/api/alarms", params={"active": "true"}).json()
    assert len(listed) == 15
    assert listed[0]["id"] == critical.id
    assert {a["priority"] for a in listed[1:]} == {"low"}


def test_a_re_raised_alarm_shows_the_activation_happening_now(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    first = harness.apply(make_condition(AlarmType.HH, value=11.2, ts_ms=NOW_MS))[0].alarm
    harness.apply(make_condition(AlarmType.HH, active=False, value=9.0, ts_ms=NOW_MS + 1_000))
    harness.clock.advance(60_000)
    harness.apply(make_condition(AlarmType.HH, value=11.9, limit=11.5, ts_ms=NOW_MS + 60_000))
    alarm = harness.client.get(f"/api/alarms/{first.id}").json()
    assert alarm["state"] == "active_unack"
    assert (alarm["value"], alarm["limit"], alarm["raised_at"], alarm["cleared_at"]) == (
        11.9,
        11.5,
        ms_to_iso(NOW_MS + 60_000),
        None,
    )
    assert alarm["message"] == "TK101_LT 11.9 HH 11.5"
    assert [t["kind"] for t in alarm["transitions"]] == ["raised", "cleared", "raised"]
