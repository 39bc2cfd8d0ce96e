"""The alarm journal: alarms, their transitions and the notification outbox, in SQLite.

Alarms are records first (docs/architecture.md#reliability): every state change writes the alarm
row, one ``transitions`` row (with the event exactly as it will be sent) and one
``outbox`` row per notifier channel in ONE transaction (``apply_all`` puts the changes handed over
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
                 limit_value, raised_ms, cleared_ms, message, updated_ms, last_seq,
                 details (JSON, the raise's; added to older journals on open)
                 -- at most one open (state <> 'cleared') alarm per
                 -- (enterprise, installation, tag, type): a partial unique index
                 disposal, feedback_due_ms, feedback_*, verify_*, closed_ms
                 -- the disposal loop (alerting/disposal.py): a cleared alarm may
                 -- await feedback; it is not "open" for the unique index
                 route, unack_ms, escalated, reminders, overdue, shelved_until_ms,
                 timer_ms -- escalation's timers (alerting/escalation.py)
    transitions  alarm_id, seq (1, 2, ... per alarm), at_ms, from_state, to_state, kind,
                 comment, user_name, event (AlarmEvent JSON)
    outbox       one row per (event, channel, recipient): see alerting/outbox.py
    suppressions points and installations in maintenance: see alerting/suppressions.py

A journal written by an earlier release opens as it is: the columns added since are
added (``ALTER TABLE``) with defaults, its closed alarms marked closed and its
unacknowledged ones handed to escalation.

Times are epoch milliseconds. ``raised_at``/``cleared_at`` come from the condition (the
reading's time); transitions and the outbox use ``now_ms`` (the platform's time).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import orjson
from ulid import ULID

from alerting import disposal, escalation, kpis, lifecycle, outbox, suppressions, workflow
from alerting.escalation import Chase
from alerting.lifecycle import UNACKNOWLEDGED
from alerting.outbox import OutboxItem
from alerting.routing import PRIORITY_RANK, QUIET, AlarmPolicy, Broadcast
from alerting.suppressions import Suppression
from hazwatch.alertpolicy import Route
from hazwatch.errors import AlarmNotFound, JournalError, JournalUnavailable
from hazwatch.models import (
    Alarm,
    AlarmEvent,
    AlarmState,
    AlarmType,
    Condition,
    Disposal,
    EventKind,
    Feedback,
    Verification,
    ms_to_iso,
)

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
    last_seq     INTEGER NOT NULL DEFAULT 0,
    details      TEXT
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

_ALARM_COLUMNS = (
    ("disposal", "TEXT NOT NULL DEFAULT 'none'"),
    ("feedback_due_ms", "INTEGER"),
    ("feedback_cause", "TEXT"),
    ("feedback_measures", "TEXT"),
    ("feedback_by", "TEXT"),
    ("feedback_ms", "INTEGER"),
    ("verify_accepted", "INTEGER"),
    ("verify_comment", "TEXT"),
    ("verify_by", "TEXT"),
    ("verify_ms", "INTEGER"),
    ("closed_ms", "INTEGER"),
    ("route", "TEXT NOT NULL DEFAULT ''"),
    ("unack_ms", "INTEGER"),
    ("escalated", "INTEGER NOT NULL DEFAULT 0"),
    ("reminders", "INTEGER NOT NULL DEFAULT 0"),
    ("overdue", "INTEGER NOT NULL DEFAULT 0"),
    ("shelved_until_ms", "INTEGER"),
    ("timer_ms", "INTEGER"),
    ("details", "TEXT"),
    ("condition_ms", "INTEGER"),
)
"""Added with the disposal loop, escalation, ANOMALY's details and the replay guard
(``condition_ms``); journals from before get them by ALTER."""
_INDEXES = """
CREATE INDEX IF NOT EXISTS alarms_timer ON alarms (timer_ms) WHERE timer_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS alarms_disposal ON alarms (disposal) WHERE disposal <> 'closed';
CREATE INDEX IF NOT EXISTS alarms_key ON alarms (enterprise, installation, tag, type);
"""

_OPEN = "state <> 'cleared'"
_IN_ENTERPRISES = "enterprise IN (SELECT value FROM json_each(?))"
"""One parameter (a JSON array) however many enterprises a console caller sees."""
_KEY = "enterprise = :enterprise AND installation = :installation AND tag = :tag AND type = :type"
_FIND_OPEN = (  # one row: the key's newest condition time, and its open alarm if any
    "SELECT o.id, o.state, o.cleared_ms, k.last_ms FROM "  # noqa: S608 - constants only
    f"(SELECT max(condition_ms) AS last_ms FROM alarms WHERE {_KEY}) AS k "
    f"LEFT JOIN alarms AS o ON o.{_KEY.replace(' AND ', ' AND o.')} AND o.{_OPEN}"
)
_SELECT_ALARMS = (
    "SELECT id, enterprise, installation, tag, type, priority, state, value, limit_value, "
    "raised_ms, cleared_ms, message, last_seq, details, disposal, feedback_due_ms, feedback_cause, "
    "feedback_measures, feedback_by, feedback_ms, verify_accepted, verify_comment, verify_by, "
    "verify_ms, closed_ms, escalated, overdue, shelved_until_ms, route, unack_ms, reminders, "
    "timer_ms FROM alarms"
)
_SELECT_CHASE = _SELECT_ALARMS
_COUNT_OPEN = f"SELECT count(*) FROM alarms WHERE {_OPEN}"  # noqa: S608 - constants only
KPI_TRANSITIONS_MAX = 1_000_000
"""Transitions read at most for one KPI period; more is reported as truncated."""
_RANK_SQL = (
    "CASE priority "
    + " ".join(f"WHEN '{p.value}' THEN {rank}" for p, rank in PRIORITY_RANK.items())
    + f" ELSE {len(PRIORITY_RANK)} END"
)
_UNACK_SQL = "state IN (" + ", ".join(f"'{s.value}'" for s in sorted(UNACKNOWLEDGED)) + ")"
OPERATOR_ORDER = f"{_RANK_SQL}, {_UNACK_SQL} DESC, raised_ms DESC, id DESC"
"""How open alarms are listed (ISA-18.2's alarm summary): priority, then
unacknowledged first, then the newest activation first."""
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

    ``channels`` are the notifier names. ``policy`` says which outbox rows each event
    gets, which route an alarm follows and what feedback it owes (default: one row per
    channel for every event, nobody chased — ``alerting/routing.py``).
    ``durable=False`` skips the fsync of every commit (``synchronous=OFF``), for a
    scratch journal that is thrown away after the run (a backtest): 3x faster there.
    """

    def __init__(
        self,
        path: Path,
        channels: Sequence[str],
        *,
        durable: bool = True,
        policy: AlarmPolicy | None = None,
    ) -> None:
        if len(set(channels)) != len(channels):
            raise ValueError(f"notifier channel names must be unique, got {list(channels)}")
        self.path = path
        self.channels = tuple(channels)
        self.policy: AlarmPolicy = policy or Broadcast(channels)
        self._suppressions: list[Suppression] = []
        """Suppressions not yet ended, kept here: the condition path checks them."""
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
            conn.executescript(_SCHEMA + outbox.SCHEMA + suppressions.SCHEMA)
            _migrate(conn)
            conn.executescript(_INDEXES + outbox.INDEXES)
            self._suppressions = suppressions.active(conn)
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
        c = condition
        found = conn.execute(
            _FIND_OPEN,
            {
                "enterprise": c.enterprise,
                "installation": c.installation,
                "tag": c.tag,
                "type": c.type,
            },
        ).fetchone()
        row = found if found["id"] is not None else None
        previous = AlarmState(row["state"]) if row is not None else None
        # Older than the newest condition its alarm (or a closed one before it) recorded:
        # readings delivered again after a crash (their alarms were committed, the
        # spool's cursor not yet), or late. Recording it would raise or clear the same
        # excursion twice; the detectors judge the present, so it changes nothing.
        # Capped at the platform's time: a gateway clock ahead cannot block what follows.
        condition_ms = min(c.ts_ms, now_ms)
        if found["last_ms"] is not None and condition_ms < found["last_ms"]:
            return None
        covered = condition.active and any(
            s.covers_condition(condition) and s.start_ms <= now_ms < s.end_ms
            for s in self._suppressions
        )
        step = lifecycle.on_condition(previous, condition.active, suppressed=covered)
        if step.state is None:
            return None
        if step.new_alarm:
            alarm_id = self._insert_alarm(conn, condition, step.state, now_ms, condition_ms)
            previous = None
        else:
            assert row is not None  # a step on an alarm: lifecycle had one
            alarm_id = row["id"]
            # the condition's own state, whatever the alarm's (a shelved alarm tracks it)
            cleared_ms: int | None = None
            if not c.active:
                cleared_ms = row["cleared_ms"] if row["cleared_ms"] is not None else c.ts_ms
            details = _details_json(c) if c.active else None  # the raise's stay
            # a re-raise (cleared_unack -> active_unack) is a new activation: the alarm
            # shows its time; the earlier ones stay in the transitions
            raised_ms = c.ts_ms if step.kind == "raised" else None
            conn.execute(
                "UPDATE alarms SET state = ?, value = ?, limit_value = ?, message = ?, "
                "cleared_ms = ?, updated_ms = ?, details = coalesce(?, details), "
                "raised_ms = coalesce(?, raised_ms), condition_ms = ? WHERE id = ?",
                (
                    step.state,
                    c.value,
                    c.limit,
                    c.message,
                    cleared_ms,
                    now_ms,
                    details,
                    raised_ms,
                    condition_ms,
                    alarm_id,
                ),
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

    @_locked
    def shelve(
        self, alarm_id: str, until_ms: int, reason: str, now_ms: int, user: str = "operator"
    ) -> AlarmEvent:
        """Shelve an alarm until ``until_ms`` (ISA-18.2): nobody is told or chased
        meanwhile. Raises ``AlarmNotFound``, or ``StepRefused`` naming the state."""
        with self._transaction() as conn:
            return workflow.shelve(
                conn,
                self._record,
                alarm_id=alarm_id,
                until_ms=until_ms,
                reason=reason,
                user=user,
                now_ms=now_ms,
            )

    @_locked
    def unshelve(
        self, alarm_id: str, now_ms: int, user: str = "operator", comment: str = ""
    ) -> AlarmEvent:
        """Take an alarm off the shelf before its time. Raises like :meth:`shelve`."""
        with self._transaction() as conn:
            return workflow.unshelve(
                conn, self._record, alarm_id=alarm_id, user=user, comment=comment, now_ms=now_ms
            )

    @_locked
    def feedback(
        self, alarm_id: str, cause: str, measures: str, now_ms: int, user: str = "enterprise"
    ) -> AlarmEvent:
        """The enterprise's disposal feedback (处置反馈). Raises ``AlarmNotFound``, or
        ``StepRefused`` naming the disposal state."""
        with self._transaction() as conn:
            return workflow.feedback(
                conn,
                self._record,
                alarm_id=alarm_id,
                cause=cause,
                measures=measures,
                user=user,
                now_ms=now_ms,
            )

    @_locked
    def verify(
        self, alarm_id: str, accepted: bool, comment: str, now_ms: int, user: str = "operator"
    ) -> AlarmEvent:
        """Verify the feedback (核查): accepted closes the alarm (销号), rejected asks for
        feedback again with a new deadline. Raises like :meth:`feedback`."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT type, priority FROM alarms WHERE id = ?", (alarm_id,)
            ).fetchone()
            if row is None:
                raise AlarmNotFound(alarm_id)
            due_min = self.policy.feedback_due_min(AlarmType(row["type"]), row["priority"])
            due_ms = None if due_min is None else now_ms + round(due_min * 60_000)
            return workflow.verify(
                conn,
                self._record,
                alarm_id=alarm_id,
                accepted=accepted,
                comment=comment,
                user=user,
                now_ms=now_ms,
                feedback_due_ms=due_ms,
            )

    @_locked
    def follow_up(self, now_ms: int, limit: int = 500) -> tuple[list[AlarmEvent], int]:
        """Do what is due at ``now_ms``: suppressions that ended, expired shelves,
        escalation and overdue tiers, reminders (``alerting/escalation.py``). The events,
        and the reminder rows written. One transaction: a crash repeats none of it."""
        events: list[AlarmEvent] = []
        reminders = 0
        ended = [s for s in self._suppressions if s.end_ms <= now_ms]
        with self._transaction() as conn:
            still = [s for s in self._suppressions if s.end_ms > now_ms]
            for suppression in ended:
                suppressions.end(conn, suppression.id, now_ms)
                events += workflow.release(
                    conn,
                    self._record,
                    ended=suppression,
                    still=still,
                    user=workflow.SYSTEM_USER,
                    now_ms=now_ms,
                )
            rows = conn.execute(
                _SELECT_CHASE + " WHERE timer_ms <= ? ORDER BY timer_ms LIMIT ?", (now_ms, limit)
            ).fetchall()
            for row in rows:
                route = self._route_of(conn, row)
                found, written = workflow.chase(
                    conn,
                    self._record,
                    policy=self.policy,
                    row=row,
                    alarm=_alarm(row),
                    route=route,
                    now_ms=now_ms,
                )
                events += found
                reminders += written
                self._settle(conn, row["id"], now_ms)
                conn.execute(  # a timer that found nothing due must not fire again at once
                    "UPDATE alarms SET timer_ms = NULL WHERE id = ? AND timer_ms <= ?",
                    (row["id"], now_ms),
                )
        self._suppressions = still
        return events, reminders

    @_reading
    def next_timer_ms(self) -> int | None:
        """When :meth:`follow_up` next has something to do; ``None``: nothing waits."""
        found = self._reads().execute("SELECT min(timer_ms) FROM alarms").fetchone()[0]
        ends = [s.end_ms for s in self._suppressions]
        times = [t for t in (found, *ends) if t is not None]
        return min(times) if times else None

    @_locked
    def suppress(
        self,
        *,
        enterprise: str,
        installation: str,
        tag: str,
        reason: str,
        end_ms: int,
        now_ms: int,
        user: str = "operator",
    ) -> Suppression:
        """Suppress a point (``tag``) or an installation until ``end_ms``: activations
        there are journalled as ``suppressed`` and nobody is told."""
        with self._transaction() as conn:
            found = suppressions.add(
                conn,
                enterprise=enterprise,
                installation=installation,
                tag=tag,
                reason=reason,
                user=user,
                start_ms=now_ms,
                end_ms=end_ms,
            )
        self._suppressions = [*self._suppressions, found]
        return found

    @_locked
    def end_suppression(
        self, suppression_id: int, now_ms: int, user: str = "operator"
    ) -> list[AlarmEvent]:
        """End a suppression now. Raises ``KeyError`` for an unknown or ended one."""
        ending = [s for s in self._suppressions if s.id == suppression_id]
        if not ending:
            raise KeyError(suppression_id)
        still = [s for s in self._suppressions if s.id != suppression_id]
        with self._transaction() as conn:
            suppressions.end(conn, suppression_id, now_ms)
            events = workflow.release(
                conn, self._record, ended=ending[0], still=still, user=user, now_ms=now_ms
            )
        self._suppressions = still
        return events

    @_reading
    def suppressions(
        self, *, ended: bool = False, limit: int = 100, enterprises: Collection[str] | None = None
    ) -> list[Suppression]:
        """Newest first; ``ended``: also those that ended; ``enterprises``: only theirs."""
        return suppressions.listed(self._reads(), limit, ended=ended, enterprises=enterprises)

    @_reading
    def suppression(self, suppression_id: int) -> Suppression | None:
        return suppressions.get(self._reads(), suppression_id)

    def _insert_alarm(
        self,
        conn: sqlite3.Connection,
        condition: Condition,
        state: AlarmState,
        now_ms: int,
        condition_ms: int,
    ) -> str:
        alarm_id = str(ULID.from_timestamp(now_ms))  # int: milliseconds
        priority = condition.priority or lifecycle.priority_of(condition.type)
        due_min = self.policy.feedback_due_min(condition.type, priority)
        owes = due_min is not None and state is not AlarmState.SUPPRESSED
        row = {
            **asdict(condition),
            "id": alarm_id,
            "priority": priority,
            "state": state,
            "now_ms": now_ms,
            "disposal": disposal.on_raise(owes),
            "due_ms": now_ms + round(due_min * 60_000) if owes and due_min is not None else None,
            "route": self.policy.route_name(
                condition.enterprise, condition.installation, condition.type, priority
            ),
            "details": _details_json(condition),
            "condition_ms": condition_ms,
        }
        try:
            conn.execute(
                "INSERT INTO alarms (id, enterprise, installation, tag, type, priority, state, "
                "value, limit_value, raised_ms, message, updated_ms, details, disposal, "
                "feedback_due_ms, route, condition_ms) VALUES (:id, :enterprise, :installation, "
                ":tag, :type, :priority, :state, :value, :limit, :ts_ms, :message, :now_ms, "
                ":details, :disposal, :due_ms, :route, :condition_ms)",
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
        kind: EventKind,
        now_ms: int,
        *,
        comment: str = "",
        user: str = "",
        roles: Sequence[str] | None = None,
    ) -> AlarmEvent:
        """Write the transition and its outbox rows (inside the caller's transaction),
        after settling the alarm's disposal and timers for its new state. ``roles``: the
        people of an escalation tier (instead of the event's own)."""
        self._settle(conn, alarm_id, now_ms)
        conn.execute("UPDATE alarms SET last_seq = last_seq + 1 WHERE id = ?", (alarm_id,))
        row = conn.execute(_SELECT_ALARMS + " WHERE id = ?", (alarm_id,)).fetchone()
        alarm = _alarm(row)
        seq: int = row["last_seq"]
        event = AlarmEvent(
            alarm=alarm,
            previous_state=previous,
            kind=kind,
            at=ms_to_iso(now_ms),
            seq=seq,
            user=user,
            comment=comment,
        )
        event_json = event.model_dump_json()
        conn.execute(
            "INSERT INTO transitions (alarm_id, seq, at_ms, from_state, to_state, kind, "
            "comment, user_name, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alarm_id, seq, now_ms, previous, alarm.state, kind, comment, user, event_json),
        )
        deliveries = self.policy.deliveries(alarm, kind, row["route"], roles)
        outbox.add(
            conn,
            alarm_id,
            seq,
            deliveries,
            now_ms,
            rank=PRIORITY_RANK[alarm.priority],
            enterprise=alarm.enterprise,
        )
        return event

    def _settle(self, conn: sqlite3.Connection, alarm_id: str, now_ms: int) -> None:
        """Derive what follows from the alarm's state: unacknowledged time (starts when
        it becomes unacknowledged, stops on ack), closing an alarm that owes no
        feedback when it is cleared, the shelf, and the next timer."""
        row = conn.execute(_SELECT_CHASE + " WHERE id = ?", (alarm_id,)).fetchone()
        state = AlarmState(row["state"])
        unack_ms, reminders = row["unack_ms"], row["reminders"]
        if state in UNACKNOWLEDGED:
            unack_ms = now_ms if unack_ms is None else unack_ms
        else:
            unack_ms, reminders = None, 0
        current = Disposal(row["disposal"])
        closed_ms = row["closed_ms"]
        step = disposal.on_isa(current, state)
        if step is not None:
            current, closed_ms = step.disposal, now_ms
        shelved_until = row["shelved_until_ms"] if state is AlarmState.SHELVED else None
        timer = _next_timer(
            self._route_of(conn, row),
            row,
            state=state,
            current=current,
            unack_ms=unack_ms,
            reminders=reminders,
            shelved_until=shelved_until,
        )
        conn.execute(
            "UPDATE alarms SET unack_ms = ?, reminders = ?, disposal = ?, closed_ms = ?, "
            "shelved_until_ms = ?, timer_ms = ? WHERE id = ?",
            (unack_ms, reminders, current, closed_ms, shelved_until, timer, alarm_id),
        )

    def _route_of(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Route | None:
        """The alarm's route; one recorded before routes existed (or renamed since) is
        matched again and recorded."""
        route = self.policy.route(row["route"])
        if route is None:
            name = self.policy.route_name(
                row["enterprise"], row["installation"], AlarmType(row["type"]), row["priority"]
            )
            if name != row["route"]:
                conn.execute("UPDATE alarms SET route = ? WHERE id = ?", (name, row["id"]))
            route = self.policy.route(name)
        return route

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
        closed: bool | None = None,
        limit: int = 100,
        enterprises: Collection[str] | None = None,
    ) -> list[Alarm]:
        """Alarms, newest raised first; ``active=True``: open (not closed) ones in the
        operators' order (:data:`OPERATOR_ORDER`: priority, unacknowledged first, newest
        first); ``False``: closed; ``since_ms``: raised (the current activation) at or after;
        ``closed``: whether the disposal loop has closed it (销号) — ``False`` is what still
        needs someone, including cleared alarms that await feedback or verification, in
        the operators' order too (the alarm desk's list: a limit keeps the most urgent);
        ``enterprises``: only theirs (the console caller's grants; ``None``: all)."""
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
        if closed is not None:
            where.append("disposal = 'closed'" if closed else "disposal <> 'closed'")
        if enterprises is not None:
            where.append(_IN_ENTERPRISES)
            params.append(orjson.dumps(sorted(enterprises)).decode())
        sql = _SELECT_ALARMS
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = OPERATOR_ORDER if active or closed is False else "raised_ms DESC, id DESC"
        sql += f" ORDER BY {order} LIMIT ?"
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

    def transitions_between(
        self,
        start_ms: int,
        end_ms: int,
        *,
        enterprises: Collection[str] | None = None,
        limit: int = KPI_TRANSITIONS_MAX,
    ) -> tuple[list[kpis.Transition], bool]:
        """Every transition before ``end_ms`` of the alarms that changed in
        ``[start_ms, end_ms)`` or were active across it (raised before its end, not
        cleared before its start), oldest first, for the KPIs (``alerting/kpis.py``).
        ``enterprises``: only theirs (``None``: all). The second value is True when
        ``limit`` cut the list short.

        A month of a province is hundreds of thousands of rows and seconds of reading:
        this opens a read-only connection of its own (WAL lets it read beside the
        writer and the console's reads, holding neither's lock), so call it from a
        worker thread, not the event loop."""
        scope = ""
        params: list[Any] = [start_ms, end_ms, end_ms, start_ms]
        if enterprises is not None:
            scope = f" AND a.{_IN_ENTERPRISES}"
            params.append(orjson.dumps(sorted(enterprises)).decode())
        sql = (
            "SELECT t.alarm_id, a.enterprise, a.installation, a.tag, a.type, a.priority, "  # noqa: S608 - placeholders only
            "t.at_ms, t.kind, t.to_state FROM transitions t JOIN alarms a ON a.id = t.alarm_id "
            "WHERE t.alarm_id IN (SELECT alarm_id FROM transitions WHERE at_ms >= ? AND at_ms < ? "
            "UNION SELECT id FROM alarms WHERE raised_ms < ? AND "
            f"(cleared_ms IS NULL OR cleared_ms >= ?)){scope} AND t.at_ms < ? "
            "ORDER BY t.at_ms, t.alarm_id, t.seq LIMIT ?"
        )
        try:
            with closing(
                sqlite3.connect(
                    self.path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False
                )
            ) as conn:
                rows = conn.execute(sql, [*params, end_ms, limit + 1]).fetchall()
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"alarm journal {self.path}: {exc}") from exc
        return [kpis.Transition(*row) for row in rows[:limit]], len(rows) > limit

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
        self,
        now_ms: int,
        limit: int = 100,
        channel: str | None = None,
        ranks: Sequence[int] = range(outbox.RANKS),
    ) -> list[OutboxItem]:
        """Outbox rows due at ``now_ms`` (optionally of one channel and some priority
        ranks), critical first, then oldest due first."""
        return outbox.due(self._reads(), now_ms, limit, channel, ranks)

    @_reading
    def pending_for(
        self,
        channel: str,
        recipient: str,
        enterprise: str,
        *,
        now_ms: int,
        limit: int,
        shown: int,
    ) -> tuple[list[int], list[OutboxItem]]:
        """The due rows of one recipient and enterprise on a channel (a digest's): all
        ids, and the first ``shown`` rows in full."""
        return outbox.due_for(
            self._reads(),
            channel,
            recipient,
            enterprise,
            now_ms=now_ms,
            limit=limit,
            shown=shown,
        )

    @_reading
    def next_due_ms(
        self, channel: str | None = None, ranks: Sequence[int] = range(outbox.RANKS)
    ) -> int | None:
        """When the next pending row (optionally of one channel and some ranks) is due;
        ``None``: none."""
        return outbox.next_due_ms(self._reads(), channel, ranks)

    @_reading
    def pending_count(self) -> int:
        return outbox.pending_count(self._reads())

    @_locked
    def delivered(self, item_id: int, now_ms: int, digest: int | None = None) -> None:
        self.delivered_all([item_id], now_ms, digest)

    @_locked
    def delivered_all(
        self, item_ids: Sequence[int], now_ms: int, digest: int | None = None
    ) -> None:
        """Record the delivery of several rows (a digest) in one transaction — without
        an fsync of its own (:meth:`_transaction`, ``bookkeeping``)."""
        with self._transaction(bookkeeping=True) as conn:
            for item_id in item_ids:
                if not outbox.mark_delivered(conn, item_id, now_ms, digest):
                    raise JournalError(f"no pending outbox row {item_id}")

    @_locked
    def failed(
        self,
        item_id: int,
        error: str,
        next_attempt_ms: int,
        *,
        max_attempts: int | None = None,
        permanent: bool = False,
    ) -> bool:
        """Record a failed attempt; True when the row is now dead (a permanent refusal,
        or its ``max_attempts``-th failure)."""
        dead = self.failed_all(
            [item_id], error, next_attempt_ms, max_attempts=max_attempts, permanent=permanent
        )
        return bool(dead)

    @_locked
    def failed_all(
        self,
        item_ids: Sequence[int],
        error: str,
        next_attempt_ms: int,
        *,
        max_attempts: int | None = None,
        permanent: bool = False,
    ) -> list[int]:
        """Record a failed attempt of several rows (a digest) in one transaction; the
        rows that are now dead."""
        dead = []
        with self._transaction(bookkeeping=True) as conn:
            for item_id in item_ids:
                if not outbox.mark_failed(
                    conn,
                    item_id,
                    error,
                    next_attempt_ms,
                    max_attempts=max_attempts,
                    permanent=permanent,
                ):
                    raise JournalError(f"no pending outbox row {item_id}")
                if outbox.is_dead(conn, item_id):
                    dead.append(item_id)
        return dead

    @_locked
    def hold(self, item_ids: Sequence[int], until_ms: int) -> None:
        """Let pending rows wait until ``until_ms`` (flood control): no attempt counted."""
        with self._transaction() as conn:
            outbox.hold(conn, item_ids, until_ms)

    @_reading
    def dead_letters(
        self, limit: int = 100, enterprises: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Notifications that failed for good, newest first; ``enterprises``: only of
        their alarms."""
        return outbox.dead(self._reads(), limit, enterprises)

    @_locked
    def revive(self, item_id: int, now_ms: int, channels: Collection[str]) -> bool:
        """Queue a dead notification again; False: no such dead row of one of
        ``channels`` (those configured)."""
        with self._transaction() as conn:
            return outbox.revive(conn, item_id, now_ms, channels)

    def retire_channels(self, configured: Collection[str]) -> dict[str, int]:
        """Dead-letter the pending notifications of channels not ``configured``
        (:func:`alerting.outbox.retire`); the rows per channel. Writes only when there
        are any: the outbox's start never waits for another writer for nothing."""
        if not self._orphaned(configured):
            return {}
        return self._retire(configured)

    @_reading
    def _orphaned(self, configured: Collection[str]) -> dict[str, int]:
        return outbox.orphaned(self._reads(), configured)

    @_locked
    def _retire(self, configured: Collection[str]) -> dict[str, int]:
        with self._transaction() as conn:
            return outbox.retire(conn, configured, "the channel is no longer configured")

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
    def _transaction(self, *, bookkeeping: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. Whatever fails in it — the COMMIT too (a full disk
        fails there: WAL pages are written at commit) — rolls it back, so the
        connection is never left inside a transaction that every later BEGIN would
        trip over. A storage error is ``JournalUnavailable``.

        ``bookkeeping``: the outbox's delivery marks, which the journal's thread writes
        after every notification — committed with ``synchronous=NORMAL``, no fsync of
        their own (the next durable commit syncs them). A power cut may lose one: the
        notification is sent again, which at-least-once delivery allows (receivers
        deduplicate by its key); a process crash loses none (WAL). Each such fsync
        held the next alarm's commit behind it in the one journal thread."""
        conn = self._db()
        relaxed = bookkeeping and self._synchronous == "FULL"
        try:
            if relaxed:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                if relaxed:
                    conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"alarm journal {self.path}: {exc}") from exc


def _iso(ms: int | None) -> str | None:
    return None if ms is None else ms_to_iso(ms)


def _details_json(condition: Condition) -> str | None:
    return None if condition.details is None else orjson.dumps(condition.details).decode()


def _alarm(row: sqlite3.Row) -> Alarm:
    feedback = verification = None
    if row["feedback_ms"] is not None:
        feedback = Feedback(
            cause=row["feedback_cause"] or "",
            measures=row["feedback_measures"] or "",
            by=row["feedback_by"] or "",
            at=ms_to_iso(row["feedback_ms"]),
        )
    if row["verify_ms"] is not None:
        verification = Verification(
            accepted=bool(row["verify_accepted"]),
            comment=row["verify_comment"] or "",
            by=row["verify_by"] or "",
            at=ms_to_iso(row["verify_ms"]),
        )
    owes = row["disposal"] == Disposal.AWAITING_FEEDBACK
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
        details=None if row["details"] is None else orjson.loads(row["details"]),
        disposal=Disposal(row["disposal"]),
        feedback_due=_iso(row["feedback_due_ms"]) if owes else None,
        feedback=feedback,
        verification=verification,
        closed_at=_iso(row["closed_ms"]),
        escalation=row["escalated"] + row["overdue"],
        shelved_until=_iso(row["shelved_until_ms"]),
    )


def _next_timer(
    route: Route | None,
    row: sqlite3.Row,
    *,
    state: AlarmState,
    current: Disposal,
    unack_ms: int | None,
    reminders: int,
    shelved_until: int | None,
) -> int | None:
    """The alarm's next timer: its shelf's end, or escalation's next step."""
    if state in QUIET:
        return shelved_until
    if route is None:
        return None
    chase = Chase(
        unack_ms=unack_ms,
        escalated=row["escalated"],
        reminders=reminders,
        feedback_due_ms=row["feedback_due_ms"] if current is Disposal.AWAITING_FEEDBACK else None,
        overdue=row["overdue"],
    )
    return escalation.next_due_ms(route, chase)


def _add_columns(
    conn: sqlite3.Connection, table: str, columns: Sequence[tuple[str, str]]
) -> list[str]:
    have = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
    added = []
    for name, spec in columns:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {spec}")
            added.append(name)
    return added


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a journal written by an earlier release up to this schema, in one
    transaction. Its closed alarms become closed for the disposal loop too; its open
    ones owe no feedback (nobody asked for it), and their unacknowledged time counts
    from the upgrade — an old alarm is not escalated to the regulator at once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        added = _add_columns(conn, "alarms", _ALARM_COLUMNS)
        if "disposal" in added:
            conn.execute(
                "UPDATE alarms SET disposal = 'closed', closed_ms = updated_ms "
                "WHERE state = 'cleared'"
            )
            conn.execute(
                "UPDATE alarms SET timer_ms = 0, "
                "unack_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) "
                "WHERE state IN ('active_unack', 'cleared_unack')"
            )
        _add_columns(conn, "outbox", outbox.COLUMNS)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
