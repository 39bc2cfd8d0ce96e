"""Detectors through the real service: real Mosquitto, the whole pipeline, SQLite storage.

- a gateway that stops publishing: exactly one GATEWAY_OFFLINE, no per-point STALE,
  cleared when it publishes again;
- a frozen value: STUCK once, cleared when the value moves;
- a suspended enterprise drawing power: SUSPENDED_LOAD.

Windows are short (point-table columns, ``[detectors]`` settings) so each test takes
seconds; readings carry explicit past timestamps where the detector goes by reading
time (STUCK, SUSPENDED_LOAD), so no test waits for a window to pass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hazwatch.app import Hazwatch
from hazwatch.models import Alarm, AlarmType
from tests.conftest import RunService
from tests.helpers import Gateway, eventually, write_registry
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

StartService = Callable[..., Awaitable[Hazwatch]]


@pytest.fixture
def start_service(run_service: RunService) -> StartService:
    async def start(registry_dir: Path, **detectors: Any) -> Hazwatch:
        return await run_service(
            {
                "registry": str(registry_dir),
                "detectors.tick_s": 0.05,
                **{f"detectors.{k}": v for k, v in detectors.items()},
            }
        )

    return start


def alarms(service: Hazwatch, alarm_type: AlarmType) -> list[Alarm]:
    return [a for a in service.journal.list_alarms(limit=1000) if a.type is alarm_type]


def active(service: Hazwatch, alarm_type: AlarmType) -> list[Alarm]:
    return [a for a in alarms(service, alarm_type) if a.cleared_at is None]


async def test_a_silent_gateway_gives_one_gateway_offline_and_no_stale(
    tmp_path: Path, start_service: StartService, mosquitto: Mosquitto
) -> None:
    tags = ["A1", "A2", "A3"]
    # every point expected every 0.2 s: overdue after 3 × 0.2 s of silence
    service = await start_service(write_registry(tmp_path / "reg", "T001", tags, interval_s="0.2"))
    gateway = Gateway(mosquitto.port, "T001", "gwA")
    try:
        for _ in range(3):
            gateway.publish([{"tag": t, "v": 1.0} for t in tags])
        await eventually(
            lambda: service.metrics.value("hazwatch_ingest_readings_total") >= 9,
            what="readings in",
        )
    finally:
        gateway.close()  # a clean disconnect: no status message, just silence

    await eventually(lambda: len(active(service, AlarmType.GATEWAY_OFFLINE)) == 1, what="offline")
    [offline] = active(service, AlarmType.GATEWAY_OFFLINE)
    assert (offline.enterprise, offline.installation, offline.tag) == ("T001", "U1", "gwA")
    # Long past every point's allowance (and many ticks later): no per-point STALE.
    silent_since = service.clock.now_ms()
    await eventually(lambda: service.clock.now_ms() > silent_since + 2_000, what="2 s of ticks")
    assert alarms(service, AlarmType.STALE) == []
    assert len(alarms(service, AlarmType.GATEWAY_OFFLINE)) == 1

    # The gateway publishes again: GATEWAY_OFFLINE clears, still no STALE.
    gateway = Gateway(mosquitto.port, "T001", "gwA")
    try:
        gateway.publish([{"tag": t, "v": 1.0} for t in tags])
        await eventually(
            lambda: active(service, AlarmType.GATEWAY_OFFLINE) == [], what="offline cleared"
        )
    finally:
        gateway.close()
    assert alarms(service, AlarmType.STALE) == []
    assert len(alarms(service, AlarmType.GATEWAY_OFFLINE)) == 1


async def test_a_frozen_value_gives_stuck_once_cleared_when_it_moves(
    tmp_path: Path, start_service: StartService, mosquitto: Mosquitto
) -> None:
    service = await start_service(write_registry(tmp_path / "reg", "T001", ["PT1"], stuck_s="1"))
    gateway = Gateway(mosquitto.port, "T001", "gw1")
    base = service.clock.now_ms() - 60_000
    try:
        for k in range(6):  # the same value for 2.5 s of reading time
            gateway.publish([{"tag": "PT1", "v": 4.2}], ts_ms=base + k * 500)
        await eventually(lambda: len(alarms(service, AlarmType.STUCK)) == 1, what="STUCK")
        [stuck] = alarms(service, AlarmType.STUCK)
        assert stuck.tag == "PT1"
        assert stuck.cleared_at is None
        assert "stuck at 4.2" in stuck.message
        gateway.publish([{"tag": "PT1", "v": 4.2}], ts_ms=base + 3_000)  # still frozen
        gateway.publish([{"tag": "PT1", "v": 4.3}], ts_ms=base + 3_500)  # it moves
        await eventually(lambda: active(service, AlarmType.STUCK) == [], what="STUCK cleared")
    finally:
        gateway.close()
    [stuck] = alarms(service, AlarmType.STUCK)  # raised once, now cleared
    assert stuck.cleared_at is not None


def suspended_registry(root: Path) -> Path:
    (root / "enterprises").mkdir(parents=True)
    (root / "points").mkdir()
    (root / "enterprises" / "S001.toml").write_text(
        'id = "S001"\nname = "Stopped works"\ngrid = "G1"\nstatus = "suspended"\n'
        '[[installations]]\nid = "DB01"\nname = "Distribution board"\ngrade = 4\n'
        'points = "points/S001.csv"\n'
    )
    (root / "points" / "S001.csv").write_text(
        "installation,tag,name,kind,unit,min,max\nDB01,P01,Main power,power,kW,0,500\n"
    )
    return root


async def test_a_suspended_enterprise_drawing_power_gives_suspended_load(
    tmp_path: Path, start_service: StartService, mosquitto: Mosquitto
) -> None:
    service = await start_service(
        suspended_registry(tmp_path / "reg"), suspended_standby=5, suspended_delay_s=1
    )
    gateway = Gateway(mosquitto.port, "S001", "gw1")
    base = service.clock.now_ms() - 60_000
    try:
        gateway.publish([{"tag": "P01", "v": 2.0}], ts_ms=base)  # standby: fine
        for k in range(1, 5):  # 80 kW for 1.5 s of reading time
            gateway.publish([{"tag": "P01", "v": 80.0}], ts_ms=base + k * 500)
        await eventually(
            lambda: len(active(service, AlarmType.SUSPENDED_LOAD)) == 1, what="SUSPENDED_LOAD"
        )
        [load] = active(service, AlarmType.SUSPENDED_LOAD)
        assert (load.enterprise, load.installation, load.tag) == ("S001", "DB01", "P01")
        assert load.value == 80.0
        assert load.limit == 5.0
        gateway.publish([{"tag": "P01", "v": 1.0}], ts_ms=base + 3_000)
        await eventually(
            lambda: active(service, AlarmType.SUSPENDED_LOAD) == [], what="back to standby"
        )
    finally:
        gateway.close()
