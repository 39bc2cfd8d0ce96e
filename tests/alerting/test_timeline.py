"""Routing, escalation, feedback deadlines, shelving, suppression and flood control as
timelines on a manual clock: inject at t, expect between t1 and t2 (tests/alerting/
timeline.py). The registry is the bundled example: E001 has a grade-2 tank farm (MH01)
and a grade-1 reactor (MH02) in grid KS-03; E002 a grade-4 distribution board (DB01)
in grid KS-07, with a principal and a duty room only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hazwatch.models import AlarmState, AlarmType, Disposal, Registry, system_condition
from tests.alerting.timeline import Arrival, Timeline

DUTY, PRINCIPAL, TECHNICAL = "E001/duty", "E001/principal", "E001/technical"
OPERATIONS, OFFICER, REGULATOR = "E001/operations", "grid/KS-03/officer/1", "grid/KS-03/regulator"
OPERATOR = "platform/operator/1"


@pytest.fixture
def timeline(tmp_path: Path, example_registry: Registry) -> Iterator[Any]:
    made: list[Timeline] = []

    def make(channels: tuple[str, ...] = ("sms", "email"), **alerting: Any) -> Timeline:
        alerting.setdefault("operators", [{"name": "Ops Sun", "phone": "+86-1", "email": "o@x"}])
        tl = Timeline(tmp_path / str(len(made)), example_registry, alerting, channels=channels)
        made.append(tl)
        return tl

    yield make
    for tl in made:
        tl.close()


def raiser(tl: Timeline, tag: str, alarm_type: AlarmType, **kwargs: Any) -> Callable[[], None]:
    """Raise an alarm of ``tag`` when called (a timeline action)."""
    return lambda: tl.apply(tl.condition(tag, alarm_type, **kwargs))


def between(arrivals: list[Arrival], t1: float, t2: float) -> list[Arrival]:
    return [a for a in arrivals if t1 <= a.t_s <= t2]


def told(arrivals: list[Arrival], channel: str = "sms") -> set[str]:
    return {p for a in arrivals if a.channel == channel for p in a.people}


# --- routing ---------------------------------------------------------------------------


async def test_routing_follows_type_priority_and_installation_grade(timeline: Any) -> None:
    tl: Timeline = timeline()
    tl.at(0, lambda: tl.apply(tl.condition("R201_TT", AlarmType.HH)))  # grade-1 reactor
    tl.at(10, lambda: tl.apply(tl.condition("GD101", AlarmType.FAULT, installation="MH01")))
    tl.at(20, lambda: tl.apply(tl.condition("TK101_LT", AlarmType.H, installation="MH01")))
    tl.at(
        30,
        lambda: tl.apply(
            tl.condition("CT01", AlarmType.HH, enterprise="E002", installation="DB01")
        ),
    )
    tl.at(
        40,
        lambda: tl.apply(
            system_condition(
                "historian_lag",
                active=True,
                ts_ms=tl.clock.now_ms(),
                message="lag",
                value=90,
                limit=60,
            )
        ),
    )
    await tl.run_until(50)
    sms = tl.arrivals("sms")
    # HH on a grade-1 installation: duty room, principal and grid officer at once
    assert told(between(sms, 0, 1)) == {DUTY, PRINCIPAL, OFFICER}
    assert told(between(tl.arrivals("email"), 0, 1), "email") == {
        PRINCIPAL,
        OFFICER,
    }  # duty: no e-mail
    # FAULT: the technical owner, never the grid officer on the first tier
    assert told(between(sms, 10, 11)) == {TECHNICAL}
    # H: the duty room
    assert told(between(sms, 20, 21)) == {DUTY}
    # HH on a grade-4 board: the "critical" route (duty room, operations: E002 has none)
    assert told(between(sms, 30, 31)) == {"E002/duty"}
    # SYSTEM: the platform's own operators
    assert told(between(sms, 40, 41)) == {OPERATOR}
    # the feed got every event, whoever was told
    assert [round(a.t_s) for a in tl.arrivals("feed")] == [0, 10, 20, 30, 40]
    assert not [d for d in tl.journal.dead_letters() if d["channel"] != "unreachable"]


async def test_someone_no_channel_reaches_is_a_dead_row_that_says_so(
    timeline: Any,
) -> None:
    tl: Timeline = timeline(channels=("email",))
    tl.at(
        0,
        lambda: tl.apply(
            tl.condition("CT01", AlarmType.HH, enterprise="E002", installation="DB01")
        ),
    )
    await tl.run_until(5)
    [dead] = [d for d in tl.journal.dead_letters() if d["recipient"] == "E002/duty"]
    assert dead["channel"] == "unreachable"  # the duty room has a phone, no e-mail
    assert "has no address on any of the route's channels: email" in dead["last_error"]
    assert tl.arrivals("email") == []


# --- escalation ---------------------------------------------------------------------------


async def test_unacknowledged_critical_escalates_on_time_then_stops_on_ack(timeline: Any) -> None:
    tl: Timeline = timeline()
    tl.at(0, lambda: tl.apply(tl.condition()))
    await tl.run_until(1000)
    sms = tl.arrivals("sms")
    tier1 = [a for a in between(sms, 300, 301) if a.kind == "escalated"]
    assert told(tier1) == {PRINCIPAL, OFFICER}
    assert (
        tier1[0].notice.event.comment
        == "tier 1: unacknowledged for 5 min; told principal, grid_officer"
    )
    assert "ESCALATION (督办), tier 1: unacknowledged for 5 min" in tier1[0].notice.text().text
    reminders = [a for a in sms if a.notice.purpose == "reminder"]
    assert {round(a.t_s) for a in reminders} == {600}  # 300 is the escalation's own message
    assert told(reminders) == {DUTY, PRINCIPAL, OFFICER}
    tier2 = [a for a in between(sms, 900, 901) if a.kind == "escalated"]
    assert told(tier2) == {REGULATOR}
    alarm = tl.journal.get(tl.alarm_id())
    assert alarm.escalation == 2
    kinds = [t["kind"] for t in tl.journal.transitions(alarm.id)]
    assert kinds == ["raised", "escalated", "escalated"]

    tl2: Timeline = timeline()
    tl2.at(0, lambda: tl2.apply(tl2.condition()))
    tl2.at(700, lambda: tl2.service.acknowledge(tl2.alarm_id(), "on it"))
    await tl2.run_until(3000)
    late = [a for a in tl2.arrivals("sms") if a.t_s > 700]
    assert late == []  # no regulator at 900, no reminder at 1200
    # what still waits is the feedback deadline (24 h for critical), not the ack tiers
    assert tl2.journal.next_timer_ms() == tl2.clock.now_ms() - 3000_000 + 24 * 3_600_000


async def test_escalation_is_on_time_while_the_receiver_is_down(timeline: Any) -> None:
    tl: Timeline = timeline()
    tl.receivers["sms"].down_until_s = 1000
    tl.at(0, lambda: tl.apply(tl.condition()))
    await tl.run_until(1500)
    at = [t["at"] for t in tl.journal.transitions(tl.alarm_id()) if t["kind"] == "escalated"]
    assert at == ["2025-11-22T14:05:00.000Z", "2025-11-22T14:15:00.000Z"]  # 300 s, 900 s
    sms = tl.arrivals("sms")
    assert sms
    assert min(a.t_s for a in sms) >= 1000  # delivered once the receiver was back
    keys = [a.notice.key for a in sms]
    assert len(keys) == len(set(keys))  # each once
    assert told([a for a in sms if a.kind == "escalated"]) == {PRINCIPAL, OFFICER, REGULATOR}
    assert tl.journal.pending_count() == 0


# --- the closed loop -------------------------------------------------------------------


async def test_missing_feedback_escalates_and_feedback_then_verify_closes(timeline: Any) -> None:
    tl: Timeline = timeline(feedback={"due_min": {"critical": 60}})
    tl.at(0, lambda: tl.apply(tl.condition()))
    tl.at(60, lambda: tl.service.acknowledge(tl.alarm_id(), "seen"))
    tl.at(120, lambda: tl.apply(tl.condition(active=False, value=130)))
    await tl.run_until(3700)
    alarm = tl.journal.get(tl.alarm_id())
    assert (alarm.state, alarm.disposal) == (AlarmState.CLEARED, Disposal.AWAITING_FEEDBACK)
    assert alarm.feedback_due == "2025-11-22T15:00:00.000Z"
    overdue = [a for a in between(tl.arrivals("sms"), 3600, 3601) if a.kind == "escalated"]
    assert told(overdue) == {PRINCIPAL, OFFICER}
    assert "feedback overdue" in overdue[0].notice.event.comment

    # the condition returns while the alarm awaits feedback: a NEW alarm is raised
    tl.at(3650, lambda: tl.apply(tl.condition(value=151)))
    tl.at(3700, lambda: tl.service.feedback(alarm.id, "cooling pump tripped", "pump replaced"))
    await tl.run_until(3710)
    alarms = [a for a in tl.journal.list_alarms(limit=10) if a.tag == "R201_TT"]
    assert len(alarms) == 2
    assert {a.state for a in alarms} == {AlarmState.CLEARED, AlarmState.ACTIVE_UNACK}
    fed_back = tl.journal.get(alarm.id)
    assert fed_back.disposal is Disposal.AWAITING_VERIFICATION
    assert fed_back.feedback is not None
    assert fed_back.feedback.cause == "cooling pump tripped"
    verifiers = [a for a in between(tl.arrivals("sms"), 3700, 3701) if a.kind == "feedback"]
    assert told(verifiers) == {OFFICER}

    tl.at(3720, lambda: tl.service.verify(alarm.id, accepted=False, comment="show the log"))
    tl.at(
        3730, lambda: tl.service.feedback(alarm.id, "pump tripped", "pump replaced, log attached")
    )
    tl.at(3740, lambda: tl.service.verify(alarm.id, accepted=True, comment="checked on site"))
    await tl.run_until(3600 + 24 * 3600 + 100)
    closed = tl.journal.get(alarm.id)
    assert closed.disposal is Disposal.CLOSED
    assert closed.closed_at == "2025-11-22T15:02:20.000Z"
    assert closed.verification is not None
    assert closed.verification.accepted
    kinds = [t["kind"] for t in tl.journal.transitions(alarm.id)]
    assert kinds == [
        "raised", "acknowledged", "cleared", "escalated", "feedback", "rejected", "feedback",
        "verified",
    ]  # fmt: skip
    rejected = [a for a in tl.arrivals("sms") if a.kind == "rejected"]
    assert told(rejected) <= {DUTY, PRINCIPAL, OPERATIONS, TECHNICAL}
    assert rejected
    # no regulator for the overdue feedback: it came before its 24 h tier
    first = [a for a in tl.arrivals("sms") if a.notice.event.alarm.id == alarm.id]
    assert not [a for a in first if REGULATOR in a.people and a.t_s > 3600]


# --- shelving and suppression -------------------------------------------------------------


async def test_a_shelved_alarm_is_not_chased_and_comes_back_when_the_shelf_expires(
    timeline: Any,
) -> None:
    tl: Timeline = timeline()
    tl.at(0, lambda: tl.apply(tl.condition()))
    tl.at(60, lambda: tl.service.shelve(tl.alarm_id(), 10, "sensor being recalibrated"))
    await tl.run_until(659)
    assert [a for a in tl.arrivals("sms") if a.t_s > 1] == []  # no escalation at 300
    assert tl.journal.get(tl.alarm_id()).state is AlarmState.SHELVED
    await tl.run_until(1000)
    alarm = tl.journal.get(tl.alarm_id())
    assert alarm.state is AlarmState.ACTIVE_UNACK
    back = between(tl.arrivals("sms"), 660, 661)
    assert {a.kind for a in back} == {"unshelved"}
    assert told(back) == {DUTY, PRINCIPAL, OFFICER}
    tier1 = [a for a in between(tl.arrivals("sms"), 960, 961) if a.kind == "escalated"]
    assert told(tier1) == {PRINCIPAL, OFFICER}  # counted from the return: 660 + 300


async def test_a_suppressed_point_is_journalled_and_nobody_is_told(timeline: Any) -> None:
    tl: Timeline = timeline()
    end = tl.clock.now_ms() + 1_800_000
    tl.at(
        0,
        lambda: tl.service.suppress(
            enterprise="E001", installation="MH02", tag="", reason="maintenance", end_ms=end
        ),
    )
    tl.at(60, lambda: tl.apply(tl.condition()))
    tl.at(90, lambda: tl.apply(tl.condition("R201_PT", AlarmType.H, value=1.3, limit=1.2)))
    tl.at(120, lambda: tl.apply(tl.condition("R201_PT", AlarmType.H, active=False, value=1.0)))
    await tl.run_until(1799)
    assert tl.arrivals("sms") == []
    states = {a.tag: a.state for a in tl.journal.list_alarms(limit=10)}
    assert states == {"R201_TT": AlarmState.SUPPRESSED, "R201_PT": AlarmState.CLEARED}
    assert len(tl.arrivals("feed")) == 3  # journalled and on the feeds, marked suppressed
    await tl.run_until(1900)
    back = tl.arrivals("sms")
    assert {a.kind for a in back} == {"unsuppressed"}
    assert {round(a.t_s) for a in back} == {1800}
    assert tl.journal.get(tl.alarm_id()).state is AlarmState.ACTIVE_UNACK
    assert tl.journal.suppressions() == []


# --- flood control --------------------------------------------------------------------------


async def test_a_burst_becomes_singles_then_one_digest(timeline: Any) -> None:
    tl: Timeline = timeline(flood={"digest_after": 3, "window_s": 60, "max_per_minute": 10})
    tags = ["TK101_LT", "TK101_TT", "TK101_PT", "TK102_LT", "GD101", "GD102"]
    for n in range(20):
        tag = tags[n % len(tags)]
        alarm_type = [AlarmType.H, AlarmType.L, AlarmType.ROC, AlarmType.TREND][n // len(tags)]
        tl.at(n, raiser(tl, tag, alarm_type, installation="MH01", value=1, limit=0))
    await tl.run_until(200)
    to_duty = [a for a in tl.arrivals("sms") if DUTY in a.people]
    singles = [a for a in to_duty if a.notice.purpose != "digest"]
    digests = [a for a in to_duty if a.notice.purpose == "digest"]
    assert [round(a.t_s) for a in singles] == [0, 1, 2]
    assert [round(a.t_s) for a in digests] == [60]
    assert digests[0].notice.count == 17
    assert len(digests[0].notice.events) == 10  # listed; the rest counted
    assert "17 alarms" in digests[0].notice.text().title
    assert tl.journal.pending_count() == 0  # every row delivered, 17 of them in one digest


async def test_the_rate_limit_holds_and_critical_alarms_bypass_it(timeline: Any) -> None:
    tl: Timeline = timeline(flood={"digest_after": 100, "window_s": 60, "max_per_minute": 5})
    tags = ["TK101_LT", "TK101_TT", "TK101_PT", "TK102_LT", "GD101", "GD102"]
    for n, tag in enumerate(tags * 2):
        alarm_type = AlarmType.H if n < 6 else AlarmType.ROC
        tl.at(n, raiser(tl, tag, alarm_type, installation="MH01"))
    for n, tag in enumerate(["R201_TT", "R201_PT", "R201_FT_CW"]):
        tl.at(20 + n, raiser(tl, tag, AlarmType.HH))
    await tl.run_until(300)
    to_duty = [a for a in tl.arrivals("sms") if DUTY in a.people]
    critical = [a for a in to_duty if a.notice.event.alarm.type is AlarmType.HH]
    assert [round(a.t_s) for a in critical] == [20, 21, 22]  # at once, past the limit
    others = [a for a in to_duty if a not in critical]
    for t in range(300):
        in_minute = [a for a in others if t <= a.t_s < t + 60]
        assert len(in_minute) <= 5, (t, [(a.t_s, a.notice.purpose) for a in in_minute])
    assert sum(a.notice.count for a in others) == 12  # nothing lost
    assert tl.journal.pending_count() == 0


# --- failing receivers -------------------------------------------------------------------


async def test_a_refused_recipient_is_dead_and_a_failing_channel_raises_a_system_alarm(
    timeline: Any,
) -> None:
    tl: Timeline = timeline(channel_alarm_s=120)
    tl.receivers["email"].refuse = lambda notice: notice.recipient == PRINCIPAL
    tl.receivers["sms"].down_until_s = 600
    tl.at(0, lambda: tl.apply(tl.condition()))
    await tl.run_until(900)
    email = tl.arrivals("email")
    assert OFFICER in told(between(email, 0, 1), "email")
    dead = [d for d in tl.journal.dead_letters() if d["channel"] == "email"]
    assert dead
    assert {d["recipient"] for d in dead} == {PRINCIPAL}  # the raise, the tier, a reminder
    assert "refused" in dead[0]["last_error"]
    system = {a.tag: a for a in tl.journal.list_alarms(limit=50) if a.type is AlarmType.SYSTEM}
    assert "notifications_dead" in system
    assert system["channel:sms"].state is AlarmState.CLEARED_UNACK  # raised, cleared at 600
    # the SYSTEM alarm about sms went to the operators by e-mail, not by sms
    about_sms = [a for a in email if a.notice.event.alarm.tag == "channel:sms"]
    assert told(about_sms, "email") == {OPERATOR}
    raised_at = [a.t_s for a in about_sms if a.kind == "raised"]
    assert raised_at
    assert 120 <= raised_at[0] <= 300
    assert not [a for a in tl.arrivals("sms") if a.notice.event.alarm.tag == "channel:sms"]
