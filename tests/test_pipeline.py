"""The whole pipeline, end to end: real Mosquitto, real influxd, the real service.

gateway (paho) → Mosquitto → hazwatch (ingest → InfluxDB, detectors → alerting) →
/api/alarms, the MQTT alarm topic and a webhook receiver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hazwatch.app import Hazwatch
from tests.conftest import EXAMPLE_REGISTRY, RunService
from tests.helpers import Gateway, console_login_async, eventually, write_registry
from tests.receivers import MqttRecorder, ScriptedReceiver
from tests.servers import Influxd, Mosquitto

pytestmark = pytest.mark.integration

StartService = Callable[..., Awaitable[Hazwatch]]


@pytest.fixture
def start_service(run_service: RunService, influxd_server: Influxd, influx_db: str) -> StartService:
    async def start(registry_dir: Path, webhooks: tuple[str, ...] = ()) -> Hazwatch:
        return await run_service(
            {
                "registry": str(registry_dir),
                "storage.backend": "influxdb",
                "storage.influxdb.url": influxd_server.url,
                "storage.influxdb.database": influx_db,
                "alerting.webhooks": list(webhooks),
                "alerting.allow_private": ["127.0.0.1"],  # the receiver is on loopback
            }
        )

    return start


async def test_1000_readings_from_10_gateways_are_1000_points(
    tmp_path: Path,
    start_service: StartService,
    mosquitto: Mosquitto,
    influxd_server: Influxd,
    influx_db: str,
) -> None:
    tags = [f"P{n:03d}" for n in range(100)]
    service = await start_service(write_registry(tmp_path / "registry", "T001", tags))
    base_ms = service.clock.now_ms() - 60_000
    gateways = [Gateway(mosquitto.port, "T001", f"g{n:02d}") for n in range(10)]
    try:
        for g, gateway in enumerate(gateways):
            own = tags[g * 10 : g * 10 + 10]
            for m in range(10):
                gateway.publish(
                    [{"tag": t, "v": g * 100 + m + k / 10} for k, t in enumerate(own)],
                    ts_ms=base_ms + m * 1000,
                )
    finally:
        for gateway in gateways:
            gateway.close()

    await eventually(
        lambda: (
            service.metrics.value("hazwatch_sink_written_points_total", {"backend": "influxdb"})
            >= 1000
        ),
        what="1000 points written",
    )
    assert influxd_server.count(influx_db) == 1000
    assert service.metrics.value("hazwatch_ingest_readings_total") == 1000
    # Tags and fields of docs/contract.md §8, value always a float.
    fields = influxd_server.query("SHOW FIELD KEYS FROM reading", influx_db)
    field_types = dict(fields["results"][0]["series"][0]["values"])  # type: ignore[index]
    assert field_types == {"quality": "string", "value": "float"}
    tag_keys = influxd_server.query("SHOW TAG KEYS FROM reading", influx_db)
    keys = {row[0] for row in tag_keys["results"][0]["series"][0]["values"]}  # type: ignore[index]
    assert keys == {"enterprise", "installation", "tag", "kind"}


def _hh(alarms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alarms if a["type"] == "HH" and a["tag"] == "TK101_LT"]


async def test_hh_crossing_raises_one_alarm_everywhere_then_ack_and_clear(
    start_service: StartService, mosquitto: Mosquitto, influxd_server: Influxd, influx_db: str
) -> None:
    async with ScriptedReceiver() as webhook:
        service = await start_service(EXAMPLE_REGISTRY, webhooks=(webhook.url(),))
        gateway = Gateway(mosquitto.port, "E001", "MH01-gw")

        def webhook_hh() -> list[dict[str, Any]]:
            return _hh([body["alarm"] for body in webhook.delivered()])

        api = httpx.AsyncClient(base_url=service.console_url, timeout=10)
        assert service.console.users is not None
        await console_login_async(api, service.console.users)
        with MqttRecorder(mosquitto.port, "hz/v1/E001/alarms") as alarm_topic:
            try:
                now = service.clock.now_ms()
                # Normal, then above HH (11.0) twice: one HH alarm, not two.
                for n, level in enumerate([8.0, 11.2, 11.3]):
                    gateway.publish([{"tag": "TK101_LT", "v": level}], ts_ms=now + n)

                await webhook.wait_until(
                    lambda _: len(_hh([b["alarm"] for b in webhook.delivered()])) >= 1
                )
                await alarm_topic.wait_for(lambda alarms: len(_hh(alarms)) >= 1)
                response = await api.get("/api/alarms", params={"active": "true"})
                response.raise_for_status()
                [alarm] = _hh(response.json())
                assert alarm["state"] == "active_unack"
                assert alarm["priority"] == "critical"
                assert alarm["limit"] == 11.0
                assert alarm["value"] in (11.2, 11.3)
                assert alarm["enterprise"] == "E001"
                assert alarm["installation"] == "MH01"

                ack = await api.post(f"/api/alarms/{alarm['id']}/ack", json={"comment": "seen"})
                assert ack.status_code == 200, ack.text
                assert ack.json()["state"] == "active_ack"

                # Inside the deadband (HH 11.0 - 0.05): still active; then below it: cleared.
                gateway.publish([{"tag": "TK101_LT", "v": 10.97}], ts_ms=now + 10)
                gateway.publish([{"tag": "TK101_LT", "v": 10.90}], ts_ms=now + 11)
                await alarm_topic.wait_for(
                    lambda alarms: any(a["state"] == "cleared" for a in _hh(alarms))
                )
                detail = (await api.get(f"/api/alarms/{alarm['id']}")).json()
                assert detail["state"] == "cleared"
                assert detail["cleared_at"] is not None

                # Exactly one HH alarm was ever raised, on every channel.
                everything = (await api.get("/api/alarms")).json()
                assert len(_hh(everything)) == 1
                published = _hh(alarm_topic.json())
                assert {a["id"] for a in published} == {alarm["id"]}
                assert [a["state"] for a in published] == ["active_unack", "active_ack", "cleared"]
                await webhook.wait_until(lambda _: len(webhook_hh()) >= 3)
                hooked = webhook_hh()
                assert [a["state"] for a in hooked] == ["active_unack", "active_ack", "cleared"]

                # ... and in the historian, measurement `alarm` (docs/contract.md §8).
                def historian() -> list[dict[str, Any]]:
                    answer = influxd_server.query(
                        "SELECT * FROM alarm WHERE \"type\" = 'HH'", influx_db
                    )
                    series = answer["results"][0].get("series", [])  # type: ignore[index]
                    if not series:
                        return []
                    columns, rows = series[0]["columns"], series[0]["values"]
                    return [dict(zip(columns, row, strict=True)) for row in rows]

                await eventually(lambda: len(historian()) >= 3, what="3 points of `alarm`")
                points = historian()
                assert [p["state"] for p in points] == ["active_unack", "active_ack", "cleared"]
                assert [p["event"] for p in points] == ["raised", "acknowledged", "cleared"]
                assert {p["id"] for p in points} == {alarm["id"]}
                assert [p["seq"] for p in points] == [1, 2, 3]
                assert points[0]["limit"] == 11.0
                assert points[0]["priority"] == "critical"
                assert points[0]["tag"] == "TK101_LT"
            finally:
                gateway.close()
                await api.aclose()
