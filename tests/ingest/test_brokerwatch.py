"""A broker away for longer than ``disconnect_alarm_s`` is a SYSTEM alarm, cleared on
reconnect; a short outage raises nothing. Against a real Mosquitto, stopped and
started again on the same port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmType, Condition
from hazwatch.settings import IngestSettings, MqttSettings
from ingest.brokerwatch import DISCONNECTED_TAG
from ingest.codec import Decoded
from ingest.hzjson import HzJsonCodec
from ingest.routes import CodecRoutes
from ingest.source import MqttSource
from tests.helpers import eventually
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

NOW = 1_763_820_000_000
TIMEOUT_S = 20


class SystemAlarms:
    """``on_system``: every condition, and an event per change of the tag's state."""

    def __init__(self) -> None:
        self.conditions: list[Condition] = []
        self.changed = asyncio.Event()

    def __call__(self, conditions: list[Condition]) -> None:
        self.conditions += conditions
        self.changed.set()

    async def next(self) -> Condition:
        async with asyncio.timeout(TIMEOUT_S):
            await self.changed.wait()
        self.changed.clear()
        return self.conditions[-1]


async def _ignore(batch: list[Decoded]) -> None:
    del batch


@contextlib.asynccontextmanager
async def running_source(
    broker: Mosquitto, alarms: SystemAlarms, alarm_after_s: float
) -> AsyncIterator[MqttSource]:
    limits = IngestSettings()
    source = MqttSource(
        MqttSettings(
            url=broker.url, client_id="hazwatch-watch-test", disconnect_alarm_s=alarm_after_s
        ),
        CodecRoutes([HzJsonCodec(limits)]),
        _ignore,
        limits,
        Metrics(),
        ManualClock(NOW),
        on_system=alarms,
    )
    task = asyncio.create_task(source.run())
    try:
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_long_outage_raises_broker_disconnected_and_reconnecting_clears_it(
    mosquitto: Mosquitto,
) -> None:
    alarms = SystemAlarms()
    async with running_source(mosquitto, alarms, alarm_after_s=0.5) as source:
        async with asyncio.timeout(TIMEOUT_S):
            await source.wait_connected()
        mosquitto.stop()
        raised = await alarms.next()
        assert (raised.tag, raised.type, raised.active) == (
            DISCONNECTED_TAG,
            AlarmType.SYSTEM,
            True,
        )
        assert raised.enterprise == "_system"
        assert "no connection to the broker" in raised.message
        assert not source.connected
        mosquitto.start()
        cleared = await alarms.next()
        assert (cleared.tag, cleared.active) == (DISCONNECTED_TAG, False)
        assert source.connected
    assert [c.active for c in alarms.conditions] == [True, False]


async def test_an_outage_shorter_than_the_threshold_raises_nothing(mosquitto: Mosquitto) -> None:
    alarms = SystemAlarms()
    async with running_source(mosquitto, alarms, alarm_after_s=60) as source:
        async with asyncio.timeout(TIMEOUT_S):
            await source.wait_connected()
        mosquitto.stop()
        await eventually(lambda: not source.connected, TIMEOUT_S, "the loss noticed")
        mosquitto.start()
        async with asyncio.timeout(TIMEOUT_S):
            await source.wait_connected()
    assert alarms.conditions == []


async def test_a_broker_unreachable_from_the_start_is_alarmed(mosquitto: Mosquitto) -> None:
    mosquitto.stop()
    alarms = SystemAlarms()
    async with running_source(mosquitto, alarms, alarm_after_s=0.3):
        raised = await alarms.next()
        assert (raised.tag, raised.active) == (DISCONNECTED_TAG, True)
