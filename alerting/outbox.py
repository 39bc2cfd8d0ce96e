"""The notification outbox: one row per (alarm event, channel, recipient).

The rows live in the journal's SQLite file and are written inside the journal's
transaction with the transition they announce, so an event is never recorded without
its notifications nor notified without being recorded (the transactional-outbox
pattern). ``alerting/dispatch.py`` delivers them at least once; a row stays
``pending`` — with its attempts, last error and next attempt time — until a notifier
took it (``delivered``; ``digest`` names the row whose message carried it when several
went as one digest), or until it failed for good (``dead``: a permanent refusal, or
``max_attempts`` failures) — dead rows are listed (``GET /api/notifications/dead``)
and can be queued again.

``recipient`` is empty for a feed (every event to the whole channel), a person's key,
or a group robot's organisation with the people to @mention in ``mentions``
(``alerting/recipients.py``). ``purpose`` is ``event`` (the transition itself) or
``reminder`` (number ``number``, while the alarm is unacknowledged). ``rank`` is the
priority's (0 critical .. 3 low): critical rows are taken first.

These are functions over a connection; the :class:`~alerting.journal.Journal` owns the
connection, the transaction and the public API.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hazwatch.models import AlarmEvent, ms_to_iso

if TYPE_CHECKING:
    from alerting.routing import Delivery

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
CREATE INDEX IF NOT EXISTS outbox_alarm ON outbox (alarm_id, seq);
"""
"""Needs the journal's ``transitions`` table (the event JSON lives there, once)."""

COLUMNS = (
    ("recipient", "TEXT NOT NULL DEFAULT ''"),
    ("mentions", "TEXT NOT NULL DEFAULT ''"),
    ("purpose", "TEXT NOT NULL DEFAULT 'event'"),
    ("number", "INTEGER NOT NULL DEFAULT 0"),
    ("rank", "INTEGER NOT NULL DEFAULT 2"),
    ("enterprise", "TEXT NOT NULL DEFAULT ''"),
    ("digest", "INTEGER"),
)
"""Added to journals written before routing (``ALTER TABLE ... ADD COLUMN``)."""
INDEXES = """
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX IF NOT EXISTS outbox_due_rank
    ON outbox (channel, rank, next_attempt_ms) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox (id) WHERE status = 'dead';
CREATE INDEX IF NOT EXISTS outbox_stream
    ON outbox (channel, recipient, enterprise) WHERE status = 'pending';
"""
RANKS = 4

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification to deliver: an event for one channel (and recipient)."""

    id: int
    channel: str
    event: AlarmEvent
    attempts: int
    """Attempts made so far."""
    next_attempt_ms: int
    recipient: str = ""
    mentions: tuple[str, ...] = ()
    purpose: Literal["event", "reminder"] = "event"
    number: int = 0
    rank: int = 2
    enterprise: str = ""

    @property
    def idempotency_key(self) -> str:
        """``<alarm id>:<seq>`` for a feed (as the webhooks always had it); with the
        reminder's number and the recipient for a message to people."""
        key = f"{self.event.alarm.id}:{self.event.seq}"
        if self.purpose == "reminder":
            key += f":r{self.number}"
        return f"{key}:{self.recipient}" if self.recipient else key


def add(
    conn: sqlite3.Connection,
    alarm_id: str,
    seq: int,
    deliveries: Sequence[Delivery],
    now_ms: int,
    *,
    rank: int = 2,
    enterprise: str = "",
    purpose: str = "event",
    number: int = 0,
) -> None:
    """One row per delivery for transition ``seq`` of the alarm, due now (dead at once
    when the delivery carries an error)."""
    conn.executemany(
        "INSERT INTO outbox (alarm_id, seq, channel, next_attempt_ms, created_ms, recipient, "
        "mentions, purpose, number, rank, enterprise, status, last_error) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                alarm_id,
                seq,
                d.channel,
                now_ms,
                now_ms,
                d.recipient,
                ",".join(d.mentions),
                purpose,
                number,
                rank,
                enterprise,
                "dead" if d.error else "pending",
                d.error or None,
            )
            for d in deliveries
        ],
    )


_SELECT = (
    "SELECT o.id, o.channel, o.attempts, o.next_attempt_ms, o.recipient, o.mentions, o.purpose, "
    "o.number, o.rank, o.enterprise, t.event FROM outbox o "
    "JOIN transitions t ON t.alarm_id = o.alarm_id AND t.seq = o.seq "
)


def _item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        channel=row["channel"],
        event=AlarmEvent.model_validate_json(row["event"]),
        attempts=row["attempts"],
        next_attempt_ms=row["next_attempt_ms"],
        recipient=row["recipient"],
        mentions=tuple(m for m in row["mentions"].split(",") if m),
        purpose=row["purpose"],
        number=row["number"],
        rank=row["rank"],
        enterprise=row["enterprise"],
    )


def due(
    conn: sqlite3.Connection,
    now_ms: int,
    limit: int,
    channel: str | None,
    ranks: Sequence[int] = range(RANKS),
) -> list[OutboxItem]:
    """Pending rows due at ``now_ms`` (optionally of one channel, of some ranks):
    critical first, then by priority; within one, oldest due first."""
    items: list[OutboxItem] = []
    for rank in ranks:
        if len(items) >= limit:
            break
        where = "o.status = 'pending' AND o.next_attempt_ms <= ? AND o.rank = ?"
        params: list[Any] = [now_ms, rank]
        if channel is not None:
            where += " AND o.channel = ?"
            params.append(channel)
        params.append(limit - len(items))
        sql = _SELECT + f"WHERE {where} ORDER BY o.next_attempt_ms, o.id LIMIT ?"
        items.extend(_item(row) for row in conn.execute(sql, params))
    return items


def due_for(
    conn: sqlite3.Connection,
    channel: str,
    recipient: str,
    enterprise: str,
    *,
    now_ms: int,
    limit: int,
    shown: int,
) -> tuple[list[int], list[OutboxItem]]:
    """The pending rows of one recipient and enterprise due at ``now_ms`` (a digest):
    all their ids, and the first ``shown`` of them read in full (a digest lists a few;
    reading a thousand events would hold the loop)."""
    ids = [
        int(row[0])
        for row in conn.execute(
            "SELECT id FROM outbox WHERE status = 'pending' AND channel = ? AND recipient = ? "
            "AND enterprise = ? AND next_attempt_ms <= ? ORDER BY id LIMIT ?",
            (channel, recipient, enterprise, now_ms, limit),
        )
    ]
    first = ids[:shown]
    marks = ",".join("?" * len(first))
    sql = _SELECT + f"WHERE o.id IN ({marks}) ORDER BY o.id"
    return ids, [_item(row) for row in conn.execute(sql, first)] if first else []


def dead(
    conn: sqlite3.Connection, limit: int, enterprises: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Dead rows, newest first, for the console; ``enterprises``: of their alarms only."""
    scope = None if enterprises is None else json.dumps(sorted(enterprises))
    rows = conn.execute(
        "SELECT o.id, o.alarm_id, o.seq, o.channel, o.recipient, o.purpose, o.attempts, "
        "o.last_error, o.created_ms, o.next_attempt_ms FROM outbox o WHERE o.status = 'dead' "
        "AND (?1 IS NULL OR o.alarm_id IN (SELECT id FROM alarms WHERE enterprise IN "
        "(SELECT value FROM json_each(?1)))) ORDER BY o.id DESC LIMIT ?2",
        (scope, limit),
    )
    return [
        {
            "id": row["id"],
            "alarm_id": row["alarm_id"],
            "seq": row["seq"],
            "channel": row["channel"],
            "recipient": row["recipient"],
            "purpose": row["purpose"],
            "attempts": row["attempts"],
            "last_error": row["last_error"],
            "created_at": ms_to_iso(row["created_ms"]),
        }
        for row in rows
    ]


def revive(conn: sqlite3.Connection, item_id: int, now_ms: int, channels: Collection[str]) -> bool:
    """Queue a dead row again (its attempts start afresh). False: no such dead row, or
    one that none of ``channels`` (those configured) can deliver."""
    cursor = conn.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = ? "
        "WHERE id = ? AND status = 'dead' AND channel IN (SELECT value FROM json_each(?))",
        (now_ms, item_id, json.dumps(list(channels))),
    )
    return cursor.rowcount == 1


def orphaned(conn: sqlite3.Connection, channels: Collection[str]) -> dict[str, int]:
    """Pending rows per channel not in ``channels`` (those configured)."""
    rows = conn.execute(
        "SELECT channel, count(*) FROM outbox WHERE status = 'pending' "
        "AND channel NOT IN (SELECT value FROM json_each(?)) GROUP BY channel",
        (json.dumps(list(channels)),),
    )
    return {str(channel): int(n) for channel, n in rows}


def retire(conn: sqlite3.Connection, channels: Collection[str], error: str) -> dict[str, int]:
    """Dead-letter the pending rows of every channel not in ``channels`` (those
    configured): a channel taken out of the configuration — a webhook removed, the
    historian feed after a switch to SQLite storage — would leave them pending for
    ever, counted in ``hazwatch_outbox_pending`` and delivered by nobody. The rows
    retired, per channel."""
    counts = orphaned(conn, channels)
    if counts:
        conn.execute(
            "UPDATE outbox SET status = 'dead', last_error = ? WHERE status = 'pending' "
            "AND channel NOT IN (SELECT value FROM json_each(?))",
            (error[:MAX_ERROR_CHARS], json.dumps(list(channels))),
        )
    return counts


def hold(conn: sqlite3.Connection, item_ids: Sequence[int], until_ms: int) -> None:
    """Let pending rows wait (flood control) without counting an attempt."""
    conn.executemany(
        "UPDATE outbox SET next_attempt_ms = ? WHERE id = ? AND status = 'pending'",
        [(until_ms, i) for i in item_ids],
    )


def next_due_ms(
    conn: sqlite3.Connection, channel: str | None, ranks: Sequence[int] = range(RANKS)
) -> int | None:
    found: list[int] = []
    for rank in ranks:
        sql = "SELECT min(next_attempt_ms) FROM outbox WHERE status = 'pending' AND rank = ?"
        params: tuple[object, ...] = (rank,)
        if channel is not None:
            sql += " AND channel = ?"
            params = (rank, channel)
        value = conn.execute(sql, params).fetchone()[0]
        if value is not None:
            found.append(int(value))
    return min(found) if found else None


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0])


def mark_delivered(
    conn: sqlite3.Connection, item_id: int, now_ms: int, digest: int | None = None
) -> bool:
    """Record a delivery (the last error stays, as history). False: no such pending row."""
    cursor = conn.execute(
        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_ms = ?, "
        "digest = ? WHERE id = ? AND status = 'pending'",
        (now_ms, digest, item_id),
    )
    return cursor.rowcount == 1


def mark_failed(
    conn: sqlite3.Connection,
    item_id: int,
    error: str,
    next_attempt_ms: int,
    *,
    max_attempts: int | None = None,
    permanent: bool = False,
) -> bool:
    """Record a failed attempt and when to try again — or, after a permanent refusal
    or the ``max_attempts``-th failure, that the row is dead. False: no such pending row."""
    cursor = conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ?, "
        "status = CASE WHEN ? OR attempts + 1 >= ? THEN 'dead' ELSE 'pending' END "
        "WHERE id = ? AND status = 'pending'",
        (
            error[:MAX_ERROR_CHARS],
            next_attempt_ms,
            permanent,
            max_attempts if max_attempts is not None else 2**62,
            item_id,
        ),
    )
    return cursor.rowcount == 1


def is_dead(conn: sqlite3.Connection, item_id: int) -> bool:
    row = conn.execute("SELECT status FROM outbox WHERE id = ?", (item_id,)).fetchone()
    return row is not None and row["status"] == "dead"


def of_alarm(conn: sqlite3.Connection, alarm_id: str) -> list[dict[str, Any]]:
    """Delivery state per transition and channel, for the console."""
    rows = conn.execute(
        "SELECT seq, channel, recipient, purpose, status, attempts, last_error, delivered_ms, "
        "next_attempt_ms FROM outbox WHERE alarm_id = ? ORDER BY seq, id",
        (alarm_id,),
    )
    return [
        {
            "seq": row["seq"],
            "channel": row["channel"],
            "recipient": row["recipient"],
            "purpose": row["purpose"],
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
