"""Publish a scenario over MQTT, as real gateways would (docs/contract.md §1).

:class:`GatewayLink` is one gateway's paho connection (QoS 1, its own network thread):
it announces ``online`` (retained) when connected and leaves ``offline`` as its will; a
``Drop`` closes its socket without a DISCONNECT, so the broker publishes the will — what
a power cut or a cut cable does. :class:`ScenarioPublisher` connects every gateway,
then executes the :class:`~simulators.player.ScenarioPlayer`'s steps on the schedule of
a :mod:`~simulators.timebase` and keeps count of what it sent and of how far it fell
behind schedule (a busy machine at a high speed).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.errors import ConfigError
from hazwatch.models import Registry
from simulators.broker import Broker
from simulators.formats import GatewayFormat
from simulators.gateways import Message, SiteGateway
from simulators.logins import GatewayLogins
from simulators.player import Connect, Drop, Publish, ScenarioPlayer
from simulators.scenario import Scenario
from simulators.timebase import CompressedTime, Timebase

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 10.0
ONLINE, OFFLINE = b"online", b"offline"


class GatewayLink:
    """One simulated gateway's MQTT connection."""

    def __init__(
        self, gateway: SiteGateway, broker: Broker, encoder: GatewayFormat | None = None
    ) -> None:
        self.gateway = gateway
        self._broker = broker
        self._encoder = encoder
        """The gateway's format when not hz-json: its will, hello, goodbye and commands."""
        self._client: paho.Client | None = None
        self._last: paho.MQTTMessageInfo | None = None
        self._stopping: list[asyncio.Task[None]] = []
        """Network threads of dropped connections, finishing."""

    async def connect(self) -> None:
        """Connect (clean session) and announce ``online``; ``ConfigError`` if the broker
        does not answer within :data:`CONNECT_TIMEOUT_S`."""
        gw = self.gateway
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{gw.enterprise}-{gw.gateway}",
            clean_session=True,
        )
        encoder = self._encoder
        if encoder is None:
            client.will_set(gw.status_topic, OFFLINE, qos=1, retain=True)
        elif (will := encoder.will()) is not None:
            client.will_set(will.topic, will.payload, qos=1, retain=False)
        broker = self._broker
        if broker.username:
            client.username_pw_set(broker.username, broker.password or None)
        broker.use_tls(client)
        connected = threading.Event()

        def on_connect(
            client: paho.Client, _userdata: object, _flags: object, reason: object, _p: object
        ) -> None:
            if not getattr(reason, "is_failure", False):
                if encoder is None:
                    client.publish(gw.status_topic, ONLINE, qos=1, retain=True)
                else:
                    for message in encoder.hello():
                        client.publish(message.topic, message.payload, qos=1)
                    for topic in encoder.commands():
                        client.subscribe(topic, qos=0)
                connected.set()

        def on_message(_client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
            if encoder is not None:
                encoder.on_command(message.topic, bytes(message.payload))

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect_async(broker.host, broker.port, keepalive=30)
        client.loop_start()
        if not await asyncio.to_thread(connected.wait, CONNECT_TIMEOUT_S):
            client.loop_stop()
            raise ConfigError(
                f"gateway {gw.enterprise}/{gw.gateway}: no answer from the MQTT broker at "
                f"{broker.url} within {CONNECT_TIMEOUT_S:g} s"
            )
        self._client = client

    def publish(self, message: Message) -> None:
        assert self._client is not None, "connect first"
        self._last = self._client.publish(message.topic, message.payload, qos=1)

    async def drain(self) -> None:
        """Wait until the broker acknowledged everything published so far."""
        last, self._last = self._last, None
        if last is not None:
            await asyncio.to_thread(last.wait_for_publish, PUBLISH_TIMEOUT_S)

    async def drop(self) -> None:
        """Lose the link: the socket closes with no DISCONNECT, the broker sends the will."""
        await self.drain()  # what was sent before the cut arrives; nothing after it
        client, self._client = self._client, None
        if client is None:
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)  # the broker sees the connection end, at once
        # Told to stop, paho's thread does not reconnect — but it may first sit out its
        # reconnect delay (1 s): let it, off the schedule.
        self._stopping.append(asyncio.create_task(asyncio.to_thread(_stop, client, sock)))

    async def close(self) -> None:
        """A clean stop: say ``offline`` (the will only fires on a lost link), disconnect."""
        stopping, self._stopping = self._stopping, []
        await asyncio.gather(*stopping)
        client, self._client = self._client, None
        if client is None:
            return
        self._last = None
        if self._encoder is None:
            goodbye = [Message(self.gateway.status_topic, OFFLINE)]
        else:
            goodbye = self._encoder.goodbye()
        infos = [
            client.publish(m.topic, m.payload, qos=1, retain=self._encoder is None) for m in goodbye
        ]
        try:
            for info in infos:
                await asyncio.to_thread(info.wait_for_publish, PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:  # paho: not connected any more
            log.info("gateway_close_unclean", gateway=self.gateway.gateway, error=str(exc))
        client.disconnect()
        client.loop_stop()


def _stop(client: paho.Client, sock: object) -> None:
    client.loop_stop()
    if isinstance(sock, socket.socket):
        sock.close()


class ScenarioPublisher:
    """Publishes a scenario to ``broker_url``: ``async with`` connects the gateways,
    :meth:`run` plays the timeline. Without a ``timebase`` scenario time is compressed
    onto the wall clock by ``speed`` (``hazwatch simulate``, the demo)."""

    def __init__(
        self,
        broker: Broker,
        registry: Registry,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        loop: bool = False,
        timebase: Timebase | None = None,
        until_s: float | None = None,
        on_step: Callable[[float], None] | None = None,
        logins: GatewayLogins | None = None,
    ) -> None:
        """``logins``: each gateway connects with the login that may write its topics
        (:mod:`simulators.logins`); without, all with ``broker``'s credentials."""
        self.timebase = timebase or CompressedTime(speed)
        self.player = ScenarioPlayer(registry, scenario, self.timebase.stamp_ms)
        self._loop = loop
        self._until_s = until_s
        self._on_step = on_step
        self.links: dict[tuple[str, str], GatewayLink] = {}
        for g in self.player.gateways:
            encoder = self.player.formats[g.key]
            own = broker
            if logins is not None:
                topic = f"{g.topic_prefix}/data" if encoder is None else encoder.sample_topic()
                own = logins.broker_for(broker, topic, f"gateway {g.enterprise}/{g.gateway}")
            self.links[g.key] = GatewayLink(g, own, encoder)
        self.messages_published = 0
        self.readings_published = 0
        self.max_lag_s = 0.0
        """How far (scenario seconds) publishing fell behind schedule at worst."""

    async def __aenter__(self) -> Self:
        try:
            await asyncio.gather(*(link.connect() for link in self.links.values()))
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Every gateway says ``offline`` and disconnects (idempotent)."""
        await asyncio.gather(*(link.close() for link in self.links.values()))

    async def run(self) -> None:
        """Start scenario time and play the timeline until done (or cancelled)."""
        self.timebase.start()
        log.info(
            "simulation_started",
            scenario=self.player.scenario.name,
            gateways=len(self.links),
            speed=self.timebase.speed,
        )
        for step in self.player.steps(until_s=self._until_s, loop=self._loop):
            wait = self.timebase.wall_s_until(step.t_s)
            if wait > 0:
                await asyncio.sleep(wait)  # the schedule itself, not synchronisation
            else:
                self.max_lag_s = max(self.max_lag_s, -wait * self.timebase.speed)
            for action in step.actions:
                link = self.links[action.gateway]
                if isinstance(action, Publish):
                    link.publish(action.message)
                    self.messages_published += 1
                elif isinstance(action, Drop):
                    await link.drop()
                elif isinstance(action, Connect):
                    await link.connect()
            self.readings_published += step.readings
            if self._on_step is not None:
                self._on_step(step.t_s)
        await asyncio.gather(*(link.drain() for link in self.links.values()))
        log.info("simulation_done", messages=self.messages_published)
