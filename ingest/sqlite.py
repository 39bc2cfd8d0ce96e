"""SQLite as the readings store: the embedded default, when no InfluxDB is configured.

One table, keyed like an InfluxDB series point — (enterprise, tag, ts_ms) — and
written with ``INSERT OR REPLACE``, so a retried or redelivered batch changes
nothing (idempotent, as InfluxDB is). WAL mode lets the console read history while
the ingest writes; ``synchronous=NORMAL`` is durable across a crash of the process
(not of the machine), enough for a history store behind MQTT acks that waited for
it. One connection, used from worker threads (``asyncio.to_thread``) one call at a
time under a lock, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self, TypeVar

import structlog

from hazwatch.errors import SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import Reading, Registry
from ingest.sink import check_history_range, measured_write
from ingest.worker import run_serialized

log = structlog.get_logger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reading (
    enterprise   TEXT    NOT NULL,
    tag          TEXT    NOT NULL,
    ts_ms        INTEGER NOT NULL,
    installation TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    value        REAL    NOT NULL,
    quality      TEXT    NOT NULL,
    PRIMARY KEY (enterprise, tag, ts_ms)
) WITHOUT ROWID
"""
_INSERT = "INSERT OR REPLACE INTO reading VALUES (?, ?, ?, ?, ?, ?, ?)"
# Buckets aligned to the epoch, like InfluxDB's GROUP BY time(); the double modulo
# keeps the alignment right for times before 1970 (SQLite's % truncates).
_HISTORY = """
SELECT ts_ms - ((ts_ms % :step) + :step) % :step AS bucket, avg(value)
FROM reading
WHERE enterprise = :enterprise AND tag = :tag AND ts_ms >= :start AND ts_ms < :end
GROUP BY bucket
ORDER BY bucket
"""


class SqliteSink:
    name = "sqlite"

    def __init__(self, path: Path, registry: Registry, metrics: Metrics) -> None:
        self._path = path
        self._registry = registry
        self._metrics = metrics
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        await self._run(self._open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._run(self._close)

    async def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        rows = []
        for r in readings:
            point = self._registry.point(r.enterprise, r.tag)
            if point is None:
                raise SinkRejected(
                    f"cannot store {r.enterprise}/{r.tag}: expected a registered point "
                    "(the validator should have stopped it)"
                )
            rows.append(
                (
                    r.enterprise,
                    r.tag,
                    r.ts_ms,
                    point.installation,
                    point.kind.value,
                    float(r.value),
                    r.quality.value,
                )
            )
        with measured_write(self._metrics, self.name, len(rows)):
            await self._run(lambda: self._write_rows(rows))

    async def history(
        self, enterprise: str, tag: str, start_ms: int, end_ms: int, step_ms: int
    ) -> list[tuple[int, float]]:
        check_history_range(start_ms, end_ms, step_ms)
        params = {
            "enterprise": enterprise,
            "tag": tag,
            "start": int(start_ms),
            "end": int(end_ms),
            "step": int(step_ms),
        }

        def query() -> list[tuple[int, float]]:
            rows = self._connection().execute(_HISTORY, params).fetchall()
            return [(int(bucket), float(mean)) for bucket, mean in rows]

        return await self._run(query)

    async def ping(self) -> bool:
        if self._conn is None:
            return False
        try:
            await self._run(lambda: self._connection().execute("SELECT 1").fetchone())
        except (SinkUnavailable, SinkRejected):
            return False
        return True

    # --- in worker threads ---------------------------------------------------------

    async def _run(self, call: Callable[[], T]) -> T:
        """Run ``call`` in a worker thread, one at a time; map SQLite errors to sink errors."""
        try:
            return await run_serialized(self._lock, call)
        except sqlite3.IntegrityError as exc:
            raise SinkRejected(f"SQLite refused the readings in {self._path}: {exc}") from exc
        except sqlite3.Error as exc:  # locked, disk full, I/O error: may pass
            raise SinkUnavailable(f"SQLite at {self._path}: {exc}") from exc
        except OSError as exc:  # the directory could not be created
            raise SinkUnavailable(f"cannot open {self._path}: {exc}") from exc

    def _open(self) -> None:
        if self._conn is not None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(_SCHEMA)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        log.info("sqlite_sink_open", path=str(self._path))

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteSink is not open: use `async with sink:`")
        return self._conn

    def _write_rows(self, rows: list[tuple[str, str, int, str, str, float, str]]) -> None:
        conn = self._connection()
        with conn:  # one transaction: commits, or rolls back on error
            conn.executemany(_INSERT, rows)
