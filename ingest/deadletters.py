"""The dead-letter table: readings the historian refused for good, kept for an operator.

It lives in the spool's SQLite file (one file to back up, one connection) and is
written by the sink writer when InfluxDB refuses points (a field type conflict, a
point beyond retention: ``ingest.writer``). A refused line that cannot be read back
as a reading (its point left the registry since it was spooled) is kept as it is, in
``dead_line``. The newest ``DEAD_LETTERS_KEPT`` of each are kept; the console lists
them (``GET /api/ingest/dead-letters``).

Plain functions on a connection: :class:`ingest.spool.Spool` runs them in its
worker thread, under its lock, like everything else on that connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from hazwatch.models import Quality, Reading

DEAD_LETTERS_KEPT = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letter (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    enterprise TEXT    NOT NULL,
    gateway    TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    ts_ms      INTEGER NOT NULL,
    value      REAL    NOT NULL,
    quality    TEXT    NOT NULL,
    error      TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_line (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    gateway    TEXT    NOT NULL,
    line       TEXT    NOT NULL,
    error      TEXT    NOT NULL
);
"""
_QUALITIES = {q.value: q for q in Quality}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    at_ms: int
    reading: Reading | None
    """``None`` for a line that could not be read back (then ``line`` holds it)."""
    error: str
    gateway: str = ""
    line: str = ""
    """The line protocol as spooled, when it could not be read back as a reading (a
    point the registry no longer holds): kept as it is rather than lost."""


def add(
    conn: sqlite3.Connection,
    readings: Sequence[Reading],
    error: str,
    at_ms: int,
    lines: Sequence[tuple[str, str]] = (),
) -> None:
    """Keep these readings — and ``lines`` (gateway, line protocol) that could not be
    read back as readings — with the sink's error, in one transaction."""
    rows = [
        (at_ms, r.enterprise, r.gateway, r.tag, r.ts_ms, float(r.value), r.quality.value, error)
        for r in readings
    ]
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO dead_letter (at_ms, enterprise, gateway, tag, ts_ms, value, "
            "quality, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO dead_line (at_ms, gateway, line, error) VALUES (?, ?, ?, ?)",
            [(at_ms, gateway, line, error) for gateway, line in lines],
        )
        for table in ("dead_letter", "dead_line"):
            conn.execute(
                f"DELETE FROM {table} WHERE id <= (SELECT max(id) FROM {table}) - ?",  # noqa: S608 - two constants
                (DEAD_LETTERS_KEPT,),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def newest(conn: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    """Readings and unreadable lines, newest first."""
    rows = conn.execute(
        "SELECT at_ms, enterprise, gateway, tag, value, ts_ms, quality, error "
        "FROM dead_letter ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    letters = [
        DeadLetter(at, Reading(e, g, t, v, ts, _QUALITIES[q]), err, g)
        for at, e, g, t, v, ts, q, err in rows
    ]
    lines = conn.execute(
        "SELECT at_ms, gateway, line, error FROM dead_line ORDER BY id DESC LIMIT ?", (limit,)
    )
    letters += [DeadLetter(at, None, err, g, line) for at, g, line, err in lines]
    letters.sort(key=lambda d: d.at_ms, reverse=True)  # stable: each table's order kept
    return letters[:limit]
