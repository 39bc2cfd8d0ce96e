"""Publish a simulated site over MQTT, as real gateways would (DESIGN.md §3.1).

One paho-mqtt client per gateway: every installation has a gateway named
``{installation}-gw``. Plant installations publish batches on
``hz/v1/{enterprise}/{gateway}/data`` with an increasing ``seq``; installations whose
points are all electricity meters publish one value per message on
``hz/v1/{enterprise}/{gateway}/tag/{tag}``. Each gateway announces ``online``
(retained) on its status topic and leaves ``offline`` as its will.

``speed`` compresses scenario time; readings are stamped with the wall-clock time
of publishing, so they stay inside the platform's timestamp window at any speed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.models import Point, PointKind, Registry
from simulators.scenario import Scenario
from simulators.site import SiteModel

log = structlog.get_logger(__name__)

METER_KINDS = frozenset(
    {
        PointKind.RESIDUAL_CURRENT,
        PointKind.CABLE_TEMP,
        PointKind.POWER,
        PointKind.CURRENT,
        PointKind.VOLTAGE,
    }
)
DEFAULT_INTERVAL_S = 5.0


@dataclass
class SimulatedGateway:
    enterprise: str
    gateway: str
    points: list[Point]
    meter: bool
    seq: int = 0
    client: paho.Client | None = None
    connected: threading.Event = field(default_factory=threading.Event)

    @property
    def topic_prefix(self) -> str:
        return f"hz/v1/{self.enterprise}/{self.gateway}"


def gateways_for(registry: Registry) -> list[SimulatedGateway]:
    result = []
    for enterprise in registry.enterprises.values():
        for installation in enterprise.installations:
            if not installation.points:
                continue
            meter = all(p.kind in METER_KINDS for p in installation.points)
            result.append(
                SimulatedGateway(
                    enterprise.id, f"{installation.id}-gw", list(installation.points), meter
                )
            )
    return result


class ScenarioPublisher:
    """Runs a scenario against a broker until ``duration_s`` (or forever with ``loop``)."""

    def __init__(
        self,
        broker_url: str,
        registry: Registry,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        loop: bool = False,
        interval_s: float | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        parts = urlsplit(broker_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 1883
        self._scenario = scenario
        self._model = SiteModel(registry, scenario)
        self._speed = speed
        self._loop = loop
        intervals = [p.interval_s for p in registry.points() if p.interval_s]
        self._interval_s = interval_s or (min(intervals) if intervals else DEFAULT_INTERVAL_S)
        self.gateways = gateways_for(registry)
        self.messages_published = 0

    def _connect(self, gw: SimulatedGateway) -> None:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{gw.enterprise}-{gw.gateway}",
            clean_session=True,
        )
        client.will_set(f"{gw.topic_prefix}/status", b"offline", qos=1, retain=True)

        def on_connect(
            client: paho.Client, _userdata: object, _flags: object, reason: object, _p: object
        ) -> None:
            if not getattr(reason, "is_failure", False):
                client.publish(f"{gw.topic_prefix}/status", b"online", qos=1, retain=True)
                gw.connected.set()

        def on_disconnect(*_args: object) -> None:
            gw.connected.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.connect_async(self._host, self._port, keepalive=30)
        client.loop_start()
        gw.client = client

    def publish_sample(self, t_s: float) -> int:
        """Publish every point's value at scenario time ``t_s``; returns messages sent."""
        now_ms = time.time_ns() // 1_000_000
        sent = 0
        for gw in self.gateways:
            assert gw.client is not None
            if gw.meter:
                for point in gw.points:
                    value = self._model.value(point, t_s)
                    payload = orjson.dumps({"v": value, "ts": now_ms})
                    gw.client.publish(f"{gw.topic_prefix}/tag/{point.tag}", payload, qos=1)
                    sent += 1
            else:
                gw.seq += 1
                readings = [
                    {"tag": p.tag, "v": self._model.value(p, t_s)}
                    if p.kind is not PointKind.STATE
                    else {"tag": p.tag, "v": bool(self._model.value(p, t_s))}
                    for p in gw.points
                ]
                payload = orjson.dumps({"seq": gw.seq, "ts": now_ms, "readings": readings})
                gw.client.publish(f"{gw.topic_prefix}/data", payload, qos=1)
                sent += 1
        self.messages_published += sent
        return sent

    async def run(self) -> None:
        """Connect every gateway, then publish on schedule until done or cancelled."""
        for gw in self.gateways:
            self._connect(gw)
        try:
            await asyncio.gather(
                *(asyncio.to_thread(gw.connected.wait, 30) for gw in self.gateways)
            )
            log.info(
                "simulation_started",
                scenario=self._scenario.name,
                gateways=len(self.gateways),
                speed=self._speed,
            )
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                t_s = 0.0
                while t_s <= self._scenario.duration_s:
                    self.publish_sample(t_s)
                    t_s += self._interval_s
                    wait = started + t_s / self._speed - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)  # the schedule itself, not synchronisation
                log.info("simulation_cycle_done", messages=self.messages_published)
                if not self._loop:
                    return
        finally:
            self.close()

    def close(self) -> None:
        for gw in self.gateways:
            if gw.client is not None:
                # A clean stop: say offline ourselves (the will only fires on a lost link).
                gw.client.publish(f"{gw.topic_prefix}/status", b"offline", qos=1, retain=True)
                gw.client.disconnect()
                gw.client.loop_stop()
                gw.client = None
