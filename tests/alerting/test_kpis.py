"""Alarm KPIs (ISA-18.2) on constructed timelines: every expected figure is derived here
from the timeline, not read back from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting import kpis
from alerting.journal import Journal
from alerting.kpis import KpiRules, Transition
from hazwatch.models import Condition
from tests.alerting.conftest import MakeCondition

MIN = 60_000
HOUR = 3_600_000
START, END = 0, HOUR  # six 10-minute intervals
GRID_OF = {"E1": "G1", "E2": "G2", "E3": "G3"}
POSITIONS = ["G1", "G2", "G3"]


def tr(alarm: str, enterprise: str, tag: str, at_ms: int, kind: str, to: str) -> Transition:
    return Transition(alarm, enterprise, "I1", tag, "HH", "critical", at_ms, kind, to)


def raised(alarm: str, enterprise: str, tag: str, at_ms: int) -> Transition:
    return tr(alarm, enterprise, tag, at_ms, "raised", "active_unack")


def cleared(alarm: str, enterprise: str, tag: str, at_ms: int) -> Transition:
    return tr(alarm, enterprise, tag, at_ms, "cleared", "cleared_unack")


def acked(alarm: str, enterprise: str, tag: str, at_ms: int) -> Transition:
    return tr(alarm, enterprise, tag, at_ms, "acknowledged", "active_ack")


def timeline() -> list[Transition]:
    t: list[Transition] = []
    # E1 (grid G1): 11 alarms in the first interval (a flood: more than 10), 10 in the
    # second (exactly 10: not a flood). Tags A00..A10, then A00..A09 again.
    t += [raised(f"A{k:02}-1", "E1", f"A{k:02}", k * 1_000) for k in range(11)]
    t += [raised(f"A{k:02}-2", "E1", f"A{k:02}", 10 * MIN + k * 1_000) for k in range(10)]
    # acknowledged after 30 s and 90 s; A00-1 gets its feedback 30 min after its raise
    t += [acked("A00-1", "E1", "A00", 30_000), acked("A01-1", "E1", "A01", 1_000 + 90_000)]
    t += [tr("A00-1", "E1", "A00", 30 * MIN, "feedback", "active_ack")]
    # raised while suppressed (maintenance): journalled, not annunciated
    t += [tr("M-1", "E1", "M1", 5 * MIN, "raised", "suppressed")]
    # E2 (grid G2), third interval: C1 chatters (3 raises within 50 s), C2 does not
    # (3 raises, at most 2 within any 60 s); C2 is acknowledged 100 s after its first.
    c0 = 20 * MIN
    for alarm, tag, offsets in (("C1-1", "C1", (0, 20, 50)), ("C2-1", "C2", (0, 40, 90))):
        for n, s in enumerate(offsets):
            t.append(raised(alarm, "E2", tag, c0 + s * 1_000))
            t.append(cleared(alarm, "E2", tag, c0 + s * 1_000 + 5_000 if n < 2 else END + 1))
    t += [acked("C2-1", "E2", "C2", c0 + 100_000)]
    # standing: S1 raised 30 h before the period, still active; S2 active 2.5 h only;
    # S3 active 49 h but cleared an hour before the period began.
    t += [raised("S1-1", "E1", "S1", -30 * HOUR)]
    t += [raised("S2-1", "E1", "S2", -2 * HOUR), cleared("S2-1", "E1", "S2", HOUR // 2)]
    t += [raised("S3-1", "E1", "S3", -50 * HOUR), cleared("S3-1", "E1", "S3", -HOUR)]
    return [x for x in t if x.at_ms < END]


def test_rate_per_position_and_time_in_flood() -> None:
    rows = {r["position"]: r for r in kpis.alarm_rate(timeline(), GRID_OF, POSITIONS, START, END)}
    # G1: 21 annunciations over six intervals; one interval of six flooded
    assert rows["G1"] == {
        "position": "G1",
        "alarms": 21,
        "per_10min_mean": 3.5,
        "per_10min_max": 11,
        "flood_pct": round(100 / 6, 2),
    }
    # G2: 6 raises (C1 and C2 three times each) all in one interval
    assert rows["G2"] == {
        "position": "G2",
        "alarms": 6,
        "per_10min_mean": 1.0,
        "per_10min_max": 6,
        "flood_pct": 0.0,
    }
    # a position without alarms is listed with zeros: a quiet position is a figure too
    assert rows["G3"]["alarms"] == 0
    assert rows["G3"]["flood_pct"] == 0.0


def test_flood_threshold_is_configurable_and_a_short_last_interval_weighs_its_length() -> None:
    # 15 minutes: intervals of 10 and 5 minutes; 11 alarms in the short one
    t = [raised(f"X{k}", "E1", f"X{k}", 10 * MIN + k * 1_000) for k in range(11)]
    (row,) = kpis.alarm_rate(t, GRID_OF, ["G1"], 0, 15 * MIN)
    assert row["flood_pct"] == round(100 * 5 / 15, 2)
    assert row["per_10min_mean"] == round(11 * 10 / 15, 3)
    (strict,) = kpis.alarm_rate(t, GRID_OF, ["G1"], 0, 15 * MIN, rules=KpiRules(flood_alarms=11))
    assert strict["flood_pct"] == 0.0


def test_top_ten_most_frequent() -> None:
    top = kpis.top_alarms(timeline(), START, END)
    assert len(top) == 10
    # C1 and C2 three times each; then A00..A09 twice each, in key order (A10 once)
    assert [r["tag"] for r in top] == ["C1", "C2"] + [f"A{k:02}" for k in range(8)]
    assert [r["count"] for r in top] == [3, 3] + [2] * 8
    total = 21 + 6
    assert top[0]["share_pct"] == round(100 * 3 / total, 2)


def test_chattering_needs_three_within_sixty_seconds() -> None:
    rows = kpis.chattering(timeline(), START, END)
    assert rows == [
        {
            "enterprise": "E2",
            "installation": "I1",
            "tag": "C1",
            "type": "HH",
            "count": 3,
            "max_in_window": 3,
        }
    ]
    # with a 90 s window C2 (0, 40, 90 s) chatters too
    wide = kpis.chattering(timeline(), START, END, KpiRules(chatter_window_s=90))
    assert [r["tag"] for r in wide] == ["C1", "C2"]


def test_long_standing_alarms() -> None:
    rows = kpis.standing(timeline(), START, END)
    assert [(r["alarm_id"], r["active_h"], r["still_active"]) for r in rows] == [
        ("S1-1", 31.0, True)  # 30 h before the period + its hour
    ]
    # with a 2 h threshold S2 (2.5 h, cleared inside the period) stands too
    rows = kpis.standing(timeline(), START, END, KpiRules(standing_h=2))
    assert [(r["alarm_id"], r["active_h"], r["still_active"]) for r in rows] == [
        ("S1-1", 31.0, True),
        ("S2-1", 2.5, False),
    ]


def test_time_to_acknowledge_and_to_feedback_per_enterprise_and_grid() -> None:
    response = kpis.response_times(timeline(), GRID_OF, START, END)
    by_enterprise = {r["id"]: r for r in response["by_enterprise"]}
    assert by_enterprise["E1"] == {
        "id": "E1",
        "acknowledged": 2,
        "unacknowledged": 19,  # 21 annunciated in the period, 2 acknowledged
        "mean_ack_s": (30 + 90) / 2,
        "feedback": 1,
        "mean_feedback_s": 1800.0,
    }
    # C2 is acknowledged 100 s after its first raise (its re-raises while unacknowledged
    # do not restart the clock); C1 is never acknowledged
    assert by_enterprise["E2"] == {
        "id": "E2",
        "acknowledged": 1,
        "unacknowledged": 1,
        "mean_ack_s": 100.0,
        "feedback": 0,
        "mean_feedback_s": None,
    }
    by_grid = {r["id"]: r for r in response["by_grid"]}
    assert by_grid["G1"]["mean_ack_s"] == 60.0
    assert by_grid["G2"]["mean_ack_s"] == 100.0


def test_compute_refuses_an_empty_period() -> None:
    with pytest.raises(ValueError, match="must end after"):
        kpis.compute([], GRID_OF, POSITIONS, END, END)


def test_the_journal_hands_over_the_periods_transitions(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    def cond(tag: str, *, active: bool, ts_ms: int) -> Condition:
        return make_condition(active, tag=tag, ts_ms=ts_ms)

    with Journal(tmp_path / "journal.db", []) as journal:
        t0 = 1_000 * HOUR
        # OLD stands across the period; GONE ended before it; LATE comes after it
        journal.apply(cond("OLD", active=True, ts_ms=t0 - 30 * HOUR), t0 - 30 * HOUR)
        journal.apply(cond("GONE", active=True, ts_ms=t0 - 3 * HOUR), t0 - 3 * HOUR)
        journal.apply(cond("GONE", active=False, ts_ms=t0 - 2 * HOUR), t0 - 2 * HOUR)
        journal.apply(cond("NEW", active=True, ts_ms=t0 + MIN), t0 + MIN)
        journal.apply(cond("LATE", active=True, ts_ms=t0 + 2 * HOUR), t0 + 2 * HOUR)
        rows, truncated = journal.transitions_between(t0, t0 + HOUR)
        assert not truncated
        assert [(r.tag, r.kind, r.at_ms - t0) for r in rows] == [
            ("OLD", "raised", -30 * HOUR),
            ("NEW", "raised", MIN),
        ]
        assert journal.transitions_between(t0, t0 + HOUR, enterprises=["E9"])[0] == []
        rows, truncated = journal.transitions_between(t0, t0 + HOUR, limit=1)
        assert truncated
        assert len(rows) == 1
        figures = kpis.compute(rows, {"E001": "KS-03"}, ["KS-03"], t0, t0 + HOUR)
        assert figures["standing"][0]["tag"] == "OLD"
