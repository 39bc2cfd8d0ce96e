"""Faults the service outlives: a loop that raises, a full disk under the spool or the
journal. Real Mosquitto, real influxd (or SQLite), the real service in this process.

Each test shows the three promises: the fault is a SYSTEM alarm (and a metric),
nothing is lost, and the service recovers by itself once the cause is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazwatch.app import Hazwatch
from hazwatch.models import Alarm
from tests.conftest import RunService
from tests.diskfull import DiskFiller, small_tmpfs
from tests.helpers import Gateway, eventually, write_registry
from tests.servers import Influxd, Mosquitto

pytestmark = pytest.mark.integration

ENTERPRISE = "T001"
TAGS = [f"P{n:02d}" for n in range(10)]


def system_alarms(service: Hazwatch, tag: str) -> list[Alarm]:
    return [a for a in service.journal.list_alarms(enterprise="_system", limit=200) if a.tag == tag]


def publish(gateway: Gateway, first: int, messages: int, base_ms: int) -> None:
    """Messages ``first..first+messages-1``: one reading per tag at ``base_ms + n``."""
    for n in range(first, first + messages):
        gateway.publish([{"tag": t, "v": n + k / 100} for k, t in enumerate(TAGS)], base_ms + n)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "registry", ENTERPRISE, TAGS)


@pytest.fixture
def gateway(mosquitto: Mosquitto) -> Iterator[Gateway]:
    gw = Gateway(mosquitto.port, ENTERPRISE, "gw1")
    try:
        yield gw
    finally:
        gw.close()


# --- a loop that raises --------------------------------------------------------------


async def test_the_historian_answering_something_odd_never_stops_ingest(
    run_service: RunService,
    registry: Path,
    gateway: Gateway,
    influxd_server: Influxd,
    influx_db: str,
) -> None:
    """The sink raises what nobody expected (before: the writer's exception ended the
    service's TaskGroup, and ingest and alerting with it). The writer is restarted,
    ingest goes on acknowledging meanwhile, every reading reaches InfluxDB."""
    service = await run_service(
        {
            "registry": str(registry),
            "storage.backend": "influxdb",
            "storage.influxdb.url": influxd_server.url,
            "storage.influxdb.database": influx_db,
        }
    )
    service.supervisor.healthy_after_s = 1.0
    real_write = service.sink.write_lines  # type: ignore[attr-defined]
    odd_answers = 3

    async def odd_then_real(body: bytes, points: int) -> None:
        nonlocal odd_answers
        # The writer's readings only: the historian feed writes its `alarm` points
        # through the same call (the task_failed alarm among them), retried by the outbox.
        if odd_answers and body.startswith(b"reading,"):
            odd_answers -= 1
            raise KeyError("results")  # a historian answer nobody foresaw
        await real_write(body, points)

    service.sink.write_lines = odd_then_real  # type: ignore[attr-defined]
    base_ms = service.clock.now_ms() - 60_000
    publish(gateway, 1, 20, base_ms)
    await eventually(
        lambda: service.metrics.value("hazwatch_task_restarts_total", {"task": "sink-writer"}) >= 1,
        what="the writer restarted",
    )
    publish(gateway, 21, 20, base_ms)  # ingest goes on meanwhile: acked into the spool
    await eventually(
        lambda: service.metrics.value("hazwatch_spool_messages_total") >= 40,
        what="40 messages spooled",
    )
    assert service.source.connected
    await eventually(lambda: influxd_server.count(influx_db) == 400, 60, "400 points stored")
    await eventually(
        lambda: (
            [a.state for a in system_alarms(service, "task_failed:sink-writer")]
            == ["cleared_unack"]
        ),
        30,
        "the task_failed alarm raised, then cleared once the writer ran well",
    )
    [alarm] = system_alarms(service, "task_failed:sink-writer")
    assert "has run" in alarm.message
    assert [t["kind"] for t in service.journal.transitions(alarm.id)] == ["raised", "cleared"]
    assert service.metrics.value("hazwatch_task_restarts_total", {"task": "sink-writer"}) == 3


# --- a full disk ---------------------------------------------------------------------


async def test_a_full_disk_under_the_spool_stops_acks_alarms_loses_nothing_and_recovers(
    run_service: RunService, registry: Path, gateway: Gateway, tmp_path: Path
) -> None:
    """The spool's disk fills up: hazwatch stops acknowledging (the broker keeps the
    messages for its persistent session), raises ``spool_failing``, and once space is
    back stores every reading and clears the alarm — without a restart."""
    with small_tmpfs(tmp_path / "spooldisk", 2048) as disk:
        service = await run_service(
            {"registry": str(registry), "ingest.spool_path": str(disk / "spool.db")}
        )
        base_ms = service.clock.now_ms() - 60_000
        publish(gateway, 1, 5, base_ms)
        await eventually(lambda: service.metrics.value("hazwatch_ingest_readings_total") == 50)
        filler = DiskFiller(disk)
        filler.fill()
        sent = 5
        # Publish until the spool cannot commit (its WAL may still have room for a few).
        while not system_alarms(service, "spool_failing"):
            assert sent < 400, "the spool never ran out of disk"
            publish(gateway, sent + 1, 5, base_ms)
            sent += 5
            await asyncio.sleep(0.05)
        [alarm] = system_alarms(service, "spool_failing")
        assert alarm.state == "active_unack"
        assert "full" in alarm.message
        spooled = service.metrics.value("hazwatch_spool_messages_total")
        publish(gateway, sent + 1, 20, base_ms)  # accepted by the broker, held for hazwatch
        sent += 20
        await asyncio.sleep(1)
        assert service.metrics.value("hazwatch_spool_messages_total") == spooled  # held
        filler.free()
        await eventually(
            lambda: service.metrics.value("hazwatch_spool_messages_total") >= sent,
            60,
            "every message spooled once space is back",
        )
        await eventually(
            lambda: [a.state for a in system_alarms(service, "spool_failing")] == ["cleared_unack"],
            30,
            "spool_failing cleared",
        )
        await eventually(
            lambda: (
                service.metrics.value("hazwatch_sink_written_points_total", {"backend": "sqlite"})
                >= sent * len(TAGS)
            ),
            30,
            "every reading stored",
        )
        history = await service.sink.history(ENTERPRISE, "P00", base_ms, base_ms + 10_000, 1)
        assert sorted(v for _, v in history) == [float(n) for n in range(1, sent + 1)]
        # a full disk is expected weather, not a bug: no loop failed over it
        assert [a.tag for a in service.journal.list_alarms(enterprise="_system")] == [
            "spool_failing"
        ]


async def test_a_full_disk_under_the_journal_holds_alarms_stops_acks_and_recovers(
    run_service: RunService, gateway: Gateway, tmp_path: Path
) -> None:
    """The journal's disk fills up as a reading crosses HH: the alarm is held, not
    lost; ingest stops acknowledging (no alarm can be lost for what the broker still
    holds); once space is back the HH alarm and ``journal_failing`` are recorded and
    every reading is stored — without a restart."""
    registry = write_registry(tmp_path / "registry", ENTERPRISE, TAGS, hh="100")
    with small_tmpfs(tmp_path / "journaldisk", 2048) as disk:
        service = await run_service(
            {"registry": str(registry), "journal.path": str(disk / "journal.db")}
        )
        base_ms = service.clock.now_ms() - 60_000
        publish(gateway, 1, 5, base_ms)
        await eventually(lambda: service.metrics.value("hazwatch_ingest_readings_total") == 50)
        filler = DiskFiller(disk)
        filler.fill()
        # HH on every tag: the journal needs pages the disk no longer has
        gateway.publish([{"tag": t, "v": 500.0} for t in TAGS], base_ms + 6)
        await eventually(lambda: service.alarms.holding, 15, "the journal failing")
        assert service.health()["journal"] == "failing"
        spooled = service.metrics.value("hazwatch_spool_messages_total")
        publish(gateway, 7, 10, base_ms)  # held by the broker, not acknowledged
        await asyncio.sleep(1)
        assert service.metrics.value("hazwatch_spool_messages_total") == spooled
        filler.free()
        await eventually(lambda: not service.alarms.holding, 30, "the journal writes again")
        await eventually(
            lambda: service.metrics.value("hazwatch_spool_messages_total") == spooled + 10,
            60,
            "the held messages taken in",
        )
        await service.alarms.settled()
        hh = [a for a in service.journal.list_alarms(limit=100) if a.type == "HH"]
        assert sorted(a.tag for a in hh) == TAGS  # held, then recorded: none lost
        [failing] = system_alarms(service, "journal_failing")
        assert failing.state == "cleared_unack"
        assert service.metrics.value("hazwatch_alarm_conditions_unrecorded_total") == 0
