"""Scenario files: a simulated site, what happens to it when, and the alarms it must raise.

A scenario is TOML (the full format, with every event and model, is in
docs/scenarios.md)::

    name = "Tank 101 overfill"
    duration_s = 360          # scenario seconds from the run's start
    seed = 42                 # same seed, same published values

    plant = "../site.toml"    # optional: the site in normal operation, built on

    [[models]]                # plant models bound to registry points
    type = "tank"
    id = "TK101"
    enterprise = "E001"
    level = "TK101_LT"
    level_m = 9.6
    inflow_m3h = 360
    inlet_open = true

    [[events]]                # the timeline: process changes, sensor and gateway faults
    at_s = 300
    type = "set"
    model = "TK101"
    inlet_open = false

    [[expect]]                # alarms the pipeline must raise, and when
    type = "HH"
    tag = "TK101_LT"
    after_s = 270
    before_s = 295

Every registered point is simulated: bound to a model, or a baseline with seeded noise
(``[[signals]]`` sets a baseline's start and noise). :func:`load_scenario` checks the
whole file against the registry and raises ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detectors.normal_model import NAME_SUFFIX
from hazwatch.errors import ConfigError
from hazwatch.models import AlarmType, EnterpriseStatus, Point, Registry
from simulators.formats import FORMATS, FormatName
from simulators.gateways import MalformedKind, gateways_for
from simulators.plant import AnySpec, ModelSpec


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Signal(_Frozen):
    """A point without a model: its baseline value and noise."""

    enterprise: str
    tag: str
    start: float | None = None
    """Baseline value (default: the middle of its normal band; 0 for gas and states)."""
    noise: float | None = Field(default=None, ge=0)
    """One standard deviation, as a fraction of the instrument range (modelled points:
    in the point's unit)."""


# --- events ------------------------------------------------------------------------------


class _Event(_Frozen):
    at_s: float = Field(ge=0)


class _Span(_Event):
    until_s: float | None = None
    """When the condition ends (default: it lasts to the end of the run)."""


class _OnPoint(_Span):
    enterprise: str
    tag: str


class _OnGateway(_Event):
    enterprise: str
    gateway: str


class SetEvent(_Event):
    """Change model parameters (``inlet_open = false``, ``source_strength = 1440``...)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    type: Literal["set"]
    model: str
    ramp_s: float = Field(default=0.0, ge=0)
    """Numbers move linearly to the new value over this time; on/off values switch."""

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RampEvent(_Event):
    """A point without a model moves linearly to ``to`` over ``over_s`` (0: a step)."""

    type: Literal["ramp"]
    enterprise: str
    tag: str
    to: float
    over_s: float = Field(default=0.0, ge=0)


class StuckEvent(_OnPoint):
    """The transmitter freezes: it repeats the value of its first sample in the span."""

    type: Literal["stuck"]


class DriftEvent(_OnPoint):
    """A calibration drift: an offset growing by ``rate_per_min`` (gone at ``until_s``)."""

    type: Literal["drift"]
    rate_per_min: float


class NoiseBurstEvent(_OnPoint):
    """Extra noise of ``sigma`` (the point's unit): interference, a loose connection."""

    type: Literal["noise_burst"]
    sigma: float = Field(gt=0)


class FaultEvent(_OnPoint):
    """An instrument fault: quality ``bad``, or a value outside the instrument range."""

    type: Literal["fault"]
    mode: Literal["bad_quality", "out_of_range"] = "bad_quality"


class DisconnectEvent(_OnGateway):
    """The link drops (power cut, cable): the broker publishes the gateway's will
    (``offline``); it reconnects at ``until_s`` and says ``online``."""

    type: Literal["disconnect"]
    until_s: float | None = None


class SilenceEvent(_OnGateway):
    """The gateway stays connected but sends nothing (a hung application)."""

    type: Literal["silence"]
    until_s: float | None = None


class ClockSkewEvent(_OnGateway):
    """The gateway's clock is off by ``skew_s`` (negative: behind) from ``at_s`` on."""

    type: Literal["clock_skew"]
    skew_s: float


class DuplicateEvent(_OnGateway):
    """The next ``count`` messages are each sent twice, same ``seq``."""

    type: Literal["duplicate"]
    count: int = Field(default=1, ge=1)


class OutOfOrderEvent(_OnGateway):
    """The next ``count`` messages are each delivered after the one that follows it."""

    type: Literal["out_of_order"]
    count: int = Field(default=1, ge=1)


class MalformedEvent(_OnGateway):
    """One broken message on the gateway's data topic (``kind``: docs/scenarios.md)."""

    type: Literal["malformed"]
    kind: MalformedKind


PointEvent = StuckEvent | DriftEvent | NoiseBurstEvent | FaultEvent
GatewayEvent = (
    DisconnectEvent
    | SilenceEvent
    | ClockSkewEvent
    | DuplicateEvent
    | OutOfOrderEvent
    | MalformedEvent
)
Event = Annotated[SetEvent | RampEvent | PointEvent | GatewayEvent, Field(discriminator="type")]


# --- expectations and premises -------------------------------------------------------------


class Expectation(_Frozen):
    """An alarm the pipeline must raise: ``type`` on ``tag`` (GATEWAY_OFFLINE: the
    gateway id), raised between ``after_s`` and ``before_s`` (scenario seconds)."""

    type: AlarmType
    tag: str
    enterprise: str | None = None
    """Any enterprise when not given."""
    after_s: float = Field(default=0.0, ge=0)
    before_s: float | None = None
    """Default: the end of the run."""
    optional: bool = False
    """May or may not be raised: neither a failure when missing nor unexpected."""

    @property
    def what(self) -> str:
        where = f"{self.enterprise}/{self.tag}" if self.enterprise else self.tag
        return f"{self.type.value} {where}"


class EnterprisePremise(_Frozen):
    """What the scenario assumes of an enterprise, over what the registry says."""

    status: EnterpriseStatus


class Scenario(_Frozen):
    name: str
    description: str = ""
    plant: str | None = None
    """A file of ``[[models]]`` and ``[[signals]]`` the scenario builds on (relative to
    the scenario): the site in normal operation. The scenario's own tables change it —
    a model of the same ``id`` takes the plant's with the keys given replaced, a signal
    of the same point replaces the plant's."""
    duration_s: float = Field(default=300, gt=0)
    seed: int = 0
    noise: float = Field(default=0.005, ge=0)
    """Default noise of points without a model, as a fraction of the instrument range."""
    sample_s: float | None = Field(default=None, gt=0)
    """How often gateways report (default: each gateway its points' smallest
    ``interval_s``)."""
    format: FormatName = "hz-json"
    """What the gateways speak (simulators/formats.py); ``--format`` overrides it."""
    start_hour: float = Field(default=12.0, ge=0, lt=24)
    """Local time of day at t = 0, for hourly load profiles."""
    enterprises: dict[str, EnterprisePremise] = {}
    models: tuple[ModelSpec, ...] = ()
    signals: tuple[Signal, ...] = ()
    events: tuple[Event, ...] = ()
    expect: tuple[Expectation, ...] = ()

    @model_validator(mode="after")
    def _times_within_the_run(self) -> Scenario:
        for n, event in enumerate(self.events):
            where = f"events[{n}] ({event.type})"
            if event.at_s >= self.duration_s:
                raise ValueError(f"{where}: at_s {event.at_s:g} is not before duration_s")
            until = getattr(event, "until_s", None)
            if until is not None and not event.at_s < until <= self.duration_s:
                raise ValueError(
                    f"{where}: until_s {until:g} must lie after at_s, up to duration_s"
                )
        for n, expectation in enumerate(self.expect):
            before = self.window(expectation)[1]
            if not expectation.after_s <= before <= self.duration_s:
                raise ValueError(
                    f"expect[{n}] ({expectation.what}): expected after_s <= before_s <= "
                    f"duration_s, got {expectation.after_s:g}, {before:g}, {self.duration_s:g}"
                )
        return self

    def window(self, expectation: Expectation) -> tuple[float, float]:
        before = self.duration_s if expectation.before_s is None else expectation.before_s
        return expectation.after_s, before

    def until(self, event: _Span | DisconnectEvent | SilenceEvent) -> float:
        return self.duration_s if event.until_s is None else event.until_s


# --- loading and checking ------------------------------------------------------------------


def load_scenario(path: Path, registry: Registry) -> Scenario:
    """Read and validate a scenario against the registry; ``ConfigError`` says where."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: scenario file not found") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc}") from exc
    if isinstance(data.get("plant"), str):
        data = _on_plant(data, path.parent / data["plant"], path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
    problem = next(iter(_problems(scenario, registry)), None)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")
    return scenario


def _on_plant(data: dict[str, Any], plant_file: Path, path: Path) -> dict[str, Any]:
    """The scenario's tables over the plant's (see :attr:`Scenario.plant`)."""
    try:
        plant = tomllib.loads(plant_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: plant: cannot read {plant_file}: {exc}") from exc
    unknown = sorted(set(plant) - {"models", "signals"})
    if unknown:
        raise ConfigError(
            f"{plant_file}: only [[models]] and [[signals]] belong here, got {unknown}"
        )
    models = {m.get("id"): dict(m) for m in plant.get("models", [])}
    for model in data.get("models", []):
        models[model.get("id")] = {**models.get(model.get("id"), {}), **model}
    signals = {(s.get("enterprise"), s.get("tag")): s for s in plant.get("signals", [])}
    for signal in data.get("signals", []):
        signals[signal.get("enterprise"), signal.get("tag")] = signal
    return {**data, "models": list(models.values()), "signals": list(signals.values())}


def _where(loc: tuple[int | str, ...]) -> str:
    """``("events", 3, "stuck", "tag")`` → ``events[3] (stuck).tag``."""
    text = ""
    for n, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif n >= 2 and isinstance(loc[n - 1], int) and loc[0] in ("events", "models"):
            text += f" ({part})"  # the union member pydantic chose by ``type``
        else:
            text += f".{part}" if text else part
    return text


def _problems(scenario: Scenario, registry: Registry) -> Iterable[str]:
    """Everything in the scenario that the registry contradicts (first one wins)."""
    gateways = {g.key for g in gateways_for(registry)}
    for eid in scenario.enterprises:
        if eid not in registry.enterprises:
            yield f"enterprises.{eid}: enterprise {eid} is not in the registry"
    modelled: dict[tuple[str, str], str] = {}
    ids: set[str] = set()
    for n, spec in enumerate(scenario.models):
        where = f"models[{n}] ({spec.type} {spec.id})"
        if spec.id in ids:
            yield f"{where}: id {spec.id!r} is used by another model"
        ids.add(spec.id)
        units = set()
        for role, tag in spec.bindings().items():
            point = registry.point(spec.enterprise, tag)
            if point is None:
                yield f"{where}: {role} = {tag!r}: point {spec.enterprise}/{tag} is not registered"
                continue
            if point.kind.value not in spec.kinds(role):
                yield (
                    f"{where}: {role} = {tag!r}: expected a point of kind "
                    f"{' or '.join(spec.kinds(role))}, got {point.kind.value}"
                )
            if (spec.enterprise, tag) in modelled:
                yield f"{where}: {tag} is already driven by model {modelled[spec.enterprise, tag]}"
            modelled[spec.enterprise, tag] = spec.id
            units.add(point.unit)
        if spec.type == "gas_release" and len(units) > 1:
            yield f"{where}: its detectors measure in different units ({', '.join(sorted(units))})"
    for n, signal in enumerate(scenario.signals):
        yield from _point_problems(f"signals[{n}]", signal.enterprise, signal.tag, registry)
        if signal.start is not None and (signal.enterprise, signal.tag) in modelled:
            yield (
                f"signals[{n}]: start: {signal.enterprise}/{signal.tag} follows model "
                f"{modelled[signal.enterprise, signal.tag]}; only its noise can be set here"
            )
    specs = {spec.id: spec for spec in scenario.models}
    for n, event in enumerate(scenario.events):
        where = f"events[{n}] ({event.type})"
        if isinstance(event, SetEvent):
            yield from _set_problems(where, event, specs)
        elif isinstance(event, GatewayEvent):
            if (event.enterprise, event.gateway) not in gateways:
                known = ", ".join(g for e, g in sorted(gateways) if e == event.enterprise)
                yield (
                    f"{where}: gateway {event.enterprise}/{event.gateway} is not in the "
                    f"registry (gateways are named <installation>-gw: {known or 'none'})"
                )
        else:
            yield from _point_problems(where, event.enterprise, event.tag, registry)
            point = registry.point(event.enterprise, event.tag)
            if isinstance(event, RampEvent) and (event.enterprise, event.tag) in modelled:
                yield f"{where}: {event.enterprise}/{event.tag} follows a model; use a set event"
            out_of_range = isinstance(event, FaultEvent) and event.mode == "out_of_range"
            if out_of_range and point and point.min is None and point.max is None:
                yield f"{where}: {event.tag} has no instrument range (min/max) to leave"
    for n, expectation in enumerate(scenario.expect):
        yield from _expectation_problems(f"expect[{n}]", expectation, registry, gateways)


def _point_problems(where: str, enterprise: str, tag: str, registry: Registry) -> Iterable[str]:
    if registry.point(enterprise, tag) is None:
        yield f"{where}: point {enterprise}/{tag} is not in the registry"


def _set_problems(where: str, event: SetEvent, specs: dict[str, AnySpec]) -> Iterable[str]:
    spec = specs.get(event.model)
    if spec is None:
        defined = ", ".join(specs) or "none"
        yield f"{where}: model {event.model!r} is not defined (models: {defined})"
        return
    if not event.values:
        yield f"{where}: nothing to set (settable: {', '.join(spec.SETTABLE)})"
    for key, value in event.values.items():
        if key not in spec.SETTABLE:
            yield (
                f"{where}: {key}: not a parameter a {spec.type} model can change "
                f"(settable: {', '.join(spec.SETTABLE)})"
            )
            continue
        if event.ramp_s and isinstance(value, bool):
            yield f"{where}: {key}: ramp_s applies to numbers; {key} switches"
        try:
            type(spec).model_validate({**spec.model_dump(), key: value})
        except ValidationError as exc:
            yield f"{where}: {key}: {exc.errors()[0]['msg']}"


def _expectation_problems(
    where: str, expectation: Expectation, registry: Registry, gateways: set[tuple[str, str]]
) -> Iterable[str]:
    enterprises = [expectation.enterprise] if expectation.enterprise else list(registry.enterprises)
    if expectation.enterprise and expectation.enterprise not in registry.enterprises:
        yield f"{where}: enterprise: {expectation.enterprise} is not in the registry"
        return
    if expectation.type is AlarmType.GATEWAY_OFFLINE:
        if not any((e, expectation.tag) in gateways for e in enterprises):
            yield f"{where}: tag: no gateway {expectation.tag} (GATEWAY_OFFLINE names a gateway)"
    elif expectation.type is AlarmType.ANOMALY:
        installation = expectation.tag.removesuffix(NAME_SUFFIX)
        if installation == expectation.tag or not any(
            i.id == installation for e in enterprises for i in registry.enterprises[e].installations
        ):
            yield (
                f"{where}: tag: ANOMALY names an installation's model, <installation>"
                f"{NAME_SUFFIX}; got {expectation.tag}"
            )
    elif not any(registry.point(e, expectation.tag) is not None for e in enterprises):
        yield f"{where}: tag: point {expectation.tag} is not in the registry"


def with_format(scenario: Scenario, name: str | None) -> Scenario:
    """The scenario with its gateways speaking ``name`` (``None``: as the file says)."""
    if name is None:
        return scenario
    if name not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {name!r}")
    return scenario.model_copy(update={"format": name})


def with_premises(registry: Registry, scenario: Scenario) -> Registry:
    """The registry as the scenario assumes it (``[enterprises.<id>] status = ...``)."""
    if not scenario.enterprises:
        return registry
    enterprises = dict(registry.enterprises)
    for eid, premise in scenario.enterprises.items():
        enterprises[eid] = enterprises[eid].model_copy(update={"status": premise.status})
    return registry.model_copy(update={"enterprises": enterprises})


def unmet_premises(registry: Registry, scenario: Scenario) -> list[str]:
    """Premises a given registry does not already satisfy (a service running elsewhere
    raises alarms by its own registry, not by the scenario's assumptions)."""
    return [
        f"{eid} is {registry.enterprises[eid].status.value}, the scenario assumes "
        f"{premise.status.value}"
        for eid, premise in scenario.enterprises.items()
        if registry.enterprises[eid].status is not premise.status
    ]


def sample_interval_s(scenario: Scenario, points: Iterable[Point]) -> float:
    """How often a gateway reports: the scenario's ``sample_s``, else its points'
    smallest ``interval_s`` (5 s when no point has one)."""
    if scenario.sample_s is not None:
        return scenario.sample_s
    intervals = [p.interval_s for p in points if p.interval_s]
    return min(intervals, default=5.0)
