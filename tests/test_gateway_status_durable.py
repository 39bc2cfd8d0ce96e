"""A gateway's status message is acknowledged only once the alarm it caused is in the
journal: it is not spooled, so after a crash no replay would bring GATEWAY_OFFLINE back.
The real service on a real Mosquitto; the journal held by another connection's write
lock (a slow or busy disk), so its commit waits."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from hazwatch.models import AlarmType, GatewayState, GatewayStatus
from ingest.codec import Decoded
from tests.conftest import EXAMPLE_REGISTRY, RunService

pytestmark = pytest.mark.integration


async def test_a_status_batch_returns_only_after_its_gateway_offline_is_committed(
    run_service: RunService,
) -> None:
    service = await run_service({"registry": str(EXAMPLE_REGISTRY)})
    now = service.clock.now_ms()
    offline = GatewayStatus("E001", "MH01-gw", GatewayState.OFFLINE, now)
    message = Decoded(
        codec="hz-json",
        topic="hz/v1/E001/MH01-gw/status",
        received_ms=now,
        enterprise="E001",
        gateway="MH01-gw",
        status=offline,
    )
    lock = sqlite3.connect(service.journal.path, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # the journal's commit waits (busy_timeout 5 s)
        handled = asyncio.ensure_future(service.pipeline.handle([message]))
        done, _ = await asyncio.wait({handled}, timeout=1.0)
        assert not done, "acknowledged before GATEWAY_OFFLINE was in the journal"
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    await asyncio.wait_for(handled, 15)
    [alarm] = [
        a
        for a in service.journal.list_alarms(active=True, limit=100)
        if a.type is AlarmType.GATEWAY_OFFLINE
    ]
    assert (alarm.enterprise, alarm.tag) == ("E001", "MH01-gw")
