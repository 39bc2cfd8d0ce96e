"""The whole service on a clock running 60× fast: an HH on a major hazard installation
told to its people by SMS through a gateway that is down for the first 10 minutes,
escalated (督办) on time all the same, then acknowledged, fed back and verified over the
console's API — every step on the MQTT alarm topic. Real Mosquitto, a real HTTP SMS
gateway, the real ``Hazwatch``."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from hazwatch.clock import ScaledClock
from hazwatch.models import iso_to_ms
from tests.conftest import EXAMPLE_REGISTRY, RunService
from tests.helpers import Gateway, console_login_async, eventually
from tests.receivers import MqttRecorder, ScriptedReceiver
from tests.servers import Mosquitto, free_port

pytestmark = pytest.mark.integration

RATE = 60.0
"""10 minutes of outage take 10 s; the tiers are due at 5 and 15 minutes."""
PRINCIPAL, OFFICER, REGULATOR = "+86-000-0000-1001", "+86-000-0000-0301", "+86-000-0000-0300"


def states(alarms: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["id"], a["state"]) for a in alarms}


def disposals_of(alarms: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["id"], a["disposal"]) for a in alarms}


async def sleep_until(clock: ScaledClock, ms: int) -> None:
    await asyncio.sleep(max(0.0, clock.wall_s_until(ms)))


async def test_down_then_back_nothing_lost_each_once_escalation_on_time(
    run_service: RunService, mosquitto: Mosquitto
) -> None:
    clock = ScaledClock(RATE)
    port = free_port()  # the SMS gateway's: nothing listens there for the first 10 minutes
    service = await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "alerting.sms.url": f"http://127.0.0.1:{port}/sms",
            "alerting.allow_private": ["127.0.0.1"],
            "alerting.routes": [
                {
                    "name": "critical",
                    "types": ["HH"],
                    "notify": ["duty", "principal", "grid_officer"],
                    "escalate": [
                        {"after_min": 5, "notify": ["principal", "grid_officer"]},
                        {"after_min": 15, "notify": ["regulator"]},
                    ],
                    "remind_every_min": 5,
                },
                {"name": "the rest", "types": ["H"], "notify": ["duty"]},  # nothing else
            ],
        },
        clock=clock,
    )
    gateway = Gateway(mosquitto.port, "E001", "MH01-gw")
    api = httpx.AsyncClient(base_url=service.console_url, timeout=10)
    assert service.console.users is not None
    await console_login_async(api, service.console.users)
    with MqttRecorder(mosquitto.port, "hz/v1/E001/alarms") as topic:
        try:
            gateway.publish([{"tag": "TK101_LT", "v": 11.3}], ts_ms=clock.now_ms())
            await topic.wait_for(lambda alarms: any(a["type"] == "HH" for a in alarms))
            [alarm] = [a for a in topic.json() if a["type"] == "HH"]
            alarm_id = alarm["id"]
            [raised] = service.journal.transitions(alarm_id)
            t0 = iso_to_ms(raised["at"])

            await sleep_until(clock, t0 + 600_000)  # the gateway comes back after 10 min
            async with ScriptedReceiver(port=port) as sms:
                await sleep_until(clock, t0 + 960_000)
                escalated = [
                    iso_to_ms(t["at"]) - t0
                    for t in service.journal.transitions(alarm_id)
                    if t["kind"] == "escalated"
                ]
                # on time although nothing could be delivered for the first 10 minutes
                assert len(escalated) == 2
                assert 300_000 <= escalated[0] <= 300_000 + 60 * RATE * 5  # 5 s of wall slack
                assert 900_000 <= escalated[1] <= 900_000 + 60 * RATE * 5
                to_regulator = [r for r in sms.requests if r.json()["to"] == REGULATOR]
                assert to_regulator  # tier 2, sent when due: the gateway was back
                await eventually(
                    lambda: service.journal.pending_count() == 0, timeout=20, what="all sent"
                )

                # the closed loop over the console's API
                ack = await api.post(f"/api/alarms/{alarm_id}/ack", json={"comment": "seen"})
                assert ack.status_code == 200, ack.text
                gateway.publish([{"tag": "TK101_LT", "v": 9.0}], ts_ms=clock.now_ms())
                # this alarm's own message, not the topic's last: GATEWAY_OFFLINE of the
                # same gateway clears with the same reading and may arrive first
                await topic.wait_for(lambda alarms: (alarm_id, "cleared") in states(alarms))
                await console_login_async(api, service.console.users, "E001")
                fed = await api.post(  # the enterprise feeds back, the operator verifies
                    f"/api/alarms/{alarm_id}/feedback",
                    json={"cause": "transfer ran on", "measures": "inlet closed"},
                )
                assert fed.status_code == 200, fed.text
                await console_login_async(api, service.console.users)
                verified = await api.post(
                    f"/api/alarms/{alarm_id}/verify", json={"accepted": True, "comment": "ok"}
                )
                assert verified.status_code == 200, verified.text
                await topic.wait_for(lambda alarms: (alarm_id, "closed") in disposals_of(alarms))
        finally:
            await api.aclose()
    hh = [a for a in topic.json() if a["id"] == alarm_id]
    disposals = [a["disposal"] for a in hh]
    assert disposals[-3:] == ["awaiting_feedback", "awaiting_verification", "closed"]
    assert hh[-2]["feedback"]["cause"] == "transfer ran on"
    assert [a["escalation"] for a in hh if a["escalation"]][:2] == [1, 2]
    # nothing lost, each notification once per idempotency key, none dead
    delivered = [r for r in sms.requests if r.status == 204]
    keys = Counter(r.headers["idempotency-key"] for r in delivered)
    assert max(keys.values()) == 1, keys.most_common(3)
    rows = service.journal.notifications(alarm_id)
    sms_rows = [n for n in rows if n["channel"] == "sms"]
    assert sms_rows
    assert {n["status"] for n in sms_rows} == {"delivered"}
    assert {PRINCIPAL, OFFICER, REGULATOR} <= {r.json()["to"] for r in delivered}
    assert service.journal.dead_letters() == []
