"""A simulated site: what every registered instrument reads at scenario time ``t``.

Pure and deterministic for a given seed. The plant models (:mod:`simulators.plant`)
are integrated with a fixed step of :data:`STEP_S`, and ``set`` events change their
parameters at exactly their ``at_s`` (or ramp them). Each registered point then reads
through a *sensor*:

- its true value — a model's output, or a baseline (the middle of its normal band; 0
  for gas detectors, states and the power draw of a suspended enterprise) moved by
  ``ramp`` events;
- plus Gaussian noise from its own generator, seeded by the scenario's seed and the
  point (so one point's noise never depends on another point or on what is sent);
- plus the sensor faults active at ``t``: drift, a noise burst; clamped to the
  instrument range; a stuck transmitter repeats its first value of the span; an
  instrument fault sends quality ``bad`` or a value outside the range.

The publisher decides *when* to sample; this decides *what* the instruments read.

>>> from hazwatch.models import Enterprise, Installation, Point, Registry
>>> point = Point(enterprise="E", installation="U", tag="T1", name="T1", kind="other",
...               min=0, max=100, l=10, h=50)
>>> registry = Registry(enterprises={"E": Enterprise(id="E", name="E", grid="G",
...     installations=(Installation(id="U", name="U", grade=3, points=(point,)),))})
>>> site = SiteModel(registry, Scenario(name="x", seed=7, noise=0))
>>> [(s.point.tag, s.value) for s in site.sample(0.0)]   # the middle of [l, h]
[('T1', 30.0)]
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hazwatch.models import EnterpriseStatus, Point, PointKind, Quality, Registry
from simulators.plant import PlantModel, build_model
from simulators.scenario import (
    DriftEvent,
    FaultEvent,
    NoiseBurstEvent,
    PointEvent,
    RampEvent,
    Scenario,
    SetEvent,
    StuckEvent,
)

STEP_S = 0.25
"""Integration step of the plant models (their fastest time constant is a few seconds)."""
DECIMALS = 4
"""Values are sent rounded, as instruments resolve them."""
OUT_OF_RANGE_FRACTION = 0.1
"""An out-of-range fault reads this fraction of the span past the instrument's limit."""
_GAS = frozenset({PointKind.GAS_LEL, PointKind.GAS_TOXIC})
_DRAW = frozenset({PointKind.POWER, PointKind.CURRENT})


@dataclass(frozen=True, slots=True)
class Sample:
    point: Point
    value: float
    quality: Quality = Quality.GOOD


def baseline(point: Point, suspended: bool = False) -> float:
    """A normal value for a point without a model: the middle of the band between its
    low and high limits — but 0 for gas detectors (clean air), states (off) and the
    power or current of a suspended enterprise (nothing running)."""
    if point.kind is PointKind.STATE or point.kind in _GAS or (suspended and point.kind in _DRAW):
        return 0.0 if point.min is None else max(0.0, point.min)
    lower = next((x for x in (point.l, point.ll, point.min) if x is not None), 0.0)
    upper = next((x for x in (point.h, point.hh, point.max) if x is not None), lower + 1.0)
    return (lower + upper) / 2


@dataclass
class _ParameterRamp:
    model: PlantModel
    name: str
    start: float
    end: float
    t0: float
    t1: float

    def value(self, t_s: float) -> float:
        progress = min(1.0, (t_s - self.t0) / (self.t1 - self.t0))
        return self.start + (self.end - self.start) * progress


@dataclass
class _Sensor:
    point: Point
    rng: random.Random
    sigma: float
    model: PlantModel | None = None
    role: str = ""
    start: float = 0.0
    ramps: list[RampEvent] = field(default_factory=list)
    faults: list[PointEvent] = field(default_factory=list)
    held: dict[int, float] = field(default_factory=dict)
    """A stuck span's value, by the span's index in ``faults``."""

    def true_value(self, t_s: float) -> float:
        if self.model is not None:
            return self.model.outputs()[self.role]
        value = self.start
        for ramp in self.ramps:
            if t_s < ramp.at_s:
                break
            progress = 1.0 if ramp.over_s == 0 else min(1.0, (t_s - ramp.at_s) / ramp.over_s)
            value += (ramp.to - value) * progress
        return value


class SiteModel:
    """Every registered point of ``registry``, as ``scenario`` makes it behave."""

    def __init__(self, registry: Registry, scenario: Scenario) -> None:
        self._scenario = scenario
        self._t_s = 0.0
        self.models = {spec.id: build_model(spec, scenario.start_hour) for spec in scenario.models}
        bound = {
            (spec.enterprise, tag): (spec.id, role, spec.noise(role))
            for spec in scenario.models
            for role, tag in spec.bindings().items()
        }
        signals = {(s.enterprise, s.tag): s for s in scenario.signals}
        suspended = {
            e.id for e in registry.enterprises.values() if e.status is EnterpriseStatus.SUSPENDED
        }
        self._sensors: list[_Sensor] = []
        by_point: dict[tuple[str, str], _Sensor] = {}
        for point in registry.points():
            key = (point.enterprise, point.tag)
            signal = signals.get(key)
            rng = random.Random(f"{scenario.seed}:{point.enterprise}:{point.tag}")  # noqa: S311 - simulated noise
            if key in bound:
                model_id, role, sigma = bound[key]
                if signal is not None and signal.noise is not None:
                    sigma = signal.noise
                sensor = _Sensor(point, rng, sigma, self.models[model_id], role)
            else:
                start = baseline(point, point.enterprise in suspended)
                if signal is not None and signal.start is not None:
                    start = signal.start
                fraction = signal.noise if signal and signal.noise is not None else scenario.noise
                span = (
                    point.max - point.min if point.max is not None and point.min is not None else 1
                )
                sigma = 0.0 if point.kind is PointKind.STATE else fraction * span
                sensor = _Sensor(point, rng, sigma, start=start)
            self._sensors.append(sensor)
            by_point[key] = sensor
        for event in sorted(scenario.events, key=lambda e: e.at_s):
            if isinstance(event, RampEvent):
                by_point[event.enterprise, event.tag].ramps.append(event)
            elif isinstance(event, StuckEvent | DriftEvent | NoiseBurstEvent | FaultEvent):
                by_point[event.enterprise, event.tag].faults.append(event)
        self._pending = sorted(
            (e for e in scenario.events if isinstance(e, SetEvent)), key=lambda e: e.at_s
        )
        self._ramps: list[_ParameterRamp] = []

    # --- the process -------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Integrate the models up to ``t_s``, applying ``set`` events at their time."""
        while self._t_s < t_s or (self._pending and self._pending[0].at_s <= t_s):
            target = t_s
            if self._pending and self._pending[0].at_s < target:
                target = self._pending[0].at_s
            while self._t_s < target:
                dt = min(STEP_S, target - self._t_s)
                for ramp in self._ramps:
                    setattr(ramp.model, ramp.name, ramp.value(self._t_s))
                for model in self.models.values():
                    model.step(dt)
                self._t_s += dt
            self._t_s = max(self._t_s, target)
            for ramp in self._ramps:
                if ramp.t1 <= self._t_s:
                    setattr(ramp.model, ramp.name, ramp.end)
            self._ramps = [r for r in self._ramps if r.t1 > self._t_s]
            while self._pending and self._pending[0].at_s <= self._t_s:
                self._apply(self._pending.pop(0))

    def _apply(self, event: SetEvent) -> None:
        model = self.models[event.model]
        for name, value in event.values.items():
            self._ramps = [r for r in self._ramps if (r.model, r.name) != (model, name)]
            if event.ramp_s and not isinstance(value, bool):
                start = float(getattr(model, name))
                end = event.at_s + event.ramp_s
                self._ramps.append(
                    _ParameterRamp(model, name, start, float(value), event.at_s, end)
                )
            else:
                setattr(model, name, value)

    # --- the instruments -----------------------------------------------------------------

    def sample(self, t_s: float) -> list[Sample]:
        """What every instrument reads at ``t_s`` (not before the last sample)."""
        self.advance_to(t_s)
        return [self._read(sensor, t_s) for sensor in self._sensors]

    def _read(self, sensor: _Sensor, t_s: float) -> Sample:
        point = sensor.point
        value = sensor.true_value(t_s)
        if sensor.sigma:
            value += sensor.rng.gauss(0.0, sensor.sigma)
        quality = Quality.GOOD
        stuck: int | None = None
        for n, fault in enumerate(sensor.faults):
            if not fault.at_s <= t_s < self._scenario.until(fault):
                if isinstance(fault, StuckEvent):
                    sensor.held.pop(n, None)
                continue
            if isinstance(fault, DriftEvent):
                value += fault.rate_per_min * (t_s - fault.at_s) / 60
            elif isinstance(fault, NoiseBurstEvent):
                value += sensor.rng.gauss(0.0, fault.sigma)
            elif isinstance(fault, StuckEvent):
                stuck = n
        if point.kind is PointKind.STATE:
            value = 1.0 if value >= 0.5 else 0.0  # a digital input's threshold
        value = _clamp(round(value, DECIMALS), point)
        if stuck is not None:
            value = sensor.held.setdefault(stuck, value)
        for fault in sensor.faults:
            if isinstance(fault, FaultEvent) and fault.at_s <= t_s < self._scenario.until(fault):
                if fault.mode == "bad_quality":
                    quality = Quality.BAD
                else:
                    value = _out_of_range(point)
        return Sample(point, value, quality)


def _clamp(value: float, point: Point) -> float:
    """Transmitters saturate at their range: a tank overfilling past the gauge reads max."""
    if point.min is not None:
        value = max(point.min, value)
    if point.max is not None:
        value = min(point.max, value)
    return value


def _out_of_range(point: Point) -> float:
    """A reading past the instrument's range (a broken 4-20 mA loop reads below 4 mA)."""
    span = (point.max - point.min) if point.max is not None and point.min is not None else 1.0
    if point.max is not None:
        return round(point.max + OUT_OF_RANGE_FRACTION * span, DECIMALS)
    assert point.min is not None  # the scenario check requires a range
    return round(point.min - OUT_OF_RANGE_FRACTION * span, DECIMALS)
