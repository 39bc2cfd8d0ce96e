"""A simulated site: the value of every registered point at scenario time ``t``.

Pure and deterministic for a given seed: the publisher decides *when* to sample, this
decides *what* the instruments read. Issue 7 replaces the flat baselines with plant
models (tank mass balance, reactor heat balance, gas dispersion).
"""

from __future__ import annotations

import random
from collections import defaultdict

from hazwatch.models import Point, PointKind, Registry
from simulators.scenario import Event, Scenario


def baseline(point: Point) -> float:
    """A normal operating value: the middle of the band between the low and high limits."""
    if point.kind is PointKind.STATE:
        return 0.0
    lower = next((x for x in (point.l, point.ll, point.min) if x is not None), 0.0)
    upper = next((x for x in (point.h, point.hh, point.max) if x is not None), lower + 1.0)
    return (lower + upper) / 2


class SiteModel:
    def __init__(self, registry: Registry, scenario: Scenario) -> None:
        self.points = registry.points()
        self._rng = random.Random(scenario.seed)  # noqa: S311 - simulation noise, not crypto
        self._start: dict[tuple[str, str], float] = {}
        self._noise: dict[tuple[str, str], float] = {}
        self._events: dict[tuple[str, str], list[Event]] = defaultdict(list)
        signals = {(s.enterprise, s.tag): s for s in scenario.signals}
        for point in self.points:
            key = (point.enterprise, point.tag)
            signal = signals.get(key)
            start = signal.start if signal and signal.start is not None else None
            self._start[key] = baseline(point) if start is None else start
            fraction = signal.noise if signal and signal.noise is not None else scenario.noise
            span = (point.max - point.min) if point.max is not None and point.min is not None else 1
            self._noise[key] = 0.0 if point.kind is PointKind.STATE else fraction * span
        for event in sorted(scenario.events, key=lambda e: e.at_s):
            self._events[(event.enterprise, event.tag)].append(event)

    def value(self, point: Point, t_s: float) -> float:
        key = (point.enterprise, point.tag)
        value = self._start[key]
        for event in self._events.get(key, ()):
            if t_s < event.at_s:
                break
            progress = 1.0 if event.over_s == 0 else min(1.0, (t_s - event.at_s) / event.over_s)
            value += (event.ramp_to - value) * progress
        value += self._rng.gauss(0.0, self._noise[key]) if self._noise[key] else 0.0
        if point.min is not None:
            value = max(point.min, value)
        if point.max is not None:
            value = min(point.max, value)
        return round(value, 4)

    def sample(self, t_s: float) -> list[tuple[Point, float]]:
        return [(point, self.value(point, t_s)) for point in self.points]
