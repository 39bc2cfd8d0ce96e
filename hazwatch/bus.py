"""Bounded channels between stages, each with a stated overflow policy.

- ``Overflow.BLOCK``: the producer waits (backpressure). For everything that must not
  be lost: readings to storage and detectors, conditions to alerting.
- ``Overflow.DROP_OLDEST``: the oldest item is discarded and counted. Only for
  consumers that may miss items — browsers watching the live feed.

``Broadcast`` fans one stream out to any number of ``DROP_OLDEST`` subscribers (the
console's SSE clients), so a slow browser never slows the pipeline.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Overflow(enum.Enum):
    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


class Channel(Generic[T]):
    """An ``asyncio.Queue`` with a bound, a policy and a drop counter."""

    def __init__(
        self,
        name: str,
        maxsize: int,
        overflow: Overflow,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        if maxsize <= 0:
            raise ValueError(f"channel {name}: maxsize must be > 0, got {maxsize}")
        self.name = name
        self.overflow = overflow
        self.dropped = 0
        self._on_drop = on_drop
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)

    async def put(self, item: T) -> None:
        if self.overflow is Overflow.BLOCK:
            await self._queue.put(item)
        else:
            self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """Never waits. ``BLOCK`` channels raise ``asyncio.QueueFull`` instead."""
        if self.overflow is Overflow.DROP_OLDEST and self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(self.name)
        self._queue.put_nowait(item)

    async def get(self) -> T:
        return await self._queue.get()

    def qsize(self) -> int:
        return self._queue.qsize()

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            yield await self._queue.get()


class Broadcast(Generic[T]):
    """One stream to many drop-oldest subscribers (the live feed to browsers)."""

    def __init__(
        self, name: str, maxsize: int = 1000, on_drop: Callable[[str], None] | None = None
    ) -> None:
        self.name = name
        self._maxsize = maxsize
        self._on_drop = on_drop
        self._subscribers: set[Channel[T]] = set()

    def publish(self, item: T) -> None:
        for channel in self._subscribers:
            channel.put_nowait(item)

    @contextmanager
    def subscribe(self) -> Iterator[Channel[T]]:
        channel: Channel[T] = Channel(
            self.name, self._maxsize, Overflow.DROP_OLDEST, on_drop=self._on_drop
        )
        self._subscribers.add(channel)
        try:
            yield channel
        finally:
            self._subscribers.discard(channel)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
