"""Bounded drop-oldest channels: the live feed to browsers.

Stages hand readings and conditions to each other by direct calls, whose
backpressure is the caller waiting (the MQTT acks wait for the spool commit). Only
consumers that may miss items read from a channel here: ``Broadcast`` fans one stream
out to any number of subscribers (the console's SSE clients), each a bounded queue
that discards its oldest item when full and counts it, so a slow browser never slows
the pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Channel(Generic[T]):
    """An ``asyncio.Queue`` with a bound that drops its oldest item when full.

    ``dropped`` counts what it discarded, so its reader can tell that it missed items
    (the console's stream then tells the page to re-read its state)."""

    def __init__(
        self, name: str, maxsize: int, on_drop: Callable[[str], None] | None = None
    ) -> None:
        if maxsize <= 0:
            raise ValueError(f"channel {name}: maxsize must be > 0, got {maxsize}")
        self.name = name
        self._on_drop = on_drop
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put_nowait(self, item: T) -> None:
        """Never waits: when full, the oldest item goes (and ``on_drop`` is told)."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(self.name)
        self._queue.put_nowait(item)

    async def get(self) -> T:
        """The oldest item, waiting for one."""
        return await self._queue.get()

    def drain(self) -> list[T]:
        """Every item queued now, oldest first, without waiting."""
        items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

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
        channel: Channel[T] = Channel(self.name, self._maxsize, on_drop=self._on_drop)
        self._subscribers.add(channel)
        try:
            yield channel
        finally:
            self._subscribers.discard(channel)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
