"""Suppressions (ISA-18.2 out of service): a point or an installation in maintenance.

While a suppression covers a point, its alarm activations are journalled in state
``suppressed`` and nobody is told (``alerting/lifecycle.py``). A suppression has a
reason, who set it and an end time; it ends then (or when removed), and the alarms it
held whose condition is still active are annunciated (``unsuppressed``).

Functions over the journal's connection, like ``alerting/outbox.py``; the journal
owns the transaction and keeps the active ones in memory (there are few), so the
condition path does not query for them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

from hazwatch.models import Condition, ms_to_iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    enterprise   TEXT NOT NULL,
    installation TEXT NOT NULL DEFAULT '',
    tag          TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    ended_ms     INTEGER
);
CREATE INDEX IF NOT EXISTS suppressions_open ON suppressions (end_ms) WHERE ended_ms IS NULL;
"""


@dataclass(frozen=True, slots=True)
class Suppression:
    id: int
    enterprise: str
    installation: str
    """'' when the suppression names a point."""
    tag: str
    """'' when the suppression covers a whole installation."""
    reason: str
    user: str
    start_ms: int
    end_ms: int
    ended_ms: int | None = None

    def covers(self, enterprise: str, installation: str, tag: str) -> bool:
        if enterprise != self.enterprise:
            return False
        return tag == self.tag if self.tag else installation == self.installation

    def covers_condition(self, condition: Condition) -> bool:
        return self.covers(condition.enterprise, condition.installation, condition.tag)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "enterprise": self.enterprise,
            "installation": self.installation or None,
            "tag": self.tag or None,
            "reason": self.reason,
            "user": self.user,
            "start": ms_to_iso(self.start_ms),
            "end": ms_to_iso(self.end_ms),
            "ended": ms_to_iso(self.ended_ms) if self.ended_ms is not None else None,
        }


_COLUMNS = "id, enterprise, installation, tag, reason, user_name, start_ms, end_ms, ended_ms"


def _row(row: sqlite3.Row) -> Suppression:
    return Suppression(
        id=row["id"],
        enterprise=row["enterprise"],
        installation=row["installation"],
        tag=row["tag"],
        reason=row["reason"],
        user=row["user_name"],
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        ended_ms=row["ended_ms"],
    )


def add(
    conn: sqlite3.Connection,
    *,
    enterprise: str,
    installation: str,
    tag: str,
    reason: str,
    user: str,
    start_ms: int,
    end_ms: int,
) -> Suppression:
    cursor = conn.execute(
        "INSERT INTO suppressions (enterprise, installation, tag, reason, user_name, start_ms, "
        "end_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (enterprise, installation, tag, reason, user, start_ms, end_ms),
    )
    assert cursor.lastrowid is not None
    return Suppression(
        cursor.lastrowid, enterprise, installation, tag, reason, user, start_ms, end_ms
    )


def active(conn: sqlite3.Connection) -> list[Suppression]:
    """Suppressions not yet ended (their end may have passed: :func:`end` them)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM suppressions WHERE ended_ms IS NULL ORDER BY id"  # noqa: S608
    )
    return [_row(r) for r in rows]


def listed(
    conn: sqlite3.Connection,
    limit: int,
    *,
    ended: bool,
    enterprises: Collection[str] | None = None,
) -> list[Suppression]:
    where = [] if ended else ["ended_ms IS NULL"]
    params: list[object] = []
    if enterprises is not None:
        where.append("enterprise IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(sorted(enterprises)))
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM suppressions {clause}ORDER BY id DESC LIMIT ?",  # noqa: S608
        (*params, limit),
    )
    return [_row(r) for r in rows]


def get(conn: sqlite3.Connection, suppression_id: int) -> Suppression | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM suppressions WHERE id = ?",  # noqa: S608
        (suppression_id,),
    ).fetchone()
    return None if row is None else _row(row)


def end(conn: sqlite3.Connection, suppression_id: int, now_ms: int) -> bool:
    cursor = conn.execute(
        "UPDATE suppressions SET ended_ms = ? WHERE id = ? AND ended_ms IS NULL",
        (now_ms, suppression_id),
    )
    return cursor.rowcount == 1
