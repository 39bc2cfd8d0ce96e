"""The dead-letter table: readings the historian refused for good, kept for an operator.

It lives in the spool's SQLite file (one file to back up, one connection) and is
written by the sink writer when InfluxDB refuses points (a field type conflict, a
point beyond retention: ``ingest.writer``). The newest ``DEAD_LETTERS_KEPT`` are
kept; the console lists them (``GET /api/ingest/dead-letters``).

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
"""
_QUALITIES = {q.value: q for q in Quality}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    at_ms: int
    reading: Reading
    error: str


def add(conn: sqlite3.Connection, readings: Sequence[Reading], error: str, at_ms: int) -> None:
    """Keep these readings with the sink's error, in one transaction."""
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
        conn.execute(
            "DELETE FROM dead_letter WHERE id <= (SELECT max(id) FROM dead_letter) - ?",
            (DEAD_LETTERS_KEPT,),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def newest(conn: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT at_ms, enterprise, gateway, tag, value, ts_ms, quality, error "
        "FROM dead_letter ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        DeadLetter(at, Reading(e, g, t, v, ts, _QUALITIES[q]), err)
        for at, e, g, t, v, ts, q, err in rows
    ]
