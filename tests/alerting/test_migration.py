"""A journal written by the release before the disposal loop opens, keeps its alarms,
and goes on: its closed alarms are closed, its open ones can be acknowledged, fed
back, escalated; its pending notifications are still delivered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerting.journal import Journal
from alerting.workflow import StepRefused
from hazwatch.models import AlarmState, Disposal
from tests.alerting.conftest import T0, MakeCondition

MAIN_SCHEMA = """
CREATE TABLE alarms (
    id TEXT PRIMARY KEY, enterprise TEXT NOT NULL, installation TEXT NOT NULL,
    tag TEXT NOT NULL, type TEXT NOT NULL, priority TEXT NOT NULL, state TEXT NOT NULL,
    value REAL, limit_value REAL, raised_ms INTEGER NOT NULL, cleared_ms INTEGER,
    message TEXT NOT NULL, updated_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX alarms_one_open
    ON alarms (enterprise, installation, tag, type) WHERE state <> 'cleared';
CREATE INDEX alarms_raised ON alarms (raised_ms);
CREATE INDEX alarms_enterprise_raised ON alarms (enterprise, raised_ms);
CREATE TABLE transitions (
    alarm_id TEXT NOT NULL REFERENCES alarms (id), seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL, from_state TEXT, to_state TEXT NOT NULL, kind TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '', user_name TEXT NOT NULL DEFAULT '', event TEXT NOT NULL,
    PRIMARY KEY (alarm_id, seq)
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id TEXT NOT NULL, seq INTEGER NOT NULL,
    channel TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL, last_error TEXT,
    delivered_ms INTEGER, created_ms INTEGER NOT NULL,
    FOREIGN KEY (alarm_id, seq) REFERENCES transitions (alarm_id, seq)
);
CREATE INDEX outbox_due ON outbox (channel, next_attempt_ms) WHERE status = 'pending';
CREATE INDEX outbox_alarm ON outbox (alarm_id, seq);
"""
"""The schema of main before this change (alerting/journal.py and outbox.py as they were)."""

EVENT = (
    '{{"alarm": {{"id": "{id}", "enterprise": "E001", "installation": "MH01", '
    '"tag": "{tag}", "type": "HH", "priority": "critical", "state": "{state}", '
    '"value": 11.2, "limit": 11.0, "raised_at": "2025-11-22T14:00:00.000Z", '
    '"cleared_at": null, "message": "m"}}, "previous_state": null, "kind": "raised", '
    '"at": "2025-11-22T14:00:00.000Z", "seq": 1}}'
)


def write_main_journal(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(MAIN_SCHEMA)
    for alarm_id, tag, state in [
        ("01OPEN", "TK101_LT", "active_unack"),
        ("01CLOSED", "TK102_LT", "cleared"),
    ]:
        conn.execute(
            "INSERT INTO alarms VALUES (?, 'E001', 'MH01', ?, 'HH', 'critical', ?, 11.2, 11.0, "
            "?, NULL, 'm', ?, 1)",
            (alarm_id, tag, state, T0, T0),
        )
        conn.execute(
            "INSERT INTO transitions VALUES (?, 1, ?, NULL, ?, 'raised', '', '', ?)",
            (alarm_id, T0, state, EVENT.format(id=alarm_id, tag=tag, state=state)),
        )
    conn.execute(
        "INSERT INTO outbox (alarm_id, seq, channel, next_attempt_ms, created_ms) "
        "VALUES ('01OPEN', 1, 'mqtt', ?, ?)",
        (T0, T0),
    )
    conn.commit()
    conn.close()


def test_a_journal_from_main_opens_and_goes_on(
    journal_path: Path, make_condition: MakeCondition
) -> None:
    write_main_journal(journal_path)
    with Journal(journal_path, ["mqtt"]) as journal:
        closed = journal.get("01CLOSED")
        assert (closed.state, closed.disposal) == (AlarmState.CLEARED, Disposal.CLOSED)
        still_open = journal.get("01OPEN")
        assert (still_open.state, still_open.disposal) == (AlarmState.ACTIVE_UNACK, Disposal.NONE)
        [pending] = journal.pending(T0 + 1)
        assert (pending.channel, pending.idempotency_key) == ("mqtt", "01OPEN:1")
        assert journal.open_count() == 1
        # the condition clears and the alarm is acknowledged: closed, as before
        assert journal.apply(make_condition(active=False, value=10.0), T0 + 10) is not None
        acked = journal.acknowledge("01OPEN", "seen", T0 + 20)
        assert (acked.alarm.state, acked.alarm.disposal) == (AlarmState.CLEARED, Disposal.CLOSED)
        with pytest.raises(StepRefused, match="closed"):  # closed before the loop existed
            journal.feedback("01CLOSED", "cause", "measures", T0 + 30)
    with Journal(journal_path, ["mqtt"]) as again:  # a second open adds nothing twice
        assert again.get("01OPEN").state is AlarmState.CLEARED
        assert [t["kind"] for t in again.transitions("01OPEN")] == [
            "raised",
            "cleared",
            "acknowledged",
        ]
