"""Every configured uplink, built from the settings in one place.

The wiring (``hazwatch/app.py``) holds one :class:`Uplinks`: it offers it each
delivered batch of readings, tells it when the alarm journal has new changes, and
runs it in its TaskGroup. :func:`build_requests` is also what ``check-config`` uses
to check an uplink's templates without starting anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any, Self

import httpx

from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import Condition, Reading, Registry
from hazwatch.uplink_settings import UplinkSettings
from uplink.forwarder import AlarmJournal, UplinkForwarder
from uplink.queue import UplinkQueue
from uplink.requests import RequestBuilder
from uplink.sampler import PointSelection
from uplink.sealing import build_sealer
from uplink.transport import HttpUpstream, MqttUpstream, Upstream


def build_requests(settings: UplinkSettings, registry: Registry, clock: Clock) -> RequestBuilder:
    """An uplink's request builder; raises ``ConfigError`` for a bad template."""
    sealer = build_sealer(settings.signature, settings.encryption, clock)
    return RequestBuilder(settings, registry, sealer, clock)


class Uplinks:
    """``async with Uplinks(...) as uplinks:`` opens every queue; ``run()`` sends."""

    def __init__(
        self,
        settings: Iterable[UplinkSettings],
        registry: Registry,
        metrics: Metrics,
        clock: Clock,
        *,
        journal: AlarmJournal | None = None,
        on_system: Callable[[list[Condition]], object] | None = None,
    ) -> None:
        self._settings = tuple(settings)
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._journal = journal
        self._on_system = on_system
        self._stack = AsyncExitStack()
        self.forwarders: list[UplinkForwarder] = []

    async def __aenter__(self) -> Self:
        try:
            for s in self._settings:
                self.forwarders.append(await self._build(s))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _build(self, s: UplinkSettings) -> UplinkForwarder:
        builder = build_requests(s, self._registry, self._clock)
        assert s.queue_path is not None  # load_settings resolves it
        queue = await self._stack.enter_async_context(
            UplinkQueue(s.queue_path, s.queue_max_records)
        )
        upstream: Upstream
        if s.mqtt:
            upstream = await self._stack.enter_async_context(MqttUpstream(s))
        else:
            client = await self._stack.enter_async_context(httpx.AsyncClient(timeout=s.timeout_s))
            upstream = HttpUpstream(s, client)
        forwarder = UplinkForwarder(
            s,
            selection=PointSelection(
                self._registry, s.enterprises, s.readings.tags, s.readings.kinds
            ),
            queue=queue,
            upstream=upstream,
            builder=builder,
            metrics=self._metrics,
            clock=self._clock,
            journal=self._journal,
            on_system=self._on_system,
        )
        await forwarder.restore()
        return forwarder

    async def offer(self, readings: list[Reading]) -> None:
        """A delivered batch: returns once every uplink has queued its share."""
        for forwarder in self.forwarders:
            await forwarder.offer(readings)

    def alarms_changed(self) -> None:
        for forwarder in self.forwarders:
            forwarder.wake()

    async def run(self) -> None:
        if not self.forwarders:
            return
        async with asyncio.TaskGroup() as tg:
            for forwarder in self.forwarders:
                tg.create_task(forwarder.run(), name=f"uplink-{forwarder.name}")

    def health(self) -> dict[str, Any]:
        """``/healthz`` components ``uplink:<name>``: status ok, lagging or failing (as
        the SYSTEM alarms stand), the backlog and the lag."""
        health: dict[str, Any] = {}
        for f in self.forwarders:
            status = "ok"
            if f.alarmed("uplink_lag"):
                status = "lagging"
            if f.alarmed("uplink_failing"):
                status = "failing"
            health[f"uplink:{f.name}"] = {
                "status": status,
                "backlog": f.backlog,
                "lag_s": round(f.lag_s, 1),
            }
        return health
