"""Journal on a real SQLite file: states, transitions, outbox, restart, refusals."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import orjson
import pytest

from alerting.journal import Journal
from hazwatch.errors import AlarmNotFound, JournalError, JournalUnavailable
from hazwatch.models import AlarmState, AlarmType, Priority, ms_to_iso
from tests.alerting.conftest import T0, MakeCondition
from tests.diskfull import DiskFiller, small_tmpfs

ALARM_JSON_KEYS = [  # DESIGN.md §3.5, in order, then the closed loop's additions
    "id", "enterprise", "installation", "tag", "type", "priority", "state",
    "value", "limit", "raised_at", "cleared_at", "message",
    "disposal", "feedback_due", "feedback", "verification", "closed_at", "escalation",
    "shelved_until",
]  # fmt: skip


def states(journal: Journal, alarm_id: str) -> list[tuple[str | None, str, str]]:
    return [(t["from"], t["to"], t["kind"]) for t in journal.transitions(alarm_id)]


def test_raise_gives_the_alarm_json_of_the_contract(
    journal: Journal, make_condition: MakeCondition
) -> None:
    event = journal.apply(make_condition(ts_ms=T0 + 123), T0 + 500)
    assert event is not None
    assert (event.kind, event.previous_state, event.seq, event.at) == (
        "raised",
        None,
        1,
        ms_to_iso(T0 + 500),
    )
    alarm = event.alarm.model_dump(mode="json")
    assert list(alarm) == ALARM_JSON_KEYS
    assert len(alarm.pop("id")) == 26  # a ULID
    assert alarm == {
        "enterprise": "E001",
        "installation": "MH01",
        "tag": "TK101_LT",
        "type": "HH",
        "priority": "critical",
        "state": "active_unack",
        "value": 11.2,
        "limit": 11.0,
        "raised_at": "2025-11-22T14:00:00.123Z",
        "cleared_at": None,
        "message": "Tank 101 level 11.2 m above HH 11.0 m",
        "disposal": "none",  # the default policy asks for no feedback
        "feedback_due": None,
        "feedback": None,
        "verification": None,
        "closed_at": None,
        "escalation": 0,
        "shelved_until": None,
    }
    assert journal.get(event.alarm.id) == event.alarm
    assert journal.open_count() == 1


def test_unack_clear_then_ack_closes(journal: Journal, make_condition: MakeCondition) -> None:
    raised = journal.apply(make_condition(), T0)
    assert raised is not None
    alarm_id = raised.alarm.id
    cleared = journal.apply(make_condition(active=False, value=10.9, ts_ms=T0 + 5_000), T0 + 5_010)
    assert cleared is not None
    assert (cleared.kind, cleared.previous_state, cleared.alarm.state) == (
        "cleared",
        AlarmState.ACTIVE_UNACK,
        AlarmState.CLEARED_UNACK,
    )
    assert cleared.alarm.id == alarm_id
    assert cleared.alarm.cleared_at == ms_to_iso(T0 + 5_000)
    assert cleared.alarm.value == 10.9
    assert journal.open_count() == 1  # returned but unacknowledged: still open
    acked = journal.acknowledge(alarm_id, "level gauge checked", T0 + 9_000, user="duty")
    assert (acked.kind, acked.alarm.state) == ("acknowledged", AlarmState.CLEARED)
    assert acked.alarm.cleared_at == ms_to_iso(T0 + 5_000)
    assert journal.open_count() == 0
    assert states(journal, alarm_id) == [
        (None, "active_unack", "raised"),
        ("active_unack", "cleared_unack", "cleared"),
        ("cleared_unack", "cleared", "acknowledged"),
    ]
    last = journal.transitions(alarm_id)[-1]
    assert last == {
        "seq": 3,
        "at": ms_to_iso(T0 + 9_000),
        "from": "cleared_unack",
        "to": "cleared",
        "kind": "acknowledged",
        "comment": "level gauge checked",
        "user": "duty",
    }


def test_ack_then_clear_closes(journal: Journal, make_condition: MakeCondition) -> None:
    raised = journal.apply(make_condition(), T0)
    assert raised is not None
    acked = journal.acknowledge(raised.alarm.id, "", T0 + 1)
    assert acked.alarm.state is AlarmState.ACTIVE_ACK
    assert journal.transitions(raised.alarm.id)[-1]["user"] == "operator"
    cleared = journal.apply(make_condition(active=False, ts_ms=T0 + 2), T0 + 2)
    assert cleared is not None
    assert (cleared.kind, cleared.alarm.state) == ("cleared", AlarmState.CLEARED)
    assert journal.open_count() == 0
    assert journal.list_alarms(active=True) == []


def test_repeat_updates_the_value_without_an_event_or_a_duplicate(
    journal: Journal, make_condition: MakeCondition
) -> None:
    raised = journal.apply(make_condition(value=11.2), T0)
    assert raised is not None
    assert journal.apply(make_condition(value=11.6, message="higher"), T0 + 1) is None
    alarm = journal.get(raised.alarm.id)
    assert (alarm.value, alarm.message, alarm.state) == (11.6, "higher", AlarmState.ACTIVE_UNACK)
    assert len(journal.list_alarms()) == 1
    assert len(journal.transitions(raised.alarm.id)) == 1
    assert len(journal.pending(T0 + 10)) == 2  # the raise's rows only, one per channel


def test_returning_alarm_is_raised_again_and_a_closed_one_is_new(
    journal: Journal, make_condition: MakeCondition
) -> None:
    first = journal.apply(make_condition(), T0)
    journal.apply(make_condition(active=False, ts_ms=T0 + 1), T0 + 1)
    again = journal.apply(make_condition(ts_ms=T0 + 2, value=11.9, message="again"), T0 + 2)
    assert first is not None
    assert again is not None
    assert (again.alarm.id, again.kind, again.previous_state, again.alarm.state) == (
        first.alarm.id,
        "raised",
        AlarmState.CLEARED_UNACK,
        AlarmState.ACTIVE_UNACK,
    )
    assert again.alarm.cleared_at is None
    # the activation happening now: its time, value and message; the first in the transitions
    assert (again.alarm.raised_at, again.alarm.value, again.alarm.message) == (
        ms_to_iso(T0 + 2),
        11.9,
        "again",
    )
    assert journal.get(first.alarm.id).raised_at == ms_to_iso(T0 + 2)
    assert [t["kind"] for t in journal.transitions(first.alarm.id)] == [
        "raised",
        "cleared",
        "raised",
    ]
    assert first.alarm.raised_at == ms_to_iso(T0)
    journal.acknowledge(first.alarm.id, "", T0 + 3)
    journal.apply(make_condition(active=False, ts_ms=T0 + 4), T0 + 4)  # active_ack -> cleared
    new = journal.apply(make_condition(ts_ms=T0 + 5), T0 + 5)
    assert new is not None
    assert new.alarm.id != first.alarm.id
    assert (new.seq, new.previous_state) == (1, None)
    assert [a.id for a in journal.list_alarms()] == [new.alarm.id, first.alarm.id]


def test_inactive_without_an_open_alarm_records_nothing(
    journal: Journal, make_condition: MakeCondition
) -> None:
    assert journal.apply(make_condition(active=False), T0) is None
    assert journal.list_alarms() == []
    assert journal.pending(T0) == []


def test_types_and_points_have_separate_alarms(
    journal: Journal, make_condition: MakeCondition
) -> None:
    journal.apply(make_condition(type=AlarmType.H, limit=10.5), T0)
    journal.apply(make_condition(type=AlarmType.HH), T0)
    journal.apply(make_condition(tag="TK102_LT"), T0)
    journal.apply(make_condition(enterprise="E002", installation="DB01", tag="RC01"), T0)
    assert journal.open_count() == 4
    priorities = {(a.tag, a.type): a.priority for a in journal.list_alarms()}
    assert priorities[("TK101_LT", AlarmType.H)] == "high"


def test_outbox_rows_are_written_with_their_transition(
    journal: Journal, make_condition: MakeCondition
) -> None:
    raised = journal.apply(make_condition(), T0)
    acked = journal.acknowledge(raised.alarm.id if raised else "", "ok", T0 + 1)
    items = journal.pending(T0 + 1)
    assert [(i.channel, i.event.seq, i.event.kind) for i in items] == [
        ("webhook", 1, "raised"),
        ("mqtt", 1, "raised"),
        ("webhook", 2, "acknowledged"),
        ("mqtt", 2, "acknowledged"),
    ]
    assert items[2].event == acked  # the event exactly as it was recorded
    assert items[0].idempotency_key == f"{acked.alarm.id}:1"
    assert [i.channel for i in journal.pending(T0 + 1, channel="mqtt")] == ["mqtt", "mqtt"]
    assert len(journal.pending(T0 + 1, limit=3)) == 3
    assert journal.pending(T0 - 1) == []  # not due before they were written
    assert journal.pending_count() == 4


def test_a_failing_outbox_write_rolls_back_the_alarm(
    journal: Journal, journal_path: Path, make_condition: MakeCondition
) -> None:
    with sqlite3.connect(journal_path) as other:
        other.execute(
            "CREATE TRIGGER outbox_broken BEFORE INSERT ON outbox "
            "BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
        )
    with pytest.raises(JournalError, match="outbox refused"):
        journal.apply(make_condition(), T0)
    assert journal.list_alarms() == []
    with sqlite3.connect(journal_path) as other:
        assert other.execute("SELECT count(*) FROM transitions").fetchone() == (0,)


def test_delivery_bookkeeping(journal: Journal, make_condition: MakeCondition) -> None:
    raised = journal.apply(make_condition(), T0)
    assert raised is not None
    webhook, mqtt = journal.pending(T0)
    journal.failed(webhook.id, "receiver answered 500", T0 + 1_000)
    journal.delivered(mqtt.id, T0 + 20)
    assert journal.pending(T0 + 999) == []
    assert journal.next_due_ms() == T0 + 1_000
    assert journal.next_due_ms("mqtt") is None
    [retry] = journal.pending(T0 + 1_000)
    assert (retry.id, retry.attempts) == (webhook.id, 1)
    journal.delivered(webhook.id, T0 + 1_050)
    assert journal.pending_count() == 0
    assert journal.notifications(raised.alarm.id) == [
        {
            "seq": 1,
            "channel": "webhook",
            "recipient": "",
            "purpose": "event",
            "status": "delivered",
            "attempts": 2,
            "last_error": "receiver answered 500",
            "delivered_at": ms_to_iso(T0 + 1_050),
            "next_attempt_at": None,
        },
        {
            "seq": 1,
            "channel": "mqtt",
            "recipient": "",
            "purpose": "event",
            "status": "delivered",
            "attempts": 1,
            "last_error": None,
            "delivered_at": ms_to_iso(T0 + 20),
            "next_attempt_at": None,
        },
    ]
    with pytest.raises(JournalError, match="no pending outbox row"):
        journal.delivered(webhook.id, T0 + 2_000)


def test_reopening_keeps_state_and_does_not_duplicate(
    journal_path: Path, make_condition: MakeCondition
) -> None:
    with Journal(journal_path, ["webhook"]) as journal:
        raised = journal.apply(make_condition(), T0)
        journal.apply(make_condition(type=AlarmType.H, limit=10.5), T0)
        before = journal.list_alarms(active=True)
    assert raised is not None
    with Journal(journal_path, ["webhook"]) as journal:
        assert journal.list_alarms(active=True) == before
        # the detectors start fresh after a restart and report the condition again
        assert journal.apply(make_condition(value=11.3), T0 + 60_000) is None
        assert journal.open_count() == 2
        assert journal.get(raised.alarm.id).value == 11.3
        assert len(journal.pending(T0 + 60_000)) == 2  # undelivered rows survive too
        cleared = journal.apply(make_condition(active=False), T0 + 61_000)
        assert cleared is not None
        assert cleared.alarm.id == raised.alarm.id
        assert cleared.seq == 2


def test_one_open_alarm_per_point_and_type_is_enforced_by_the_database(
    journal: Journal, journal_path: Path, make_condition: MakeCondition
) -> None:
    raised = journal.apply(make_condition(), T0)
    assert raised is not None
    copy = (
        "INSERT INTO alarms (id, enterprise, installation, tag, type, priority, state, "
        "raised_ms, message, updated_ms) SELECT ?, enterprise, installation, tag, type, "
        "priority, ?, raised_ms, message, updated_ms FROM alarms WHERE id = ?"
    )
    with sqlite3.connect(journal_path) as other:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            other.execute(copy, ("second-open", "active_unack", raised.alarm.id))
        other.execute(copy, ("closed-one", "cleared", raised.alarm.id))  # closed: allowed


def test_unknown_alarms_and_refused_acknowledgements(
    journal: Journal, make_condition: MakeCondition
) -> None:
    for call in (
        lambda: journal.get("01NOPE"),
        lambda: journal.acknowledge("01NOPE", "", T0),
        lambda: journal.transitions("01NOPE"),
        lambda: journal.notifications("01NOPE"),
    ):
        with pytest.raises(AlarmNotFound, match="01NOPE"):
            call()
    raised = journal.apply(make_condition(), T0)
    assert raised is not None
    journal.acknowledge(raised.alarm.id, "", T0 + 1)
    with pytest.raises(JournalError, match="already acknowledged") as refused:
        journal.acknowledge(raised.alarm.id, "", T0 + 2)
    assert not isinstance(refused.value, AlarmNotFound)
    journal.apply(make_condition(active=False), T0 + 3)
    with pytest.raises(JournalError, match="is closed"):
        journal.acknowledge(raised.alarm.id, "", T0 + 4)
    assert len(journal.transitions(raised.alarm.id)) == 3  # refusals record nothing


def test_list_alarms_filters(journal: Journal, make_condition: MakeCondition) -> None:
    old = journal.apply(make_condition(tag="A", ts_ms=T0), T0)
    closed = journal.apply(make_condition(tag="B", ts_ms=T0 + 10), T0 + 10)
    new = journal.apply(make_condition(tag="C", enterprise="E002", ts_ms=T0 + 20), T0 + 20)
    assert old is not None
    assert closed is not None
    assert new is not None
    journal.acknowledge(closed.alarm.id, "", T0 + 30)
    journal.apply(make_condition(tag="B", active=False, ts_ms=T0 + 40), T0 + 40)

    def tags(**filters: object) -> list[str]:
        return [a.tag for a in journal.list_alarms(**filters)]  # type: ignore[arg-type]

    assert tags() == ["C", "B", "A"]  # newest raised first
    assert tags(active=True) == ["C", "A"]
    assert tags(active=False) == ["B"]
    assert tags(enterprise="E001") == ["B", "A"]
    assert tags(since_ms=T0 + 10) == ["C", "B"]
    assert tags(limit=1) == ["C"]
    assert tags(active=True, enterprise="E001", since_ms=T0) == ["A"]
    with pytest.raises(ValueError, match="limit"):
        journal.list_alarms(limit=0)


def test_a_closed_journal_says_so(journal_path: Path) -> None:
    journal = Journal(journal_path, ["webhook"])
    with pytest.raises(JournalError, match="not open"):
        journal.open_count()
    with pytest.raises(ValueError, match="unique"):
        Journal(journal_path, ["webhook", "webhook"])


def test_journal_pragmas(journal: Journal, journal_path: Path) -> None:
    assert journal_path.exists()
    assert journal._db().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(journal_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(("durable", "synchronous"), [(True, 2), (False, 0)])
def test_a_scratch_journal_skips_the_fsync_a_real_one_makes(
    tmp_path: Path, durable: bool, synchronous: int
) -> None:
    with Journal(tmp_path / "journal.db", [], durable=durable) as journal:
        assert journal._db().execute("PRAGMA synchronous").fetchone()[0] == synchronous


def test_apply_all_records_the_others_when_one_condition_is_refused(
    journal: Journal, journal_path: Path, make_condition: MakeCondition
) -> None:
    refuser = sqlite3.connect(journal_path)
    refuser.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON alarms WHEN NEW.tag = 'BAD' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    refuser.commit()
    refuser.close()
    events, refused = journal.apply_all(
        [make_condition(tag="A"), make_condition(tag="BAD"), make_condition(tag="B")], T0
    )
    assert [(e.alarm.tag, e.kind, e.seq) for e in events] == [
        ("A", "raised", 1),
        ("B", "raised", 1),
    ]
    assert len(refused) == 1
    assert "BAD" in str(refused[0])
    assert sorted(a.tag for a in journal.list_alarms()) == ["A", "B"]
    for event in events:  # each event with its transition and outbox rows
        assert [t["kind"] for t in journal.transitions(event.alarm.id)] == ["raised"]
        assert [n["channel"] for n in journal.notifications(event.alarm.id)] == ["webhook", "mqtt"]
    assert journal.pending_count() == 4


def test_details_and_a_condition_s_priority_reach_the_alarm_and_its_json(
    journal: Journal, make_condition: MakeCondition
) -> None:
    details = {"model": "MH02.normal", "contributions": [{"tag": "R201_PT", "spe": 4.2}]}
    raised = journal.apply(
        dataclasses.replace(
            make_condition(type=AlarmType.ANOMALY, tag="MH02.normal"),
            details=details,
            priority=Priority.HIGH,
        ),
        T0,
    )
    assert raised is not None
    assert (raised.alarm.priority, raised.alarm.details) == (Priority.HIGH, details)
    assert orjson.loads(raised.alarm.model_dump_json())["details"] == details
    assert journal.get(raised.alarm.id).details == details
    # the clear's own details do not replace the raise's (the why of the alarm)
    cleared = journal.apply(
        dataclasses.replace(
            make_condition(type=AlarmType.ANOMALY, tag="MH02.normal", active=False),
            details={"model": "MH02.normal", "contributions": []},
        ),
        T0 + 1000,
    )
    assert cleared is not None
    assert cleared.alarm.details == details
    # an alarm without details reads as it always has: no details key at all
    plain = journal.apply(make_condition(tag="TK101_LT"), T0)
    assert plain is not None
    assert "details" not in orjson.loads(plain.alarm.model_dump_json())
    assert plain.alarm.priority is Priority.CRITICAL  # HH's, from the type
    # and the published schema (OpenAPI) still describes every field, details too
    schema = type(plain.alarm).model_json_schema(mode="serialization")
    assert list(schema["properties"])[-2:] == ["shelved_until", "details"]


def test_a_journal_from_before_details_gets_the_column(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    path = tmp_path / "old.db"
    with Journal(path, []) as journal:
        event = journal.apply(make_condition(), T0)
        assert event is not None
    old = sqlite3.connect(path)
    old.execute("ALTER TABLE alarms DROP COLUMN details")  # as an older release made it
    old.commit()
    old.close()
    with Journal(path, []) as journal:
        assert journal.get(event.alarm.id).details is None
        details = {"x": 1}
        again = journal.apply(dataclasses.replace(make_condition(tag="OTHER"), details=details), T0)
        assert again is not None
        assert journal.get(again.alarm.id).details == details


# --- a full disk -----------------------------------------------------------------


def test_a_commit_that_fails_on_a_full_disk_rolls_back_and_the_journal_recovers(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    """A full disk fails at COMMIT (WAL pages are written then). Before, the failed
    COMMIT left the connection inside its transaction, and every later write failed
    with "cannot start a transaction within a transaction" until a restart."""
    with small_tmpfs(tmp_path / "disk", 4096) as disk, Journal(disk / "j.db", ["mqtt"]) as journal:
        raised = journal.apply(make_condition(), T0)
        assert raised is not None
        filler = DiskFiller(disk)
        filler.fill()
        # big messages: the transaction needs pages the disk no longer has
        conditions = [make_condition(tag=f"T{n}", message="x" * 1000) for n in range(200)]
        with pytest.raises(JournalUnavailable, match="full"):
            journal.apply_all(conditions, T0 + 1)
        with pytest.raises(JournalUnavailable):
            journal.acknowledge(raised.alarm.id, "on a full disk", T0 + 2)
        assert journal.open_count() == 1  # nothing of the failed transactions was kept
        filler.free()
        events, refused = journal.apply_all(conditions, T0 + 3)
        assert (len(events), refused) == (200, [])
        acked = journal.acknowledge(raised.alarm.id, "space is back", T0 + 4)
        assert acked.alarm.state is AlarmState.ACTIVE_ACK
        assert journal.open_count() == 201


def test_a_refused_transition_is_a_journal_error_not_unavailable(
    journal: Journal, make_condition: MakeCondition
) -> None:
    raised = journal.apply(make_condition(), T0)
    assert raised is not None
    journal.acknowledge(raised.alarm.id, "", T0 + 1)
    with pytest.raises(JournalError, match="already acknowledged") as caught:
        journal.acknowledge(raised.alarm.id, "", T0 + 2)
    assert not isinstance(caught.value, JournalUnavailable)


def test_open_alarms_list_by_priority_then_unacknowledged_then_newest(
    journal: Journal, make_condition: MakeCondition
) -> None:
    """An operator's list: a critical HH never sits below fourteen low STALE alarms,
    however much newer they are; within a priority the unacknowledged come first."""
    hh = journal.apply(make_condition(tag="HH1", ts_ms=T0), T0)
    hh_acked = journal.apply(make_condition(tag="HH2", ts_ms=T0 + 1), T0 + 1)
    assert hh is not None
    assert hh_acked is not None
    journal.acknowledge(hh_acked.alarm.id, "", T0 + 2)
    stale = [
        journal.apply(
            make_condition(tag=f"S{n:02d}", type=AlarmType.STALE, value=None, ts_ms=T0 + 10 + n),
            T0 + 10 + n,
        )
        for n in range(14)
    ]
    high = journal.apply(make_condition(tag="H1", type=AlarmType.H, ts_ms=T0 + 100), T0 + 100)
    assert high is not None

    listed = [a.tag for a in journal.list_alarms(active=True)]
    assert listed[:3] == ["HH1", "HH2", "H1"]  # critical (unacknowledged first), then high
    assert listed[3:] == [f"S{n:02d}" for n in reversed(range(14))]  # low, newest first
    assert all(s is not None for s in stale)
    assert [a.tag for a in journal.list_alarms()][:2] == ["H1", "S13"]  # all: newest first


def test_a_condition_older_than_its_alarm_holds_is_a_replay_and_changes_nothing(
    journal: Journal, make_condition: MakeCondition
) -> None:
    """Readings delivered again after a crash raise and clear what the journal already
    holds: neither a second raise nor a clear of the activation that followed."""
    first = journal.apply(make_condition(ts_ms=T0), T0)
    assert first is not None
    journal.apply(make_condition(active=False, ts_ms=T0 + 10), T0 + 10)
    journal.apply(make_condition(value=11.8, ts_ms=T0 + 20), T0 + 20)  # re-raised
    # replayed: the first raise and its clear, then the re-raise itself
    assert journal.apply(make_condition(ts_ms=T0), T0 + 30) is None
    assert journal.apply(make_condition(active=False, ts_ms=T0 + 10), T0 + 30) is None
    assert journal.apply(make_condition(value=11.8, ts_ms=T0 + 20), T0 + 30) is None
    alarm = journal.get(first.alarm.id)
    assert (alarm.state, alarm.value, alarm.raised_at) == (
        AlarmState.ACTIVE_UNACK,
        11.8,
        ms_to_iso(T0 + 20),
    )
    assert [t["kind"] for t in journal.transitions(first.alarm.id)] == [
        "raised",
        "cleared",
        "raised",
    ]
    # closed since: a replayed raise opens no second alarm; a newer one does
    journal.acknowledge(first.alarm.id, "", T0 + 40)
    journal.apply(make_condition(active=False, ts_ms=T0 + 50), T0 + 50)
    assert journal.apply(make_condition(ts_ms=T0 + 20), T0 + 60) is None
    assert len(journal.list_alarms()) == 1
    assert journal.apply(make_condition(ts_ms=T0 + 70), T0 + 70) is not None


def test_a_delivery_mark_is_recorded_and_the_alarms_stay_fsynced(
    journal: Journal, make_condition: MakeCondition
) -> None:
    """Delivery marks commit without an fsync of their own; alarm commits keep theirs."""
    raised = journal.apply(make_condition(), T0)
    assert raised is not None
    item = journal.pending(T0 + 10)[0]
    journal.delivered(item.id, T0 + 10)
    assert item.id not in [i.id for i in journal.pending(T0 + 10)]
    full = 2  # PRAGMA synchronous: 2 = FULL
    assert journal._db().execute("PRAGMA synchronous").fetchone()[0] == full
