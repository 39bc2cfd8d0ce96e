"""MqttAlarmNotifier against a real Mosquitto: the alarm JSON on hz/v1/{e}/alarms, QoS 1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from alerting.notifiers import MqttAlarmNotifier, Notice
from hazwatch.errors import NotifierError
from hazwatch.models import AlarmEvent
from hazwatch.settings import MqttSettings
from tests.servers import Mosquitto, free_port

pytestmark = pytest.mark.integration

TOPIC = "hz/v1/E001/alarms"


@asynccontextmanager
async def subscriber(port: int) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", port, identifier="test-subscriber") as client:
        await client.subscribe("hz/v1/+/alarms", qos=1)
        yield client


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(10):
        return await anext(aiter(client.messages))


async def test_publishes_the_alarm_json_on_the_enterprise_topic(
    mosquitto: Mosquitto, event: AlarmEvent
) -> None:
    settings = MqttSettings(url=mosquitto.url, client_id="hazwatch-test")
    async with subscriber(mosquitto.port) as sub, MqttAlarmNotifier(settings) as notifier:
        assert notifier.connected
        assert notifier.identifier == "hazwatch-test-alarms"
        assert notifier.name == "mqtt"
        await notifier.send(Notice.of(event))
        message = await next_message(sub)
    assert message.topic.value == TOPIC
    assert message.qos == 1
    assert isinstance(message.payload, bytes)
    assert json.loads(message.payload) == event.alarm.model_dump(mode="json")


async def test_without_a_broker_send_fails_then_reconnects_on_a_later_send(
    tmp_path: Path, event: AlarmEvent
) -> None:
    port = free_port()
    settings = MqttSettings(url=f"mqtt://127.0.0.1:{port}", client_id="hazwatch-test")
    async with MqttAlarmNotifier(settings, timeout_s=1) as notifier:  # entering does not fail
        assert not notifier.connected
        with pytest.raises(NotifierError, match=f"127.0.0.1:{port}: cannot connect"):
            await notifier.send(Notice.of(event))
        broker = Mosquitto(tmp_path / "late-broker", port=port)
        broker.start()
        try:
            async with subscriber(port) as sub:
                await notifier.send(Notice.of(event))
                assert notifier.connected
                message = await next_message(sub)
                assert json.loads(message.payload)["id"] == event.alarm.id
                # the broker goes away: the next send fails — at once when the client
                # has already seen the connection drop, else when the PUBACK wait times
                # out (timeout_s) — and the send after the broker is back reconnects
                broker.stop()
                with pytest.raises(NotifierError):
                    await notifier.send(Notice.of(event))
                assert not notifier.connected
            broker.start()
            async with subscriber(port) as sub:
                await notifier.send(Notice.of(event))
                message = await next_message(sub)
                assert message.topic.value == TOPIC
        finally:
            broker.stop()
