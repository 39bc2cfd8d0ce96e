"""``hazwatch run`` SIGKILLed at random moments during a burst of short excursions:
after the restarts every excursion is in the alarm journal, none twice.

A reading's alarm condition is committed by the journal's thread after the reading
is in the spool; the spool's ``delivered`` cursor moves past it only after that
commit, so a kill in between replays the reading to the detectors at the restart —
and the journal ignores a condition older than the one its alarm holds, so an
excursion committed before the kill is not recorded again (docs/alerting.md, "No
alarm lost on a crash").

Real Mosquitto, real influxd, the real command as a subprocess; the gateway publishes
QoS 1 and the broker keeps what arrives while hazwatch is down (its persistent
session). Each point goes past HH and back four times; with nobody acknowledging,
the second and later excursions re-raise the same alarm (cleared_unack → active_unack):
one ``raised`` transition per excursion.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests import test_faults as faults
from tests.helpers import eventually, write_registry
from tests.servers import Influxd, Mosquitto, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENTERPRISE = "C001"
HH = 50.0
PER_MESSAGE = 100


class Service(faults.Service):
    """``hazwatch run --config FILE`` (started, stopped and awaited as in the ingest's
    fault tests) with an HH limit on every point."""

    def __init__(self, workdir: Path, mqtt_url: str, influx_url: str, db: str, points: int) -> None:
        self.console_port = free_port()
        self.tags = [f"X{n:04d}" for n in range(points)]
        write_registry(workdir / "registry", ENTERPRISE, self.tags, hh=str(HH))
        self.config = workdir / "hazwatch.toml"
        self.config.write_text(
            'registry = "registry"\n'
            f'[mqtt]\nurl = "{mqtt_url}"\nclient_id = "hazwatch-alarm-crash"\n'
            '[storage]\nbackend = "influxdb"\n'
            f'[storage.influxdb]\nurl = "{influx_url}"\ndatabase = "{db}"\ntimeout_s = 2\n'
            f'[journal]\npath = "{workdir / "journal.db"}"\n'
            f'[ingest]\nspool_path = "{workdir / "spool.db"}"\n'
            f'[console]\nlisten = "127.0.0.1:{self.console_port}"\n'
        )
        self.journal = workdir / "journal.db"
        self.log = workdir / "hazwatch.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_kib = 0
        self.session: dict[str, str] | None = None  # the console login, on first use

    def excursions(self) -> dict[str, tuple[int, int]]:
        """Per tag: the HH alarms' ``raised`` and ``cleared`` transitions in the journal."""
        if not self.journal.exists():
            return {}
        with sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT a.tag, sum(t.kind = 'raised'), sum(t.kind = 'cleared') "
                "FROM transitions t JOIN alarms a ON a.id = t.alarm_id "
                "WHERE a.type = 'HH' GROUP BY a.tag"
            ).fetchall()
        return {tag: (int(raised), int(cleared)) for tag, raised, cleared in rows}


class Burst(threading.Thread):
    """Every point past HH and back ``rounds`` times, ``PER_MESSAGE`` readings a
    message, QoS 1, about ``rate`` messages a second (each publish waits for its PUBACK)."""

    def __init__(self, port: int, tags: list[str], rounds: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.tags, self.rounds, self.rate = port, tags, rounds, rate
        self.messages = [
            self._message(r, high=high, chunk=tags[i : i + PER_MESSAGE])
            for r in range(rounds)
            for high in (True, False)
            for i in range(0, len(tags), PER_MESSAGE)
        ]
        self.done = threading.Event()
        self.error: BaseException | None = None

    def _message(self, round_: int, *, high: bool, chunk: list[str]) -> bytes:
        base_ms = int(time.time() * 1000) - 600_000  # well inside the accepted window
        ts = base_ms + round_ * 1000 + (0 if high else 500)
        value = HH + 10 if high else HH - 30
        readings = [{"tag": t, "v": value} for t in chunk]
        return orjson.dumps({"ts": ts, "readings": readings})

    def run(self) -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="alarm-crash-gw")
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        try:
            for message in self.messages:
                started = time.monotonic()
                info = client.publish(f"hz/v1/{ENTERPRISE}/gw1/data", message, qos=1)
                info.wait_for_publish(30)
                time.sleep(max(0.0, 1 / self.rate - (time.monotonic() - started)))
        except BaseException as exc:
            self.error = exc
        finally:
            client.disconnect()
            client.loop_stop()
            self.done.set()


async def test_sigkill_during_a_burst_loses_and_doubles_no_excursion(
    tmp_path: Path, mosquitto: Mosquitto, influxd_server: Influxd, influx_db: str
) -> None:
    seed = 17
    rng = random.Random(seed)
    points, rounds, kills = 1000, 4, 3
    service = Service(tmp_path, mosquitto.url, influxd_server.url, influx_db, points)
    service.start()
    try:
        await service.wait_subscribed()
        burst = Burst(mosquitto.port, service.tags, rounds, rate=15)
        burst.start()
        for _ in range(kills):  # at random moments while the burst goes on, and at its end
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            service.stop(signal.SIGKILL)
            service.start()
            await service.wait_subscribed()
        await asyncio.to_thread(burst.done.wait, 120)
        assert burst.error is None, burst.error

        def all_recorded() -> bool:
            found = service.excursions()
            return len(found) == points and all(n == (rounds, rounds) for n in found.values())

        with contextlib.suppress(TimeoutError):  # what is missing is asserted below
            await eventually(all_recorded, 60, "every excursion in the journal")
    finally:
        found = service.excursions()
        if service.proc is not None:
            service.stop(signal.SIGKILL)
    raised = sum(r for r, _ in found.values())
    print(
        f"\nseed {seed}: {kills} SIGKILLs during {len(burst.messages)} messages "
        f"({points} points x {rounds} excursions): {raised} HH raises recorded, "
        f"{sum(1 for r, _ in found.values() if r > rounds)} points with one twice"
    )
    assert set(found) == set(service.tags)
    assert {tag: n for tag, n in found.items() if n != (rounds, rounds)} == {}
