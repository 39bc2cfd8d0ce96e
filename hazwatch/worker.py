"""One SQLite connection used from worker threads, one call at a time.

The spool, the SQLite sink and the uplink queues each keep one connection and run
its calls in worker threads so the event loop never waits for an fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


async def run_serialized(lock: asyncio.Lock, call: Callable[[], T]) -> T:
    """Run ``call`` in a worker thread while holding ``lock``.

    A cancelled caller still waits for the thread (it cannot be stopped), so the next
    call never runs on the connection while a transaction is open in another thread.
    """
    async with lock:
        work = asyncio.ensure_future(asyncio.to_thread(call))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait({work})
            if not work.cancelled():
                work.exception()  # seen: no "exception was never retrieved"
            raise


def connect_durable(path: Path) -> sqlite3.Connection:
    """A connection to an SQLite file that other threads may use: WAL (readers never
    wait for the writer), ``synchronous=FULL`` (a commit survives a power cut),
    explicit transactions (``BEGIN``/``COMMIT`` by the caller). Creates the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn
