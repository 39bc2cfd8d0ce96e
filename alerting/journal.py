"""The alarm journal: alarms, their transitions and the notification outbox, in SQLite.

Alarms are records first (DESIGN.md §5): every state change writes the alarm row, one
``transitions`` row (with the event exactly as it will be sent) and one ``outbox`` row
per notifier channel in ONE transaction (``apply_all`` puts the changes handed over
together in one transaction, each in a savepoint: one fsync for all of them). A
crash either keeps all of it — and the outbox delivers it after the restart — or
none of it. SQLite runs in WAL mode with
``synchronous=FULL``: a committed transition survives a power cut.

The API is synchronous, and safe to call from several threads: one lock serialises
the writes (each a transaction on the write connection); reads go to a second
connection under a lock of their own, and see committed transactions only — a read
never waits for a write's fsync (WAL). A commit with
``synchronous=FULL`` waits for an fsync (p90 ~16 ms on a plain disk), so the alarm
service makes its writes in a thread of its own (``AlarmService.submit``), never on
the event loop; the console's reads and acknowledgements are rare and stay there.

Tables::

    alarms       id (ULID), enterprise, installation, tag, type, priority, state, value,
                 limit_value, raised_ms, cleared_ms, message, updated_ms, last_seq
                 -- at most one open (state <> 'cleared') alarm per
                 -- (enterprise, installation, tag, type): a partial unique index
    transitions  alarm_id, seq (1, 2, ... per alarm), at_ms, from_state, to_state, kind,
                 comment, user_name, event (AlarmEvent JSON)
    outbox       one row per (event, channel): see alerting/outbox.py

Times are epoch milliseconds. ``raised_at``/``cleared_at`` come from the condition (the
reading's time); transitions and the outbox use ``now_ms`` (the platform's time).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from ulid import ULID

from alerting import lifecycle, outbox
from alerting.lifecycle import ACTIVE
from alerting.outbox import OutboxItem
from hazwatch.errors import AlarmNotFound, JournalError, JournalUnavailable
from hazwatch.models import Alarm, AlarmEvent, AlarmState, AlarmType, Condition, ms_to_iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    id           TEXT PRIMARY KEY,
    enterprise   TEXT NOT NULL,
    installation TEXT NOT NULL,
    tag          TEXT NOT NULL,
    type         TEXT NOT NULL,
    priority     TEXT NOT NULL,
    state        TEXT NOT NULL,
    value        REAL,
    limit_value  REAL,
    raised_ms    INTEGER NOT NULL,
    cleared_ms   INTEGER,
    message      TEXT NOT NULL,
    updated_ms   INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_open
    ON alarms (enterprise, installation, tag, type) WHERE state <> 'cleared';
CREATE INDEX IF NOT EXISTS alarms_raised ON alarms (raised_ms);
CREATE INDEX IF NOT EXISTS alarms_enterprise_raised ON alarms (enterprise, raised_ms);

CREATE TABLE IF NOT EXISTS transitions (
    alarm_id   TEXT NOT NULL REFERENCES alarms (id),
    seq        INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    user_name  TEXT NOT NULL DEFAULT '',
    event      TEXT NOT NULL,
    PRIMARY KEY (alarm_id, seq)
);

"""

_OPEN = "state <> 'cleared'"
_FIND_OPEN = (
    "SELECT id, state, cleared_ms FROM alarms WHERE enterprise = ? AND installation = ? "  # noqa: S608 - constants only
    f"AND tag = ? AND type = ? AND {_OPEN}"
)
_SELECT_ALARMS = (
    "SELECT id, enterprise, installation, tag, type, priority, state, value, limit_value, "
    "raised_ms, cleared_ms, message, last_seq FROM alarms"
)
_COUNT_OPEN = f"SELECT count(*) FROM alarms WHERE {_OPEN}"  # noqa: S608 - constants only
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate[Journal, _P], _R],
) -> Callable[Concatenate[Journal, _P], _R]:
    """One caller at a time, whichever thread it runs on."""

    def locked(self: Journal, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    locked.__doc__ = method.__doc__
    locked.__name__ = method.__name__
    return locked


def _reading(
    method: Callable[Concatenate[Journal, _P], _R],
) -> Callable[Concatenate[Journal, _P], _R]:
    """One reader at a time on the read connection; never behind a writer's commit."""

    def reading(self: Journal, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._read_lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise JournalUnavailable(f"alarm journal {self.path}: {exc}") from exc

    reading.__doc__ = method.__doc__
    reading.__name__ = method.__name__
    return reading


_ACK_REFUSED = {AlarmState.ACTIVE_ACK: "is already acknowledged", AlarmState.CLEARED: "is closed"}


class Journal:
    """The alarm journal on one SQLite file. ``with Journal(path, channels) as j: ...``

    ``channels`` are the notifier names: each event gets one outbox row per channel.
    ``durable=False`` skips the fsync of every commit (``synchronous=OFF``), for a
    scratch journal that is thrown away after the run (a backtest): 3x faster there.
    """

    def __init__(self, path: Path, channels: Sequence[str], *, durable: bool = True) -> None:
        if len(set(channels)) != len(channels):
            raise ValueError(f"notifier channel names must be unique, got {list(channels)}")
        self.path = path
        self.channels = tuple(channels)
        self._synchronous = "FULL" if durable else "OFF"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.RLock()

    # --- resource --------------------------------------------------------------------

    @_locked
    def open(self) -> None:
        if self._conn is not None:
            raise JournalError(f"journal {self.path} is already open")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # explicit BEGIN/COMMIT; used from the alarm service's thread too (under _lock)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise JournalUnavailable(f"cannot open the alarm journal {self.path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA + outbox.SCHEMA)
            # reads on a connection of their own: WAL readers never wait for a writer,
            # so the outbox and the console do not queue behind a commit's fsync
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            conn.close()
            raise JournalUnavailable(f"{self.path} is not a usable alarm journal: {exc}") from exc
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA query_only=ON")
        reader.execute("PRAGMA busy_timeout=5000")
        self._conn, self._reader = conn, reader

    @_locked
    def close(self) -> None:
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- alarm lifecycle ---------------------------------------------------------------

    @_locked
    def apply(self, condition: Condition, now_ms: int) -> AlarmEvent | None:
        """Record a detector's condition; return the event, or ``None`` if nothing changed.

        A repeat of the current condition (e.g. after a restart) only refreshes the
        open alarm's value and message.
        """
        with self._transaction() as conn:
            return self._apply(conn, condition, now_ms)

    @_locked
    def apply_all(
        self, conditions: Sequence[Condition], now_ms: int
    ) -> tuple[list[AlarmEvent], list[JournalError]]:
        """Record several conditions in ONE transaction (one fsync, not one each); the
        events, and the conditions refused (each in a savepoint of its own, so one
        refused condition leaves the others recorded). Raises ``JournalUnavailable``
        when the transaction itself fails (disk full, I/O): then nothing of it was
        recorded, and the same call may succeed later."""
        events: list[AlarmEvent] = []
        refused: list[JournalError] = []
        with self._transaction() as conn:
            for condition in conditions:
                conn.execute("SAVEPOINT condition")
                try:
                    event = self._apply(conn, condition, now_ms)
                except (JournalError, sqlite3.IntegrityError) as exc:
                    # This condition is refused (a constraint); a storage error (disk
                    # full, I/O) fails the whole transaction instead: retried as a whole.
                    conn.execute("ROLLBACK TO condition")
                    refused.append(
                        exc
                        if isinstance(exc, JournalError)
                        else JournalError(f"alarm journal {self.path}: {exc}")
                    )
                else:
                    if event is not None:
                        events.append(event)
                conn.execute("RELEASE condition")
        return events, refused

    def _apply(
        self, conn: sqlite3.Connection, condition: Condition, now_ms: int
    ) -> AlarmEvent | None:
        row = conn.execute(
            _FIND_OPEN,
            (condition.enterprise, condition.installation, condition.tag, condition.type),
        ).fetchone()
        previous = AlarmState(row["state"]) if row is not None else None
        step = lifecycle.on_condition(previous, condition.active)
        if step.state is None:
            return None
        if step.new_alarm:
            alarm_id = self._insert_alarm(conn, condition, step.state, now_ms)
            previous = None
        else:
            alarm_id = row["id"]
            cleared_ms: int | None = None  # active again: not cleared
            if step.state not in ACTIVE:
                cleared_ms = condition.ts_ms if previous in ACTIVE else row["cleared_ms"]
            c = condition
            conn.execute(
                "UPDATE alarms SET state = ?, value = ?, limit_value = ?, message = ?, "
                "cleared_ms = ?, updated_ms = ? WHERE id = ?",
                (step.state, c.value, c.limit, c.message, cleared_ms, now_ms, alarm_id),
            )
        if step.kind is None:
            return None
        return self._record(conn, alarm_id, previous, step.kind, now_ms)

    @_locked
    def acknowledge(
        self, alarm_id: str, comment: str, now_ms: int, user: str = "operator"
    ) -> AlarmEvent:
        """An operator acknowledges an alarm. Raises ``AlarmNotFound``, or ``JournalError``
        when the alarm is already acknowledged or closed."""
        with self._transaction() as conn:
            row = conn.execute("SELECT state FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
            if row is None:
                raise AlarmNotFound(alarm_id)
            state = AlarmState(row["state"])
            step = lifecycle.on_acknowledge(state)
            if step is None or step.state is None or step.kind is None:
                why = _ACK_REFUSED.get(state, "cannot be acknowledged")
                raise JournalError(
                    f"alarm {alarm_id} {why} (state {state}); only active_unack and "
                    "cleared_unack alarms can be acknowledged"
                )
            conn.execute(
                "UPDATE alarms SET state = ?, updated_ms = ? WHERE id = ?",
                (step.state, now_ms, alarm_id),
            )
            return self._record(
                conn, alarm_id, state, step.kind, now_ms, comment=comment, user=user
            )

    def _insert_alarm(
        self, conn: sqlite3.Connection, condition: Condition, state: AlarmState, now_ms: int
    ) -> str:
        alarm_id = str(ULID.from_timestamp(now_ms))  # int: milliseconds
        row = {
            **asdict(condition),
            "id": alarm_id,
            "priority": lifecycle.priority_of(condition.type),
            "state": state,
            "now_ms": now_ms,
        }
        try:
            conn.execute(
                "INSERT INTO alarms (id, enterprise, installation, tag, type, priority, state, "
                "value, limit_value, raised_ms, message, updated_ms) VALUES (:id, :enterprise, "
                ":installation, :tag, :type, :priority, :state, :value, :limit, :ts_ms, "
                ":message, :now_ms)",
                row,
            )
        except sqlite3.IntegrityError as exc:
            raise JournalError(
                f"a second open {condition.type} alarm for {condition.enterprise}/"
                f"{condition.tag} was refused: {exc}"
            ) from exc
        return alarm_id

    def _record(
        self,
        conn: sqlite3.Connection,
        alarm_id: str,
        previous: AlarmState | None,
        kind: lifecycle.EventKind,
        now_ms: int,
        *,
        comment: str = "",
        user: str = "",
    ) -> AlarmEvent:
        """Write the transition and its outbox rows (inside the caller's transaction)."""
        conn.execute("UPDATE alarms SET last_seq = last_seq + 1 WHERE id = ?", (alarm_id,))
        row = conn.execute(_SELECT_ALARMS + " WHERE id = ?", (alarm_id,)).fetchone()
        alarm = _alarm(row)
        seq: int = row["last_seq"]
        event = AlarmEvent(
            alarm=alarm, previous_state=previous, kind=kind, at=ms_to_iso(now_ms), seq=seq
        )
        event_json = event.model_dump_json()
        conn.execute(
            "INSERT INTO transitions (alarm_id, seq, at_ms, from_state, to_state, kind, "
            "comment, user_name, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alarm_id, seq, now_ms, previous, alarm.state, kind, comment, user, event_json),
        )
        outbox.add(conn, alarm_id, seq, self.channels, now_ms)
        return event

    # --- reads -----------------------------------------------------------------------

    @_reading
    def get(self, alarm_id: str) -> Alarm:
        row = self._reads().execute(_SELECT_ALARMS + " WHERE id = ?", (alarm_id,)).fetchone()
        if row is None:
            raise AlarmNotFound(alarm_id)
        return _alarm(row)

    @_reading
    def list_alarms(
        self,
        *,
        active: bool | None = None,
        enterprise: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[Alarm]:
        """Alarms, newest raised first. ``active=True``: open (not closed); ``False``:
        closed; ``since_ms``: raised at or after."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        where: list[str] = []
        params: list[Any] = []
        if active is not None:
            where.append(_OPEN if active else f"NOT ({_OPEN})")
        if enterprise is not None:
            where.append("enterprise = ?")
            params.append(enterprise)
        if since_ms is not None:
            where.append("raised_ms >= ?")
            params.append(since_ms)
        sql = _SELECT_ALARMS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_ms DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_alarm(row) for row in self._reads().execute(sql, params)]

    @_reading
    def transitions(self, alarm_id: str) -> list[dict[str, Any]]:
        """The alarm's state changes, oldest first: seq, at, from, to, kind, comment, user."""
        self.get(alarm_id)
        rows = self._reads().execute(
            "SELECT seq, at_ms, from_state, to_state, kind, comment, user_name "
            "FROM transitions WHERE alarm_id = ? ORDER BY seq",
            (alarm_id,),
        )
        return [
            {
                "seq": row["seq"],
                "at": ms_to_iso(row["at_ms"]),
                "from": row["from_state"],
                "to": row["to_state"],
                "kind": row["kind"],
                "comment": row["comment"],
                "user": row["user_name"],
            }
            for row in rows
        ]

    @_reading
    def notifications(self, alarm_id: str) -> list[dict[str, Any]]:
        """Delivery state per transition and channel: seq, channel, status, attempts,
        last_error, delivered_at, next_attempt_at."""
        self.get(alarm_id)
        return outbox.of_alarm(self._reads(), alarm_id)

    @_reading
    def open_count(self) -> int:
        row = self._reads().execute(_COUNT_OPEN).fetchone()
        return int(row[0])

    # --- the change feed (uplinks read it by position) ----------------------------------

    @_reading
    def events_after(self, position: int, limit: int = 1000) -> list[tuple[int, str]]:
        """``(position, event JSON)`` of every transition after ``position``, in the
        order they were committed (one writer: the rowid grows with each commit)."""
        rows = self._reads().execute(
            "SELECT rowid, event FROM transitions WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (position, limit),
        )
        return [(int(row[0]), str(row[1])) for row in rows]

    @_reading
    def events_end(self) -> int:
        """The position of the newest transition (0: none yet)."""
        return int(
            self._reads().execute("SELECT coalesce(max(rowid), 0) FROM transitions").fetchone()[0]
        )

    # --- outbox (alerting/outbox.py) ---------------------------------------------------

    @_reading
    def pending(
        self, now_ms: int, limit: int = 100, channel: str | None = None
    ) -> list[OutboxItem]:
        """Outbox rows due at ``now_ms`` (optionally of one channel), oldest first."""
        return outbox.due(self._reads(), now_ms, limit, channel)

    @_reading
    def next_due_ms(self, channel: str | None = None) -> int | None:
        """When the next pending row (optionally of one channel) is due; ``None``: none."""
        return outbox.next_due_ms(self._reads(), channel)

    @_reading
    def pending_count(self) -> int:
        return outbox.pending_count(self._reads())

    @_locked
    def delivered(self, item_id: int, now_ms: int) -> None:
        with self._transaction() as conn:
            if not outbox.mark_delivered(conn, item_id, now_ms):
                raise JournalError(f"no pending outbox row {item_id}")

    @_locked
    def failed(self, item_id: int, error: str, next_attempt_ms: int) -> None:
        with self._transaction() as conn:
            if not outbox.mark_failed(conn, item_id, error, next_attempt_ms):
                raise JournalError(f"no pending outbox row {item_id}")

    # --- plumbing ----------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalUnavailable(
                f"journal {self.path} is not open: call open() or use it as a context manager"
            )
        return self._conn

    def _reads(self) -> sqlite3.Connection:
        if self._reader is None:
            raise JournalUnavailable(
                f"journal {self.path} is not open: call open() or use it as a context manager"
            )
        return self._reader

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Whatever fails in it — the COMMIT too (a full disk
        fails there: WAL pages are written at commit) — rolls it back, so the
        connection is never left inside a transaction that every later BEGIN would
        trip over. A storage error is ``JournalUnavailable``."""
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"alarm journal {self.path}: {exc}") from exc


def _iso(ms: int | None) -> str | None:
    return None if ms is None else ms_to_iso(ms)


def _alarm(row: sqlite3.Row) -> Alarm:
    return Alarm(
        id=row["id"],
        enterprise=row["enterprise"],
        installation=row["installation"],
        tag=row["tag"],
        type=AlarmType(row["type"]),
        priority=row["priority"],
        state=AlarmState(row["state"]),
        value=row["value"],
        limit=row["limit_value"],
        raised_at=ms_to_iso(row["raised_ms"]),
        cleared_at=_iso(row["cleared_ms"]),
        message=row["message"],
    )
