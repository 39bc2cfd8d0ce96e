"""One SQLite connection used from worker threads, one call at a time.

The spool, the SQLite sink and the uplink queues each keep one connection and run
its calls in worker threads so the event loop never waits for an fsync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
