"""A scenario as a timeline of MQTT actions: pure, so the same seed gives the same bytes.

:class:`ScenarioPlayer` walks the scenario: at each sample time (every ``sample_s``,
or each gateway at its points' ``interval_s``) it reads the site
(:mod:`simulators.site`) and turns each connected, talking gateway's values into
messages (:mod:`simulators.gateways`); at each gateway event's time it changes what the
gateways do. The result is a sequence of
:class:`Step` — a scenario second and the actions due then — that the publisher
(:mod:`simulators.publisher`) executes against a broker. Timestamps come from the
``stamp_ms`` function the caller passes (its timebase), so a test can fix them.

Gateways are connected before the first step; ``Connect`` and ``Drop`` only appear for
the ``disconnect`` events of the timeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hazwatch.models import Point, Quality, Registry
from simulators.formats import GatewayFormat, gateway_format
from simulators.gateways import GatewayBehaviour, Message, SiteGateway, gateways_for
from simulators.scenario import (
    ClockSkewEvent,
    DisconnectEvent,
    DuplicateEvent,
    GatewayEvent,
    MalformedEvent,
    OutOfOrderEvent,
    Scenario,
    SilenceEvent,
    sample_interval_s,
)
from simulators.site import SiteModel

GatewayKey = tuple[str, str]


@dataclass(frozen=True)
class Publish:
    gateway: GatewayKey
    message: Message


@dataclass(frozen=True)
class Connect:
    """The gateway connects again (and announces ``online``)."""

    gateway: GatewayKey


@dataclass(frozen=True)
class Drop:
    """The gateway's link is lost without a DISCONNECT: the broker sends its will."""

    gateway: GatewayKey


Action = Publish | Connect | Drop


@dataclass(frozen=True)
class Step:
    t_s: float
    actions: tuple[Action, ...]
    readings: int = 0
    """Readings sent in this step's sample messages (duplicates not counted)."""


@dataclass
class _Gateway:
    site: SiteGateway
    behaviour: GatewayBehaviour
    connected: bool = True
    silent: bool = False


class ScenarioPlayer:
    """The actions of ``scenario`` on the gateways of ``registry``, step by step."""

    def __init__(
        self, registry: Registry, scenario: Scenario, stamp_ms: Callable[[float], int]
    ) -> None:
        self.registry = registry
        self.scenario = scenario
        self.gateways = gateways_for(registry)
        self.formats: dict[GatewayKey, GatewayFormat | None] = {
            g.key: gateway_format(scenario.format, g) for g in self.gateways
        }
        """Each gateway's encoder (``None``: hz-json); the publisher's links share them."""
        self.intervals = {g.key: sample_interval_s(scenario, g.points) for g in self.gateways}
        """Each gateway reports every ``sample_s``, or its points' smallest ``interval_s``."""
        self.interval_s = min(self.intervals.values(), default=sample_interval_s(scenario, ()))
        self._stamp_ms = stamp_ms
        self._gateway_of = {(p.enterprise, p.tag): g.key for g in self.gateways for p in g.points}

    def steps(self, *, until_s: float | None = None, loop: bool = False) -> Iterator[Step]:
        """Every step up to ``until_s`` (default: the scenario's end). Past the end the
        site keeps running with no more events; with ``loop`` the timeline starts over
        every ``duration_s``, for ever."""
        gateways = {
            g.key: _Gateway(g, GatewayBehaviour(g, encoder=self.formats[g.key]))
            for g in self.gateways
        }
        duration = self.scenario.duration_s
        cycle = 0
        while True:
            offset = cycle * duration
            end = duration if until_s is None else until_s
            if loop:
                end = duration - self.interval_s / 2  # the next cycle samples at `duration`
            reconnect = [g.site.key for g in gateways.values() if not g.connected]
            for key in reconnect:
                encoder = self.formats[key]
                if encoder is not None:
                    encoder.reconnect()
            for gateway in gateways.values():
                gateway.behaviour = GatewayBehaviour(
                    gateway.site, seq=gateway.behaviour.seq, encoder=self.formats[gateway.site.key]
                )
                gateway.connected, gateway.silent = True, False
            if reconnect:
                yield Step(offset, tuple(Connect(key) for key in reconnect))
            yield from self._cycle(gateways, offset, end)
            if not loop:
                return
            cycle += 1

    def _cycle(
        self, gateways: dict[GatewayKey, _Gateway], offset: float, end: float
    ) -> Iterator[Step]:
        """One pass of the timeline, its times shifted by ``offset``."""
        site = SiteModel(self.registry, self.scenario)
        changes: list[tuple[float, int, GatewayEvent, bool]] = []
        for n, event in enumerate(self.scenario.events):
            if isinstance(event, GatewayEvent):
                changes.append((event.at_s, n, event, True))
                if isinstance(event, DisconnectEvent | SilenceEvent) and event.until_s is not None:
                    changes.append((event.until_s, n, event, False))
        changes.sort(key=lambda c: (c[0], c[1]))
        samples_taken = dict.fromkeys(gateways, 0)  # per gateway: n·interval, no drift
        while True:
            due = {key: n * self.intervals[key] for key, n in samples_taken.items()}
            sample_t = min(due.values(), default=math.inf)
            t = min(sample_t, changes[0][0]) if changes else sample_t
            if t > end:
                return
            actions: list[Action] = []
            while changes and changes[0][0] <= t:
                _, _, event, begins = changes.pop(0)
                gateway = gateways[event.enterprise, event.gateway]
                actions += self._change(gateway, event, begins, offset + t)
            readings = 0
            if sample_t <= t:
                values: dict[GatewayKey, list[tuple[Point, float, Quality]]] = {}
                for sample in site.sample(t):
                    key = self._gateway_of[sample.point.enterprise, sample.point.tag]
                    if due[key] <= t:
                        values.setdefault(key, []).append(
                            (sample.point, sample.value, sample.quality)
                        )
                stamp = self._stamp_ms(offset + t)
                for key, gateway in gateways.items():
                    if key not in values:
                        continue
                    samples_taken[key] += 1
                    if gateway.connected and not gateway.silent:
                        messages = gateway.behaviour.messages(values[key], stamp)
                        actions += [Publish(key, message) for message in messages]
                        readings += len(values[key])
            yield Step(offset + t, tuple(actions), readings)

    def _change(
        self, gateway: _Gateway, event: GatewayEvent, begins: bool, t: float
    ) -> list[Action]:
        key = gateway.site.key
        behaviour = gateway.behaviour
        if isinstance(event, DisconnectEvent):
            if begins == gateway.connected:
                gateway.connected = not begins
                if begins:
                    behaviour.discard_held()
                    return [Drop(key)]
                if behaviour.encoder is not None:
                    behaviour.encoder.reconnect()
                return [Connect(key)]
        elif isinstance(event, SilenceEvent):
            gateway.silent = begins
        elif isinstance(event, ClockSkewEvent):
            behaviour.skew_ms = round(event.skew_s * 1000)
        elif isinstance(event, DuplicateEvent):
            behaviour.duplicates += event.count
        elif isinstance(event, OutOfOrderEvent):
            behaviour.swaps += event.count
        elif isinstance(event, MalformedEvent) and gateway.connected:
            return [Publish(key, behaviour.malformed(event.kind, self._stamp_ms(t)))]
        return []
