"""The uplink in the real service: a platform that is down for a while and comes back.

Real Mosquitto for the gateways, the real service in this event loop, and upstream
either a real HTTP receiver (tests/receivers.py) that refuses connections while it
is "down", or a second real Mosquitto that is stopped and started again. The
platform side decrypts and verifies every request independently (tests/uplink/
platform.py). Figures are printed (``pytest -s``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hazwatch.app import Hazwatch
from tests.conftest import RunService
from tests.helpers import Gateway, eventually, write_registry
from tests.receivers import MqttRecorder, Request, ScriptedReceiver
from tests.servers import Mosquitto, free_port
from tests.uplink.platform import HTTP_UPLINK, MQTT_UPLINK, open_http, open_mqtt

pytestmark = pytest.mark.integration

ENTERPRISE = "T001"
TAGS = [f"P{n:02d}" for n in range(10)]
MESSAGES = 300
STEP_MS = 100
"""Message ``seq`` carries every tag at ``base + seq × 100 ms``, value ``seq + k/100``."""
PERIOD_S = 1.0
"""So the uplink forwards seq 1, 11, 21, ... of each tag: 30 per tag."""


def publish_stream(gateway: Gateway, base_ms: int, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        gateway.publish(
            [{"tag": t, "v": seq + k / 100} for k, t in enumerate(TAGS)],
            ts_ms=base_ms + seq * STEP_MS,
        )


def expected_samples() -> set[tuple[str, int]]:
    return {(t, seq) for t in TAGS for seq in range(1, MESSAGES + 1, 10)}


def uplink_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "prov",
        "url": url,
        "rate": 100.0,
        "batch": 10,
        "retry_max_s": 0.5,
        "lag_alarm_s": 1.5,
        "fail_alarm_s": 0.5,
        "readings": {"period_s": PERIOD_S},
        **extra,
    }


async def start(
    tmp_path: Path, run_service: RunService, uplink: dict[str, Any]
) -> tuple[Hazwatch, Gateway]:
    registry = write_registry(tmp_path / "registry", ENTERPRISE, TAGS, h="50")
    service = await run_service(
        {
            "registry": str(registry),
            "uplink": [{**uplink, "queue_path": str(tmp_path / "uplink.db")}],
        }
    )
    return service, Gateway(service.settings.mqtt.port, ENTERPRISE, "gw1")


def system_states(service: Hazwatch, tag: str) -> list[str]:
    return [
        a.state.value
        for a in service.journal.list_alarms(limit=1000)
        if a.enterprise == "_system" and a.tag == tag
    ]


async def healthz(service: Hazwatch) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{service.console_url}healthz", timeout=5)


def check_readings(records: list[dict[str, Any]]) -> None:
    """0 lost, none twice, in order: the queue's seq and each tag's time only grow."""
    got = [(r["tag"], round(r["v"])) for r in records]
    assert len(got) == len(set(got)), "a reading arrived twice"
    assert set(got) == expected_samples()
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs)
    for tag in TAGS:
        times = [r["ts"] for r in records if r["tag"] == tag]
        assert times == sorted(times)


async def test_http_platform_down_for_a_while_loses_nothing_keeps_order_and_paces_catch_up(
    tmp_path: Path, run_service: RunService
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    service, gateway = await start(
        tmp_path,
        run_service,
        uplink_config(
            url,
            readings={"period_s": PERIOD_S, "path": "/realtime"},
            alarms={"path": "/alarm"},
            **HTTP_UPLINK,
        ),
    )
    base_ms = int(time.time() * 1000) - 60_000
    publish_stream(gateway, base_ms, 1, MESSAGES)  # the platform is down all along

    def queued() -> float:
        labels = {"uplink": "prov", "kind": "reading"}
        return service.metrics.value("hazwatch_uplink_queued_records_total", labels)

    await eventually(lambda: queued() == len(expected_samples()), 20, "every sample queued")
    await eventually(lambda: system_states(service, "uplink_failing:prov") == ["active_unack"])
    await eventually(lambda: system_states(service, "uplink_lag:prov") == ["active_unack"])
    failures = service.metrics.value("hazwatch_uplink_failures_total", {"uplink": "prov"})
    down = await healthz(service)
    assert down.status_code == 503
    assert down.json()["components"]["uplink:prov"]["status"] == "failing"
    assert down.json()["components"]["uplink:prov"]["backlog"] == len(expected_samples()) + 10

    opened: list[int] = []  # records per realtime request, opened once each

    def all_arrived(requests: list[Request]) -> bool:
        opened.extend(
            len(open_http(r.headers, r.body)["records"]) if r.path == "/api/realtime" else 0
            for r in requests[len(opened) :]
        )
        return sum(opened) >= len(expected_samples())

    async with ScriptedReceiver(port=port) as platform:
        await platform.wait_until(all_arrived, 30)
    requests = [(r, open_http(r.headers, r.body)) for r in platform.requests]
    readings = [(r, body) for r, body in requests if r.path == "/api/realtime"]
    alarms = [body for r, body in requests if r.path == "/api/alarm"]
    records = [record for _, body in readings for record in body["records"]]
    check_readings(records)
    assert all(body["enterprise"] == ENTERPRISE for _, body in readings)
    keys = [r.headers["idempotency-key"] for r, _ in readings]
    assert len(keys) == len(set(keys))
    # H alarms (values above 50) were raised while the platform was down: they went
    # first, every one, each change once.
    raised = [a for body in alarms for a in body["records"] if a["kind"] == "raised"]
    assert sorted(a["alarm"]["tag"] for a in raised) == TAGS
    assert all(a["alarm"]["type"] == "H" for a in raised)
    assert platform.requests[0].path == "/api/alarm"
    # The catch-up is paced: after the first burst (one batch), `rate` records a second.
    span_s = readings[-1][0].at - readings[0][0].at
    paced = (len(records) - len(readings[0][1]["records"])) / span_s
    print(
        f"\nHTTP platform down: {len(records)} samples of {MESSAGES * len(TAGS)} readings "
        f"queued, {failures:.0f} failed attempts; back: all delivered in {span_s:.1f} s "
        f"({paced:.0f} records/s, bound 100), {len(raised)} alarm changes first"
    )
    assert paced <= 100 * 1.1
    assert paced >= 100 * 0.5
    await eventually(lambda: system_states(service, "uplink_failing:prov") == ["cleared_unack"])
    await eventually(lambda: system_states(service, "uplink_lag:prov") == ["cleared_unack"])
    assert service.uplinks.forwarders[0].backlog == 0
    health = await healthz(service)
    assert health.status_code == 200, health.text
    assert health.json()["components"]["uplink:prov"] == {
        "status": "ok",
        "backlog": 0,
        "lag_s": 0.0,
    }
    gateway.close()


async def test_mqtt_platform_broker_restarted_loses_nothing_and_keeps_order(
    tmp_path: Path, run_service: RunService
) -> None:
    upstream = Mosquitto(tmp_path / "upstream")
    upstream.start()
    try:
        topic = "province/{enterprise}/realtime"
        with MqttRecorder(upstream.port, "province/#", session_expiry_s=3600) as platform:
            service, gateway = await start(
                tmp_path,
                run_service,
                uplink_config(
                    upstream.url,
                    readings={"period_s": PERIOD_S, "path": topic},
                    alarms={"enabled": False},
                    **MQTT_UPLINK,
                ),
            )
            base_ms = int(time.time() * 1000) - 60_000
            publish_stream(gateway, base_ms, 1, MESSAGES // 3)
            await eventually(lambda: platform.count() > 0, 20, "first records upstream")
            upstream.stop()  # SIGTERM: Mosquitto saves the recorder's session
            publish_stream(gateway, base_ms, MESSAGES // 3 + 1, MESSAGES)
            await eventually(
                lambda: system_states(service, "uplink_failing:prov") == ["active_unack"]
            )
            backlog = service.uplinks.forwarders[0].backlog
            upstream.start()
            total = len(expected_samples())

            def all_arrived() -> bool:
                return sum(len(open_mqtt(p)["records"]) for _, p in platform.messages) >= total

            await eventually(all_arrived, 30, "every sample upstream")
            messages = list(platform.messages)
        bodies = [open_mqtt(payload) for _, payload in messages]
        assert {t for t, _ in messages} == {f"province/{ENTERPRISE}/realtime"}
        records = [record for body in bodies for record in body["records"]]
        print(
            f"\nMQTT platform broker stopped with {backlog} records waiting: "
            f"{len(records)} of {total} arrived after its restart, in {len(bodies)} messages"
        )
        assert backlog > 0
        check_readings(records)
        gateway.close()
    finally:
        upstream.stop()
