"""A broker that lost hazwatch's persistent session is a SYSTEM alarm and a metric.

Before, ``session_present = 0`` on a reconnect was an info line: the messages the
broker held for hazwatch were gone without a trace. Real Mosquitto and the real
service; the broker loses the session the way it does in the field — restarted
without its persistence file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hazwatch.app import Hazwatch
from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.models import Alarm, AlarmState, AlarmType, Condition
from hazwatch.settings import MqttSettings
from ingest.sessionwatch import LOST_MESSAGE, SESSION_LOST_TAG, SessionWatch
from ingest.spool import Spool
from tests.conftest import EXAMPLE_REGISTRY, RunService
from tests.helpers import eventually
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration
NOW = 1_763_820_000_000


def session_alarms(service: Hazwatch) -> list[Alarm]:
    alarms = service.journal.list_alarms(enterprise="_system", limit=100)
    return [a for a in alarms if a.tag == SESSION_LOST_TAG]


async def test_a_broker_that_lost_the_session_raises_a_system_alarm(
    run_service: RunService, mosquitto: Mosquitto
) -> None:
    service = await run_service({"registry": str(EXAMPLE_REGISTRY)})
    lost = service.metrics.value("hazwatch_mqtt_sessions_lost_total")
    assert lost == 0  # the first connection has no session to lose

    mosquitto.stop()  # SIGTERM: Mosquitto saves the session and keeps it
    mosquitto.start()
    await eventually(lambda: not service.source.connected, 5, "ingest saw the broker go")
    await eventually(lambda: service.source.connected, 40, "ingest back")
    await service.alarms.settled()
    assert service.metrics.value("hazwatch_mqtt_sessions_lost_total") == 0
    assert session_alarms(service) == []

    mosquitto.stop()
    (mosquitto.workdir / "mosquitto.db").unlink()  # the broker forgets everything
    mosquitto.start()
    await eventually(
        lambda: service.metrics.value("hazwatch_mqtt_sessions_lost_total") == 1,
        40,
        "the lost session counted",
    )
    await service.alarms.settled()
    [alarm] = session_alarms(service)
    assert alarm.type is AlarmType.SYSTEM
    # raised and cleared at once: on the list until an operator acknowledges it
    assert alarm.state is AlarmState.CLEARED_UNACK
    assert LOST_MESSAGE in alarm.message
    kinds = [t["kind"] for t in service.journal.transitions(alarm.id)]
    assert kinds == ["raised", "cleared"]


async def test_a_restart_of_hazwatch_remembers_it_had_a_session(tmp_path: Path) -> None:
    """The marker is in the spool: a lost session is seen across a restart of hazwatch
    too; another broker or client id is a first connection, not a loss."""
    mqtt = MqttSettings(url="mqtt://127.0.0.1:1883", client_id="hazwatch-ingest")
    conditions: list[Condition] = []
    metrics = Metrics()

    async def connect(settings: MqttSettings, session_present: bool) -> None:
        async with Spool(tmp_path / "spool.db", 2**20, metrics) as spool:
            watch = SessionWatch(
                settings, spool, metrics, ManualClock(NOW).now_ms, conditions.extend
            )
            await watch.connected(session_present)

    await connect(mqtt, session_present=False)  # first ever: nothing to lose
    await connect(mqtt, session_present=True)
    assert conditions == []
    other = mqtt.model_copy(update={"client_id": "hazwatch-2"})
    await connect(other, session_present=False)  # another identity: a first connection
    assert conditions == []
    await connect(other, session_present=True)
    await connect(other, session_present=False)  # after a restart: the broker lost it
    assert [(c.tag, c.active) for c in conditions] == [
        (SESSION_LOST_TAG, True),
        (SESSION_LOST_TAG, False),
    ]
    assert metrics.value("hazwatch_mqtt_sessions_lost_total") == 1
