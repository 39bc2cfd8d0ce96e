"""An uplink's durable queue: what waits to go upstream, in order, on local disk.

The ingest's spool forgets a message once storage and the detectors have it, so an
uplink cannot read the spool later; a day of full-rate readings would be far too
much to keep anyway. Each uplink therefore keeps a queue of its own: the readings
its sampler chose (already thinned) and the alarm changes it copied from the alarm
journal. One SQLite file per uplink, WAL, ``synchronous=FULL`` on appends.

Tables::

    record     id (AUTOINCREMENT: the uplink's own sequence, never reused), kind
               ('reading' or 'alarm'), enterprise, queued_ms; a reading's gateway,
               tag, value, quality, ts_ms; an alarm change's event JSON
    forwarded  per point, the last reading queued: the sampler's state, written in
               the same transaction as the records, restored at start
    state      alarm_cursor (the journal position copied up to), counters, and the
               last success and failure (for ``hazwatch uplink status``)

A record is deleted once the platform confirmed it: the rows left *are* the cursor.
A confirmation that a crash loses means sending again — at-least-once upstream,
with the record's ``seq`` (its id) for the receiver to deduplicate on.

Bounded: ``max_records``. An append that goes over deletes the **oldest readings**
first (never an alarm change, nor a record being sent), down to 90 % of the limit,
counted in ``dropped``; ``full`` stays true until the queue is below half.

One connection, used from worker threads one call at a time
(:func:`hazwatch.worker.run_serialized`), so the event loop never waits for an fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import structlog

from hazwatch.models import Quality, Reading
from hazwatch.worker import connect_durable, run_serialized

log = structlog.get_logger(__name__)

T = TypeVar("T")
DROP_TO = 0.9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    enterprise  TEXT    NOT NULL,
    queued_ms   INTEGER NOT NULL,
    gateway     TEXT,
    tag         TEXT,
    value       REAL,
    quality     TEXT,
    ts_ms       INTEGER,
    event       TEXT
);
CREATE INDEX IF NOT EXISTS record_kind ON record (kind, id);
CREATE TABLE IF NOT EXISTS forwarded (
    enterprise TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    gateway    TEXT    NOT NULL,
    value      REAL    NOT NULL,
    quality    TEXT    NOT NULL,
    ts_ms      INTEGER NOT NULL,
    PRIMARY KEY (enterprise, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    name  TEXT PRIMARY KEY,
    value
);
"""

Kind = Literal["reading", "alarm"]


@dataclass(frozen=True, slots=True)
class QueuedRecord:
    """One record waiting to go upstream. ``seq`` is its id in the queue."""

    seq: int
    kind: Kind
    enterprise: str
    queued_ms: int
    reading: Reading | None = None
    event: str | None = None
    """An alarm change: the event JSON exactly as the journal recorded it."""


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """What ``hazwatch uplink status`` and the metrics show."""

    readings: int
    alarms: int
    oldest_queued_ms: int | None
    alarm_cursor: int | None
    sent: int
    dropped: int
    last_ok_ms: int | None
    last_error: str | None
    last_error_ms: int | None
    failing_since_ms: int | None


class UplinkQueue:
    """``async with UplinkQueue(path, max_records) as queue: ...``"""

    def __init__(self, path: Path, max_records: int) -> None:
        self.path = path
        self._max = max_records
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self.depth = {"reading": 0, "alarm": 0}
        self.alarm_cursor: int | None = None
        """Journal position of the last alarm change copied (``None``: never started)."""
        self.full = False
        self.dropped = 0
        self.sent = 0
        self._in_flight = (0, 0)

    async def __aenter__(self) -> Self:
        await self._run(self._open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._run(self._close)

    # --- appends (the ingest's hand-over, the alarm copier) --------------------------

    async def append_readings(self, readings: Sequence[Reading], queued_ms: int) -> int:
        """Queue readings and remember them as their points' last forwarded, in one
        transaction; the number of older readings dropped to make room."""
        return await self._run(lambda: self._append_readings(readings, queued_ms))

    async def append_alarms(
        self, events: Sequence[tuple[str, str]], cursor: int, queued_ms: int
    ) -> None:
        """Queue alarm changes ``(enterprise, event JSON)`` and move the alarm cursor
        to ``cursor`` in one transaction."""
        await self._run(lambda: self._append_alarms(events, cursor, queued_ms))

    async def forwarded(self) -> list[Reading]:
        """The last reading queued per point (the sampler's state)."""
        return await self._run(self._forwarded)

    # --- the sender ------------------------------------------------------------------

    async def next_batch(self, limit: int) -> list[QueuedRecord]:
        """The oldest waiting records: alarm changes first, then readings."""
        batch = await self._run(lambda: self._next(limit))
        self._in_flight = (batch[0].seq, batch[-1].seq) if batch else (0, 0)
        return batch

    async def confirm(self, seqs: Sequence[int], now_ms: int) -> None:
        """The platform took these records: forget them."""
        await self._run(lambda: self._confirm(seqs, now_ms))

    async def note_failure(self, error: str, now_ms: int) -> None:
        await self._run(lambda: self._note_failure(error, now_ms))

    async def oldest_queued_ms(self) -> int | None:
        """When the oldest waiting record was queued (ids grow with time)."""
        return await self._run(self._oldest)

    async def status(self) -> QueueStatus:
        return await self._run(lambda: read_status(self._connection()))

    # --- in worker threads -----------------------------------------------------------

    async def _run(self, call: Callable[[], T]) -> T:
        return await run_serialized(self._lock, call)

    def _open(self) -> None:
        conn = connect_durable(self.path)
        try:
            conn.executescript(_SCHEMA)
            for kind, count in conn.execute("SELECT kind, count(*) FROM record GROUP BY kind"):
                self.depth[kind] = int(count)
            state = dict(conn.execute("SELECT name, value FROM state").fetchall())
        except BaseException:
            conn.close()
            raise
        cursor = state.get("alarm_cursor")
        self.alarm_cursor = None if cursor is None else int(cursor)
        self.dropped = int(state.get("dropped", 0))
        self.sent = int(state.get("sent", 0))
        self._conn = conn
        self._update_full()
        log.info("uplink_queue_open", path=str(self.path), **self.depth)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("UplinkQueue is not open: use `async with queue:`")
        return self._conn

    def _append_readings(self, readings: Sequence[Reading], queued_ms: int) -> int:
        conn = self._connection()
        last: dict[tuple[str, str], Reading] = {}
        for r in readings:
            last[r.enterprise, r.tag] = r
        with _transaction(conn):
            conn.executemany(
                "INSERT INTO record (kind, enterprise, queued_ms, gateway, tag, value, quality, "
                "ts_ms) VALUES ('reading', ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.enterprise, queued_ms, r.gateway, r.tag, r.value, r.quality.value, r.ts_ms)
                    for r in readings
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO forwarded VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.enterprise, r.tag, r.gateway, r.value, r.quality.value, r.ts_ms)
                    for r in last.values()
                ],
            )
            dropped = self._drop_oldest(conn, len(readings))
        self.depth["reading"] += len(readings) - dropped
        self.dropped += dropped
        self._update_full()
        return dropped

    def _drop_oldest(self, conn: sqlite3.Connection, adding: int) -> int:
        """Delete the oldest readings (not those being sent) until under the limit."""
        held = sum(self.depth.values()) + adding
        if held <= self._max:
            return 0
        self.full = True
        excess = held - int(self._max * DROP_TO)
        low, high = self._in_flight
        cursor = conn.execute(
            "DELETE FROM record WHERE id IN (SELECT id FROM record WHERE kind = 'reading' "
            "AND id NOT BETWEEN ? AND ? ORDER BY id LIMIT ?)",
            (low, high, excess),
        )
        dropped = max(0, cursor.rowcount)
        if dropped:
            conn.execute(
                "INSERT INTO state VALUES ('dropped', ?) ON CONFLICT (name) DO UPDATE "
                "SET value = value + excluded.value",
                (dropped,),
            )
        return dropped

    def _append_alarms(
        self, events: Sequence[tuple[str, str]], cursor: int, queued_ms: int
    ) -> None:
        conn = self._connection()
        with _transaction(conn):
            conn.executemany(
                "INSERT INTO record (kind, enterprise, queued_ms, event) VALUES ('alarm', ?, ?, ?)",
                [(enterprise, queued_ms, event) for enterprise, event in events],
            )
            _set_state(conn, "alarm_cursor", cursor)
        self.depth["alarm"] += len(events)
        self.alarm_cursor = cursor

    def _forwarded(self) -> list[Reading]:
        rows = self._connection().execute(
            "SELECT enterprise, gateway, tag, value, ts_ms, quality FROM forwarded"
        )
        return [Reading(e, g, t, v, ts, Quality(q)) for e, g, t, v, ts, q in rows]

    def _next(self, limit: int) -> list[QueuedRecord]:
        conn = self._connection()
        rows = conn.execute(
            "SELECT id, kind, enterprise, queued_ms, gateway, tag, value, quality, ts_ms, event "
            "FROM record WHERE kind = 'alarm' ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            rows = conn.execute(
                "SELECT id, kind, enterprise, queued_ms, gateway, tag, value, quality, ts_ms, "
                "event FROM record WHERE kind = 'reading' ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [_record(row) for row in rows]

    def _confirm(self, seqs: Sequence[int], now_ms: int) -> None:
        conn = self._connection()
        # No fsync of its own: a confirmation lost to a power cut means sending those
        # records again (at-least-once); the next append's FULL commit syncs it.
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with _transaction(conn):
                removed: dict[str, int] = {}
                for kind, count in conn.execute(
                    f"SELECT kind, count(*) FROM record WHERE id IN ({','.join('?' * len(seqs))}) "  # noqa: S608 - placeholders only
                    "GROUP BY kind",
                    seqs,
                ):
                    removed[kind] = int(count)
                conn.executemany("DELETE FROM record WHERE id = ?", [(s,) for s in seqs])
                sent = sum(removed.values())
                conn.execute(
                    "INSERT INTO state VALUES ('sent', ?) ON CONFLICT (name) DO UPDATE "
                    "SET value = value + excluded.value",
                    (sent,),
                )
                _set_state(conn, "last_ok_ms", now_ms)
                conn.execute("DELETE FROM state WHERE name = 'failing_since_ms'")
        finally:
            conn.execute("PRAGMA synchronous=FULL")
        for kind, count in removed.items():
            self.depth[kind] -= count
        self.sent += sent
        self._update_full()

    def _note_failure(self, error: str, now_ms: int) -> None:
        conn = self._connection()
        with _transaction(conn):
            _set_state(conn, "last_error", error[:1000])
            _set_state(conn, "last_error_ms", now_ms)
            conn.execute("INSERT OR IGNORE INTO state VALUES ('failing_since_ms', ?)", (now_ms,))

    def _oldest(self) -> int | None:
        row = self._connection().execute("SELECT queued_ms FROM record ORDER BY id LIMIT 1")
        found = row.fetchone()
        return None if found is None else int(found[0])

    def _update_full(self) -> None:
        if self.full and sum(self.depth.values()) < self._max / 2:
            self.full = False


class _transaction:  # noqa: N801 - used like a function: `with _transaction(conn):`
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _set_state(conn: sqlite3.Connection, name: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (name, value))


def _record(row: tuple[Any, ...]) -> QueuedRecord:
    seq, kind, enterprise, queued_ms, gateway, tag, value, quality, ts_ms, event = row
    if kind == "alarm":
        return QueuedRecord(int(seq), "alarm", str(enterprise), int(queued_ms), event=str(event))
    reading = Reading(
        str(enterprise), str(gateway), str(tag), float(value), int(ts_ms), Quality(quality)
    )
    return QueuedRecord(int(seq), "reading", str(enterprise), int(queued_ms), reading=reading)


def read_status(conn: sqlite3.Connection) -> QueueStatus:
    """The queue's state from a connection to its file (the service's, or a read-only
    one opened by ``hazwatch uplink status`` while the service runs)."""
    depth = dict(conn.execute("SELECT kind, count(*) FROM record GROUP BY kind").fetchall())
    oldest = conn.execute("SELECT queued_ms FROM record ORDER BY id LIMIT 1").fetchone()
    state = dict(conn.execute("SELECT name, value FROM state").fetchall())

    def number(name: str) -> int | None:
        value = state.get(name)
        return None if value is None else int(value)

    return QueueStatus(
        readings=int(depth.get("reading", 0)),
        alarms=int(depth.get("alarm", 0)),
        oldest_queued_ms=None if oldest is None else int(oldest[0]),
        alarm_cursor=number("alarm_cursor"),
        sent=number("sent") or 0,
        dropped=number("dropped") or 0,
        last_ok_ms=number("last_ok_ms"),
        last_error=state.get("last_error"),
        last_error_ms=number("last_error_ms"),
        failing_since_ms=number("failing_since_ms"),
    )
