"""The notification outbox: one row per (alarm event, notifier channel).

The rows live in the journal's SQLite file and are written inside the journal's
transaction with the transition they announce, so an event is never recorded without
its notifications nor notified without being recorded (the transactional-outbox
pattern). ``AlarmService.run_outbox`` delivers them at least once; a row stays
``pending`` — with its attempts, last error and next attempt time — until a notifier
took it.

These are functions over a connection; the :class:`~alerting.journal.Journal` owns the
connection, the transaction and the public API.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hazwatch.models import AlarmEvent, ms_to_iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id        TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    delivered_ms    INTEGER,
    created_ms      INTEGER NOT NULL,
    FOREIGN KEY (alarm_id, seq) REFERENCES transitions (alarm_id, seq)
);
CREATE INDEX IF NOT EXISTS outbox_due
    ON outbox (channel, next_attempt_ms) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_alarm ON outbox (alarm_id, seq);
"""
"""Needs the journal's ``transitions`` table (the event JSON lives there, once)."""

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification to deliver: an event for one channel."""

    id: int
    channel: str
    event: AlarmEvent
    attempts: int
    """Attempts made so far."""
    next_attempt_ms: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.event.alarm.id}:{self.event.seq}"


def add(
    conn: sqlite3.Connection, alarm_id: str, seq: int, channels: Sequence[str], now_ms: int
) -> None:
    """One pending row per channel for transition ``seq`` of the alarm, due now."""
    conn.executemany(
        "INSERT INTO outbox (alarm_id, seq, channel, next_attempt_ms, created_ms) "
        "VALUES (?, ?, ?, ?, ?)",
        [(alarm_id, seq, channel, now_ms, now_ms) for channel in channels],
    )


def due(conn: sqlite3.Connection, now_ms: int, limit: int, channel: str | None) -> list[OutboxItem]:
    """Pending rows due at ``now_ms`` (optionally of one channel), oldest first."""
    sql = (
        "SELECT o.id, o.channel, o.attempts, o.next_attempt_ms, t.event FROM outbox o "
        "JOIN transitions t ON t.alarm_id = o.alarm_id AND t.seq = o.seq "
        "WHERE o.status = 'pending' AND o.next_attempt_ms <= ?"
    )
    params: list[Any] = [now_ms]
    if channel is not None:
        sql += " AND o.channel = ?"
        params.append(channel)
    sql += " ORDER BY o.id LIMIT ?"
    params.append(limit)
    return [
        OutboxItem(
            id=row["id"],
            channel=row["channel"],
            event=AlarmEvent.model_validate_json(row["event"]),
            attempts=row["attempts"],
            next_attempt_ms=row["next_attempt_ms"],
        )
        for row in conn.execute(sql, params)
    ]


def next_due_ms(conn: sqlite3.Connection, channel: str | None) -> int | None:
    sql = "SELECT min(next_attempt_ms) FROM outbox WHERE status = 'pending'"
    params: tuple[str, ...] = ()
    if channel is not None:
        sql += " AND channel = ?"
        params = (channel,)
    found = conn.execute(sql, params).fetchone()[0]
    return None if found is None else int(found)


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0])


def mark_delivered(conn: sqlite3.Connection, item_id: int, now_ms: int) -> bool:
    """Record a delivery (the last error stays, as history). False: no such pending row."""
    cursor = conn.execute(
        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_ms = ? "
        "WHERE id = ? AND status = 'pending'",
        (now_ms, item_id),
    )
    return cursor.rowcount == 1


def mark_failed(conn: sqlite3.Connection, item_id: int, error: str, next_attempt_ms: int) -> bool:
    """Record a failed attempt and when to try again. False: no such pending row."""
    cursor = conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? "
        "WHERE id = ? AND status = 'pending'",
        (error[:MAX_ERROR_CHARS], next_attempt_ms, item_id),
    )
    return cursor.rowcount == 1


def of_alarm(conn: sqlite3.Connection, alarm_id: str) -> list[dict[str, Any]]:
    """Delivery state per transition and channel, for the console."""
    rows = conn.execute(
        "SELECT seq, channel, status, attempts, last_error, delivered_ms, next_attempt_ms "
        "FROM outbox WHERE alarm_id = ? ORDER BY seq, id",
        (alarm_id,),
    )
    return [
        {
            "seq": row["seq"],
            "channel": row["channel"],
            "status": row["status"],
            "attempts": row["attempts"],
            "last_error": row["last_error"],
            "delivered_at": (
                ms_to_iso(row["delivered_ms"]) if row["delivered_ms"] is not None else None
            ),
            "next_attempt_at": (
                ms_to_iso(row["next_attempt_ms"]) if row["status"] == "pending" else None
            ),
        }
        for row in rows
    ]
