"""Judging a run: expected alarms in their windows, missing or late ones, false alarms."""

from __future__ import annotations

import doctest
import re
from typing import Any

import simulators.verdict
from hazwatch.models import Alarm, AlarmState, AlarmType, Priority
from simulators.scenario import Scenario
from simulators.verdict import ObservedAlarm, ScenarioReport, judge


def alarm(
    alarm_id: str, type_: str, tag: str, raised_s: float, enterprise: str = "E001"
) -> ObservedAlarm:
    return ObservedAlarm(
        Alarm(
            id=alarm_id,
            enterprise=enterprise,
            installation="MH01",
            tag=tag,
            type=AlarmType(type_),
            priority=Priority.HIGH,
            state=AlarmState.ACTIVE_UNACK,
            value=None,
            limit=None,
            raised_at="2026-01-01T00:00:00.000Z",
            cleared_at=None,
            message=f"{tag} [{type_}] message",
        ),
        raised_s,
    )


def scenario(*expect: dict[str, Any]) -> Scenario:
    return Scenario.model_validate({"name": "Test", "duration_s": 100, "expect": list(expect)})


def test_docstring_examples() -> None:
    result = doctest.testmod(simulators.verdict)
    assert result.attempted > 0
    assert result.failed == 0


def test_an_alarm_in_its_window_passes_and_is_claimed() -> None:
    results, unexpected = judge(
        scenario({"type": "HH", "tag": "T1", "after_s": 10, "before_s": 20}),
        [alarm("a", "HH", "T1", 15.0), alarm("b", "HH", "T1", 18.0)],
    )
    assert [(r.status, r.alarm and r.alarm.alarm.id) for r in results] == [("pass", "a")]
    assert unexpected == []  # raised twice within the window: both are the expected alarm


def test_a_late_alarm_fails_its_expectation_and_is_shown_with_it() -> None:
    results, unexpected = judge(
        scenario({"type": "HH", "tag": "T1", "after_s": 10, "before_s": 20}),
        [alarm("a", "HH", "T1", 35.0), alarm("b", "HH", "T1", 80.0)],
    )
    [result] = results
    assert result.status == "fail"
    assert result.alarm is not None
    assert result.alarm.raised_s == 35.0  # the nearest
    assert [a.alarm.id for a in unexpected] == ["b"]


def test_type_tag_and_enterprise_must_all_match() -> None:
    results, unexpected = judge(
        scenario({"type": "H", "tag": "T1", "enterprise": "E001"}),
        [alarm("a", "HH", "T1", 5.0), alarm("b", "H", "T2", 5.0), alarm("c", "H", "T1", 5.0, "E9")],
    )
    assert results[0].status == "fail"
    assert results[0].alarm is None
    assert len(unexpected) == 3


def test_optional_alarms_may_come_or_not() -> None:
    expectation = {"type": "TREND", "tag": "T1", "after_s": 0, "before_s": 50, "optional": True}
    seen, unexpected = judge(scenario(expectation), [alarm("a", "TREND", "T1", 30.0)])
    assert [r.status for r in seen] == ["seen"]
    assert unexpected == []
    not_seen, _ = judge(scenario(expectation), [])
    assert [r.status for r in not_seen] == ["not_seen"]
    _, late = judge(scenario(expectation), [alarm("a", "TREND", "T1", 70.0)])
    assert [a.alarm.id for a in late] == ["a"]  # outside its window it is a false alarm


def test_alarms_from_before_the_run_or_after_its_end_are_not_judged() -> None:
    results, unexpected = judge(
        scenario(),
        [alarm("old", "STALE", "T1", -30.0), alarm("end", "GATEWAY_OFFLINE", "gw", 100.5)],
    )
    assert results == []
    assert unexpected == []


def report(**fields: Any) -> ScenarioReport:
    expected, unexpected = judge(
        scenario(
            {"type": "H", "tag": "T1", "after_s": 10, "before_s": 20},
            {"type": "HH", "tag": "T1", "after_s": 20, "before_s": 30},
            {"type": "TREND", "tag": "T1", "optional": True},
        ),
        [alarm("a", "H", "T1", 12.0), alarm("b", "STALE", "GD101", 40.0)],
    )
    values: dict[str, Any] = {
        "scenario": "Test",
        "source": "test.toml",
        "mode": "embedded",
        "broker": "mqtt://127.0.0.1:1883",
        "seed": 1,
        "speed": 25.0,
        "duration_s": 100.0,
        "expected": tuple(expected),
        "unexpected": tuple(unexpected),
        "messages": 1234,
        "readings": 5678,
        "max_lag_s": 0.4,
        "sample_s": 5.0,
        "wall_s": 6.0,
    }
    return ScenarioReport(**{**values, **fields})


def plain(lines: list[str]) -> str:
    return re.sub(r"\[/?[a-z ]+\]", "", "\n".join(lines))


def test_the_report_lists_each_expectation_then_the_false_alarms() -> None:
    failed = report()
    assert not failed.passed
    assert plain(failed.lines()) == (
        "Test — test.toml\n"
        "embedded service, speed 25×, seed 1: 100 s of scenario time in 6.0 s\n"
        "\n"
        "expected alarms\n"
        "  PASS  H      E001/T1  at 12.0 s (window 10–20 s)\n"
        "  FAIL  HH     T1       not raised (window 20–30 s)\n"
        "  ----  TREND  T1       not raised (optional, window 0–100 s)\n"
        "\n"
        "unexpected alarms\n"
        "  STALE E001/GD101  at 40.0 s  GD101 [STALE] message\n"
        "\n"
        "published 1,234 messages (5,678 readings); at most 0.4 s behind schedule\n"
        "result: FAIL — 1 of 2 expected alarms, 1 unexpected"
    )
    data = failed.as_dict()
    assert data["passed"] is False
    assert [e["status"] for e in data["expected"]] == ["pass", "fail", "not_seen"]
    assert data["unexpected"][0]["alarm"]["type"] == "STALE"


def test_a_publisher_far_behind_schedule_is_called_out() -> None:
    text = plain(report(max_lag_s=12.5).lines())
    assert "warning: publishing fell 12.5 s behind schedule, more than the 5 s" in text


def test_problems_fail_the_run() -> None:
    clean = report(expected=(), unexpected=())
    assert clean.passed
    assert not report(expected=(), unexpected=(), problems=("not alarm JSON",)).passed
