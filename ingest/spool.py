"""The durable spool: validated messages on local disk, before anything is acknowledged.

One SQLite file in WAL mode with ``synchronous=FULL`` (a commit survives a crash
of the process *and* of the machine). One row per MQTT message, so a batch of 500
messages is 500 rows in **one** transaction, one fsync. The MQTT acks go out after
:meth:`Spool.append` returned (REFERENCE.md MQTT 1-3).

A row's body is the message's validated readings **as line protocol**
(:meth:`ingest.lineprotocol.LineEncoder.body`), built once at the edge: the writer
concatenates bodies into requests without touching a reading (the profile of issue
10 found a third of the batch load's CPU in turning rows back into objects and
objects into lines). The row also keeps what a line lacks — the gateway, and the
receive time if some readings took it as theirs — so the detectors can get
``Reading`` objects back after a crash (``LineEncoder.parse``). The spool itself
never looks inside a body.

Two cursors, both ids of the ``message`` table (AUTOINCREMENT: ids only grow, even
after every row was deleted), both persisted in the ``state`` table:

``delivered``
    the newest message whose readings the detectors have seen and whose alarms the
    journal has committed. Moved in memory by :meth:`mark_delivered` (the pipeline
    calls it once the journal's commit is done: ``AlarmService.recorded``), and
    committed *with the next append* (no fsync of its own) or by :meth:`flush`. After
    a crash the messages above it are delivered again at start
    (:meth:`read_undelivered`): some may be seen twice, and the alarm journal ignores
    a condition older than the one its alarm holds — each excursion recorded once.
``written``
    the newest message the sink confirmed (:meth:`confirm`). The writer reads
    above it.

A row is deleted once both cursors passed it.

Bounded: ``max_bytes`` of spooled bodies. An append that goes over deletes the
**oldest** rows first (but not the batch the writer holds), down to 90 % of the
limit, counting unwritten readings in
``metrics.spool_dropped`` (those never reach the historian; the detectors saw them
already, so no alarm is lost). The file does not shrink: SQLite reuses freed pages.

One connection, used from worker threads (``asyncio.to_thread``) one call at a time
under a lock, so the event loop never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Self, TypeVar

import structlog

from hazwatch.errors import ConfigError
from hazwatch.metrics import Metrics
from hazwatch.models import Reading
from hazwatch.worker import connect_durable, run_serialized
from ingest import deadletters
from ingest.deadletters import DeadLetter

__all__ = ["DROP_TO", "FORMAT", "DeadLetter", "Spool", "SpoolBatch", "SpooledMessage"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

DROP_TO = 0.9
"""When full, drop oldest rows until the spool holds this fraction of its limit."""

FORMAT = 2
"""``PRAGMA user_version`` of the file; 1 (stored as 0) spooled orjson rows."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    gateway     TEXT    NOT NULL,
    readings    INTEGER NOT NULL,
    stamped_ms  INTEGER,
    body        BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO state VALUES ('delivered', 0), ('written', 0), ('mqtt_session', 0);
"""


class SpooledMessage(NamedTuple):
    """One validated MQTT message as the spool keeps it."""

    received_ms: int
    gateway: str
    readings: int
    """How many readings (lines) the body holds."""
    stamped_ms: int | None
    """The receive time if some readings took it as their time, else ``None``."""
    body: bytes
    """The readings as line protocol (``LineEncoder.body``)."""


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Consecutive spooled messages, read for the writer or for the detectors."""

    last_id: int
    messages: list[SpooledMessage]
    readings: int


class Spool:
    """``async with Spool(path, max_bytes, metrics) as spool: await spool.append(...)``."""

    def __init__(self, path: Path, max_bytes: int, metrics: Metrics) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._metrics = metrics
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._data = asyncio.Event()
        self.delivered = 0
        """Every message up to this id is judged and its alarms journalled (in memory;
        see the module's docstring)."""
        self._delivered_saved = 0
        self.written = 0
        self._in_flight = 0  # the writer holds the messages up to this id
        self.depth_messages = 0
        self.depth_readings = 0
        self.bytes = 0
        self.full = False
        """The last append had to drop rows; false again once below half the limit."""

    async def __aenter__(self) -> Self:
        await self._run(self._open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self.flush()
            await self._run(self._close)

    # --- the ingest side ---------------------------------------------------------

    async def append(self, messages: Sequence[SpooledMessage]) -> int:
        """Commit messages in one transaction; return the id of the last one."""
        rows = [m for m in messages if m.readings]
        if not rows:
            return 0
        last_id = await self._run(lambda: self._append(rows))
        self._metrics.spooled_messages.inc(len(rows))
        self._metrics.spooled_readings.inc(sum(m.readings for m in rows))
        self._publish_depth()
        self._data.set()
        return last_id

    def mark_delivered(self, last_id: int) -> None:
        """The detectors have seen every message up to ``last_id``, and the journal holds
        what they caused (the cursor is committed later)."""
        self.delivered = max(self.delivered, last_id)

    async def flush(self) -> None:
        """Commit the delivered cursor now, if it moved (shutdown, idle writer)."""
        if self.delivered != self._delivered_saved:
            await self._run(self._save_delivered)

    async def read_undelivered(self, max_readings: int) -> SpoolBatch | None:
        """Messages above the delivered cursor (after a crash), oldest first."""
        return await self._run(lambda: self._read(self.delivered, max_readings))

    # --- the writer side ---------------------------------------------------------

    async def wait_for_data(self, max_wait_s: float) -> None:
        """Return when something was appended, or after ``max_wait_s`` seconds."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that arrives as the event fires, and the writer would never stop.
        try:
            async with asyncio.timeout(max_wait_s):
                await self._data.wait()
        except TimeoutError:
            return
        self._data.clear()

    async def read_unwritten(
        self, max_readings: int, after: int | None = None
    ) -> SpoolBatch | None:
        """The oldest unwritten messages (above ``after``, default the ``written``
        cursor: the writer reads ahead while a write is in flight); they are kept,
        even when the spool is full, until :meth:`confirm`."""
        start = self.written if after is None else max(after, self.written)
        batch = await self._run(lambda: self._read(start, max_readings))
        self._in_flight = batch.last_id if batch is not None else start
        return batch

    async def confirm(self, last_id: int) -> None:
        """The sink stored everything up to ``last_id``: move the cursor, free rows."""
        await self._run(lambda: self._confirm(last_id))
        self._publish_depth()

    async def oldest_unwritten_ms(self) -> int | None:
        """Receive time of the oldest message the sink has not confirmed."""
        return await self._run(self._oldest_unwritten)

    async def dead_letter(
        self,
        readings: Sequence[Reading],
        error: str,
        at_ms: int,
        lines: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Keep readings (and unreadable lines) the sink refused for good
        (:mod:`ingest.deadletters`)."""
        await self._run(lambda: deadletters.add(self._connection(), readings, error, at_ms, lines))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""
        return await self._run(lambda: deadletters.newest(self._connection(), limit))

    async def mqtt_session(self) -> int:
        """The MQTT session this spool's messages came through (``ingest.sessionwatch``)."""
        return await self._run(lambda: self._state("mqtt_session"))

    async def set_mqtt_session(self, marker: int) -> None:
        await self._run(lambda: self._set_state("mqtt_session", marker))

    # --- in worker threads -------------------------------------------------------

    def _state(self, name: str) -> int:
        row = self._connection().execute("SELECT value FROM state WHERE name = ?", (name,))
        found = row.fetchone()
        return 0 if found is None else int(found[0])

    def _set_state(self, name: str, value: int) -> None:
        self._connection().execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (name, value))

    async def _run(self, call: Callable[[], T]) -> T:
        """Run ``call`` in a worker thread, one at a time (:func:`run_serialized`)."""
        return await run_serialized(self._lock, call)

    def _open(self) -> None:
        conn = connect_durable(self._path)
        try:
            _check_format(conn, self._path)
            conn.executescript(_SCHEMA + deadletters.SCHEMA)
            conn.execute(f"PRAGMA user_version={FORMAT}")
            state = dict(conn.execute("SELECT name, value FROM state").fetchall())
            self.delivered = self._delivered_saved = int(state["delivered"])
            self.written = int(state["written"])
            self.depth_messages, self.depth_readings = conn.execute(
                "SELECT count(*), coalesce(sum(readings), 0) FROM message WHERE id > ?",
                (self.written,),
            ).fetchone()
            (self.bytes,) = conn.execute(
                "SELECT coalesce(sum(length(body)), 0) FROM message"
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._publish_depth()
        log.info(
            "spool_open",
            path=str(self._path),
            unwritten_messages=self.depth_messages,
            undelivered_from=self.delivered,
        )

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("Spool is not open: use `async with spool:`")
        return self._conn

    def _append(self, rows: list[SpooledMessage]) -> int:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO message (received_ms, gateway, readings, stamped_ms, body) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            (last_id,) = conn.execute("SELECT last_insert_rowid()").fetchone()
            delivered = self.delivered
            if delivered != self._delivered_saved:
                conn.execute("UPDATE state SET value = ? WHERE name = 'delivered'", (delivered,))
            added = sum(len(m.body) for m in rows)
            dropped = self._drop_oldest(conn, self.bytes + added)
            freed = self._free(conn, delivered)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._delivered_saved = delivered
        self.bytes += added - dropped[0] - freed
        self.depth_messages += len(rows) - dropped[1]
        self.depth_readings += sum(m.readings for m in rows) - dropped[2]
        if dropped[2]:
            self._metrics.spool_dropped.inc(dropped[2])
            log.warning(
                "spool_full_dropped_oldest",
                readings=dropped[2],
                max_mb=round(self._max_bytes / 2**20, 1),
            )
        self._update_full()
        return int(last_id)

    def _drop_oldest(self, conn: sqlite3.Connection, held: int) -> tuple[int, int, int]:
        """Delete the oldest rows until under the limit: (bytes, unwritten messages, readings).

        Rows the writer holds (read, not yet confirmed) are kept: it will write them,
        so they are not lost, and deleting them would count them as dropped.
        """
        if held <= self._max_bytes:
            return (0, 0, 0)
        self.full = True
        freed = messages = readings = 0
        last = 0
        target = held - self._max_bytes * DROP_TO
        keep_from, keep_to = self.written, max(self.written, self._in_flight)
        cursor = conn.execute("SELECT id, readings, length(body) FROM message ORDER BY id")
        for row_id, n, size in cursor:
            if keep_from < row_id <= keep_to:
                continue
            last = row_id
            freed += size
            if row_id > self.written:
                messages += 1
                readings += n
            if freed >= target:
                break
        cursor.close()
        conn.execute("DELETE FROM message WHERE id <= ?", (min(last, keep_from),))
        conn.execute("DELETE FROM message WHERE id > ? AND id <= ?", (keep_to, last))
        return (freed, messages, readings)

    def _free(self, conn: sqlite3.Connection, delivered: int) -> int:
        """Delete rows both cursors passed; the bytes freed."""
        upto = min(self.written, delivered)
        (freed,) = conn.execute(
            "SELECT coalesce(sum(length(body)), 0) FROM message WHERE id <= ?", (upto,)
        ).fetchone()
        if freed:
            conn.execute("DELETE FROM message WHERE id <= ?", (upto,))
        return int(freed)

    def _save_delivered(self) -> None:
        conn = self._connection()
        delivered = self.delivered
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE state SET value = ? WHERE name = 'delivered'", (delivered,))
            freed = self._free(conn, delivered)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._delivered_saved = delivered
        self.bytes -= freed
        self._update_full()

    def _read(self, after_id: int, max_readings: int) -> SpoolBatch | None:
        cursor = self._connection().execute(
            "SELECT id, received_ms, gateway, readings, stamped_ms, body FROM message "
            "WHERE id > ? ORDER BY id",
            (after_id,),
        )
        messages: list[SpooledMessage] = []
        last_id = readings = 0
        for row_id, received_ms, gateway, n, stamped_ms, body in cursor:
            if messages and readings + n > max_readings:
                break
            messages.append(SpooledMessage(received_ms, gateway, n, stamped_ms, body))
            readings += n
            last_id = row_id
        cursor.close()
        return SpoolBatch(last_id, messages, readings) if messages else None

    def _confirm(self, last_id: int) -> None:
        if last_id <= self.written:
            return
        conn = self._connection()
        # No fsync of its own: losing this commit to a power cut only means writing
        # those readings again (idempotent); the next append's FULL commit syncs it.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        written_before = self.written
        try:
            messages, readings = conn.execute(
                "SELECT count(*), coalesce(sum(readings), 0) FROM message WHERE id > ? AND id <= ?",
                (self.written, last_id),
            ).fetchone()
            conn.execute("UPDATE state SET value = ? WHERE name = 'written'", (last_id,))
            self.written = last_id  # _free deletes up to it
            freed = self._free(conn, self._delivered_saved)
            conn.execute("COMMIT")
        except BaseException:
            self.written = written_before  # the COMMIT too may fail (a full disk)
            _rollback(conn)
            raise
        finally:
            conn.execute("PRAGMA synchronous=FULL")
        self.depth_messages -= messages
        self.depth_readings -= readings
        self.bytes -= freed
        self._update_full()

    def _update_full(self) -> None:
        if self.full and self.bytes < self._max_bytes / 2:
            self.full = False

    def _oldest_unwritten(self) -> int | None:
        row = (
            self._connection()
            .execute(
                "SELECT received_ms FROM message WHERE id > ? ORDER BY id LIMIT 1", (self.written,)
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    def _publish_depth(self) -> None:
        self._metrics.spool_depth_messages.set(self.depth_messages)
        self._metrics.spool_depth_readings.set(self.depth_readings)
        self._metrics.spool_bytes.set(self.bytes)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what failed — unless SQLite did already (a full disk at COMMIT rolls
    back by itself: a second ROLLBACK would raise and hide the real error)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _check_format(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a spool file of another format rather than misread it."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == FORMAT:
        return
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'message'").fetchone()
    if not exists:
        return
    (pending,) = conn.execute("SELECT count(*) FROM message").fetchone()
    if version == 0 and not pending:  # an empty spool of format 1: start it anew
        conn.execute("DROP TABLE message")
        return
    raise ConfigError(
        f"{path}: expected a spool of format {FORMAT}, got format {version or 1} holding "
        f"{pending} messages: let the hazwatch version that wrote it drain it first"
    )
