"""Plant models: what the process does, as small ODEs integrated with a fixed step.

Each model is a pydantic *spec* (what a scenario file's ``[[models]]`` table holds: the
registry points it drives, its parameters and initial state) and a class with the
equations. Models are pure: ``step(dt_s)`` advances the state, ``outputs()`` gives the
true process value of every role (``{"level": 10.2, "temperature": 25.1}``) — the
sensor layer (:mod:`simulators.site`) adds noise and instrument faults and maps roles
to tags. Nothing here reads a clock, a random generator or a file.

Models, in the units of their parameters' names:

- :class:`TankModel` — mass balance ``A·dL/dt = Q_in − Q_out`` (level clamped to
  ``[0, height]``: a full tank overflows, an empty pump runs dry); temperature mixes
  towards the inflow's and relaxes towards ambient; the gas space is held at the
  blanket pressure plus the product's vapour pressure (Clausius–Clapeyron).
- :class:`ReactorModel` — a semi-batch exothermic reactor: the feed accumulates as
  unreacted reactant ``x`` that reacts at ``k(T) = k_ref·exp(E/R·(1/T_ref − 1/T))``;
  heat balance ``C·dT/dt = ΔH·k(T)·x − UA·(F/F_design)·(T − T_coolant)`` with the
  cooling-water flow ``F`` set by a proportional temperature controller. When the
  cooling pump trips, the accumulated reactant heats the mass, which reacts faster:
  a runaway, until the ESD trips at ``esd_trip_c`` (feed closed, emergency cooling).
- :class:`GasReleaseModel` — a leak of ``source_strength`` (the concentration 1 m from
  the source, in the detectors' unit) seen at each detector as
  ``strength · (1/d)^exponent`` after the transport delay ``d / wind``, through the
  sensor's first-order response (``sensor_t90_s``).
- :class:`ElectricityModel` — a smart-electricity customer: load by hour of day (or a
  fixed ``load_kw``), residual current = base + leakage per kW + a slow drift, cable
  temperature first-order towards ``ambient + rise·(I/I_rated)²``.

Digital points (valves, pumps, ESD) are roles whose value is 1.0 (open / running /
closed-by-ESD) or 0.0.

>>> tank = TankModel(TankSpec(type="tank", id="TK1", enterprise="E", level="L",
...                           area_m2=10, level_m=5, inflow_m3h=36, inlet_open=True))
>>> for _ in range(600):      # 10 minutes at 0.01 m³/s into 10 m²
...     tank.step(1.0)
>>> round(tank.outputs()["level"], 3)
5.6
"""

from __future__ import annotations

import bisect
import math
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KELVIN = 273.15
SQRT3 = math.sqrt(3.0)
WATER_KW_PER_M3H_K = 1000 / 3600 * 4.18
"""Heat one m³/h of water carries per kelvin: ρ·c_p in kW."""
LN10 = math.log(10.0)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Names the model in ``set`` events."""
    enterprise: str

    ROLES: ClassVar[tuple[str, ...]]
    """Fields that bind a registry tag (``None`` = not bound)."""
    SETTABLE: ClassVar[tuple[str, ...]]
    """Parameters a ``set`` event may change while the scenario runs."""
    NOISE: ClassVar[dict[str, float]]
    """Default sensor noise (one standard deviation) per role, in the role's unit."""
    KINDS: ClassVar[dict[str, tuple[str, ...]]]
    """Point kinds each role may be bound to."""

    def bindings(self) -> dict[str, str]:
        """``{role: tag}`` of the roles bound to a point."""
        found = {role: getattr(self, role) for role in self.ROLES}
        return {role: tag for role, tag in found.items() if tag is not None}

    def kinds(self, role: str) -> tuple[str, ...]:
        """The point kinds ``role`` may be bound to."""
        return self.KINDS[role]

    def noise(self, role: str) -> float:
        """The default sensor noise of ``role`` (0 for digital points)."""
        return self.NOISE.get(role, 0.0)


def _first_order(value: float, target: float, tau_s: float, dt_s: float) -> float:
    """Exact step of ``dv/dt = (target − v)/tau`` (stable for any ``dt``)."""
    return target + (value - target) * math.exp(-dt_s / tau_s)


def vapour_pressure(p_ref: float, t_ref_c: float, b_k: float, t_c: float) -> float:
    """Clausius–Clapeyron: ``p_ref·exp(B·(1/T_ref − 1/T))``, ``B = ΔH_vap/R`` in K.

    >>> round(vapour_pressure(3.0, 20.0, 4000.0, 40.0), 2)   # kPa at 40 °C: over twice
    7.17
    """
    return p_ref * math.exp(b_k * (1 / (t_ref_c + KELVIN) - 1 / (t_c + KELVIN)))


# --- tank ----------------------------------------------------------------------------


class TankSpec(_Spec):
    type: Literal["tank"]
    level: str
    temperature: str | None = None
    pressure: str | None = None
    inlet_valve: str | None = None
    pump: str | None = None
    inflow: str | None = None
    """A flow point: the inflow (m³/h)."""
    outflow: str | None = None
    """A flow point: everything leaving — the transfer pump and the level-control valve."""
    area_m2: float = Field(default=20.0, gt=0)
    height_m: float = Field(default=12.0, gt=0)
    level_m: float = Field(default=5.0, ge=0)
    """Initial level."""
    inflow_m3h: float = Field(default=0.0, ge=0)
    """Flow through the inlet valve when it is open."""
    outflow_m3h: float = Field(default=0.0, ge=0)
    """Flow of the transfer pump when it runs (and the tank is not empty)."""
    inlet_open: bool = False
    pump_running: bool = False
    temperature_c: float = 20.0
    """Initial temperature of the contents."""
    inflow_temperature_c: float = 20.0
    ambient_c: float = 20.0
    heat_loss_tau_s: float = Field(default=36_000.0, gt=0)
    """Time constant of the contents relaxing towards ambient."""
    pad_kpa: float = 2.0
    """Blanket-gas gauge pressure the gas space is held at."""
    vapour_kpa_at_20c: float = Field(default=3.0, ge=0)
    vapour_b_k: float = Field(default=4000.0, ge=0)
    level_setpoint_m: float | None = Field(default=None, ge=0)
    """With a setpoint, an outflow control valve holds the level (a PI controller): a
    buffer tank passing on what comes in."""
    control_valve_m3h: float = Field(default=200.0, gt=0)
    """The control valve's flow fully open."""
    level_gain: float = Field(default=0.5, gt=0)
    """Valve opening per metre of level above the setpoint."""
    level_reset_s: float = Field(default=600.0, gt=0)
    """The controller's integral time."""
    outflow_valve_stuck: bool = False
    """The control valve no longer moves (stiction, a seized stem): it keeps its opening."""

    ROLES: ClassVar[tuple[str, ...]] = (
        "level",
        "temperature",
        "pressure",
        "inlet_valve",
        "pump",
        "inflow",
        "outflow",
    )
    SETTABLE: ClassVar[tuple[str, ...]] = (
        "inlet_open",
        "pump_running",
        "inflow_m3h",
        "outflow_m3h",
        "inflow_temperature_c",
        "ambient_c",
        "outflow_valve_stuck",
    )
    NOISE: ClassVar[dict[str, float]] = {
        "level": 0.003,
        "temperature": 0.05,
        "pressure": 0.05,
        "inflow": 0.5,
        "outflow": 0.5,
    }
    KINDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "level": ("level",),
        "temperature": ("temperature",),
        "pressure": ("pressure",),
        "inlet_valve": ("state",),
        "pump": ("state",),
        "inflow": ("flow",),
        "outflow": ("flow",),
    }

    @model_validator(mode="after")
    def _level_fits(self) -> TankSpec:
        if self.level_m > self.height_m:
            raise ValueError(f"level_m {self.level_m} is above height_m {self.height_m}")
        return self


class TankModel:
    def __init__(self, spec: TankSpec) -> None:
        self.spec = spec
        self.inlet_open = spec.inlet_open
        self.pump_running = spec.pump_running
        self.inflow_m3h = spec.inflow_m3h
        self.outflow_m3h = spec.outflow_m3h
        self.inflow_temperature_c = spec.inflow_temperature_c
        self.ambient_c = spec.ambient_c
        self.level_m = spec.level_m
        self.temperature_c = spec.temperature_c
        self.overflow_m3 = 0.0
        """Product spilled over the top so far."""
        self.outflow_valve_stuck = spec.outflow_valve_stuck
        # the control valve starts where it passes the inflow (a steady buffer tank)
        inflow = self.inflow_m3h if self.inlet_open else 0.0
        self.opening = min(1.0, inflow / spec.control_valve_m3h)
        self._integral = self.opening / spec.level_gain
        # the flows as of t = 0
        self._q_in = inflow / 3600
        self._q_out = self._valve(0.0) + (
            self.outflow_m3h / 3600 if self.pump_running and self.level_m > 0 else 0.0
        )

    def _valve(self, dt_s: float) -> float:
        """The level controller: the control valve's flow (m³/s) this step."""
        s = self.spec
        if s.level_setpoint_m is None:
            return 0.0
        if not self.outflow_valve_stuck:
            error = self.level_m - s.level_setpoint_m
            wanted = s.level_gain * (error + self._integral)
            if 0.0 < wanted < 1.0:  # no wind-up against a closed or open valve
                self._integral += error * dt_s / s.level_reset_s
            self.opening = min(1.0, max(0.0, wanted))
        return self.opening * s.control_valve_m3h / 3600 if self.level_m > 0 else 0.0

    def step(self, dt_s: float) -> None:
        s = self.spec
        q_in = self.inflow_m3h / 3600 if self.inlet_open else 0.0
        q_out = self.outflow_m3h / 3600 if self.pump_running and self.level_m > 0 else 0.0
        q_out += self._valve(dt_s)
        self._q_in, self._q_out = q_in, q_out
        volume = self.level_m * s.area_m2
        if volume > 0 and q_in > 0:  # mixing with the inflow, before the level moves
            mixed = q_in * dt_s / (volume + q_in * dt_s)
            self.temperature_c += (self.inflow_temperature_c - self.temperature_c) * mixed
        self.temperature_c = _first_order(
            self.temperature_c, self.ambient_c, s.heat_loss_tau_s, dt_s
        )
        level = self.level_m + (q_in - q_out) * dt_s / s.area_m2
        if level > s.height_m:
            self.overflow_m3 += (level - s.height_m) * s.area_m2
        self.level_m = min(s.height_m, max(0.0, level))

    def outputs(self) -> dict[str, float]:
        s = self.spec
        vapour = vapour_pressure(s.vapour_kpa_at_20c, 20.0, s.vapour_b_k, self.temperature_c)
        return {
            "level": self.level_m,
            "temperature": self.temperature_c,
            "pressure": s.pad_kpa + vapour,
            "inlet_valve": float(self.inlet_open),
            "pump": float(self.pump_running),
            "inflow": self._q_in * 3600,
            "outflow": self._q_out * 3600,
        }


# --- reactor -------------------------------------------------------------------------


class ReactorSpec(_Spec):
    type: Literal["reactor"]
    temperature: str
    pressure: str | None = None
    cooling_flow: str | None = None
    esd: str | None = None
    """A state point: 1 when the ESD has tripped (feed valve closed)."""
    feed_flow: str | None = None
    """A flow point: the feed (kg/h; 0 once the ESD closed it)."""
    coolant_return: str | None = None
    """A temperature point: the cooling water leaving the jacket."""
    mass_kg: float = Field(default=2800.0, gt=0)
    heat_capacity_kj_kg_k: float = Field(default=2.5, gt=0)
    feed_kg_s: float = Field(default=0.2, gt=0)
    """Initial feed (dosing) rate; a ``set`` event may stop it."""
    reaction_heat_kj_kg: float = Field(default=2000.0, ge=0)
    accumulation_kg: float = Field(default=300.0, gt=0)
    """Unreacted reactant at ``reference_c`` in steady operation: sets ``k_ref``."""
    reference_c: float = 70.0
    activation_k: float = Field(default=9000.0, ge=0)
    """``E/R``: how steeply the reaction speeds up with temperature."""
    setpoint_c: float = 70.0
    coolant_c: float = 25.0
    ua_kw_k: float = Field(default=8.9, gt=0)
    """Heat transfer of the jacket at the design cooling-water flow."""
    design_flow_m3h: float = Field(default=30.0, gt=0)
    max_flow_m3h: float = Field(default=60.0, gt=0)
    controller_gain_m3h_k: float = Field(default=5.0, ge=0)
    cooling_pump_running: bool = True
    flow_tau_s: float = Field(default=3.0, gt=0)
    esd_trip_c: float = 100.0
    emergency_ua_kw_k: float = Field(default=40.0, ge=0)
    """Emergency cooling (quench) once the ESD has tripped."""
    pad_mpa: float = 0.1
    vapour_mpa_at_ref: float = Field(default=0.35, ge=0)
    vapour_b_k: float = Field(default=4000.0, ge=0)
    temperature_c: float | None = None
    """Initial temperature (default: the setpoint)."""

    ROLES: ClassVar[tuple[str, ...]] = (
        "temperature",
        "pressure",
        "cooling_flow",
        "esd",
        "feed_flow",
        "coolant_return",
    )
    SETTABLE: ClassVar[tuple[str, ...]] = (
        "cooling_pump_running",
        "feed_kg_s",
        "setpoint_c",
        "coolant_c",
        "ua_kw_k",
        "reaction_heat_kj_kg",
    )
    NOISE: ClassVar[dict[str, float]] = {
        "temperature": 0.1,
        "pressure": 0.003,
        "cooling_flow": 0.2,
        "feed_flow": 3.0,
        "coolant_return": 0.1,
    }
    KINDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "temperature": ("temperature",),
        "pressure": ("pressure",),
        "cooling_flow": ("flow",),
        "esd": ("state",),
        "feed_flow": ("flow",),
        "coolant_return": ("temperature",),
    }


class ReactorModel:
    def __init__(self, spec: ReactorSpec) -> None:
        self.spec = spec
        self.cooling_pump_running = spec.cooling_pump_running
        self.feed_kg_s = spec.feed_kg_s
        self.setpoint_c = spec.setpoint_c
        self.coolant_c = spec.coolant_c
        self.ua_kw_k = spec.ua_kw_k
        """Settable: a jacket fouling drifts it down."""
        self.reaction_heat_kj_kg = spec.reaction_heat_kj_kg
        """Settable: a stronger feed (its composition) releases more heat per kg."""
        self._k_ref = spec.feed_kg_s / spec.accumulation_kg  # steady state: feed = k·x
        self.temperature_c = spec.setpoint_c if spec.temperature_c is None else spec.temperature_c
        self.unreacted_kg = spec.feed_kg_s / self.rate_per_s(self.temperature_c)
        self.flow_m3h = self._controller_flow() if self.cooling_pump_running else 0.0
        self.esd_tripped = False
        excess = self.temperature_c - self.coolant_c
        self.cooling_kw = self.ua_kw_k * self.flow_m3h / spec.design_flow_m3h * excess

    def rate_per_s(self, temperature_c: float) -> float:
        """Arrhenius: ``k_ref·exp(E/R·(1/T_ref − 1/T))``."""
        s = self.spec
        return self._k_ref * math.exp(
            s.activation_k * (1 / (s.reference_c + KELVIN) - 1 / (temperature_c + KELVIN))
        )

    def heat_release_kw(self) -> float:
        return self.reaction_heat_kj_kg * self.rate_per_s(self.temperature_c) * self.unreacted_kg

    def _controller_flow(self) -> float:
        s = self.spec
        demand = s.design_flow_m3h + s.controller_gain_m3h_k * (
            self.temperature_c - self.setpoint_c
        )
        return min(s.max_flow_m3h, max(0.0, demand))

    def step(self, dt_s: float) -> None:
        s = self.spec
        target = self._controller_flow() if self.cooling_pump_running else 0.0
        self.flow_m3h = _first_order(self.flow_m3h, target, s.flow_tau_s, dt_s)
        excess = self.temperature_c - self.coolant_c
        cooling_kw = self.ua_kw_k * self.flow_m3h / s.design_flow_m3h * excess
        self.cooling_kw = cooling_kw  # through the jacket, into the cooling water
        if self.esd_tripped:
            cooling_kw += s.emergency_ua_kw_k * excess
        release_kw = self.heat_release_kw()
        feed = 0.0 if self.esd_tripped else self.feed_kg_s
        reacted = min(
            self.unreacted_kg, self.rate_per_s(self.temperature_c) * self.unreacted_kg * dt_s
        )
        self.unreacted_kg += feed * dt_s - reacted
        heat_capacity = s.mass_kg * s.heat_capacity_kj_kg_k
        self.temperature_c += (release_kw - cooling_kw) / heat_capacity * dt_s
        if self.temperature_c >= s.esd_trip_c:
            self.esd_tripped = True  # latched: an ESD is reset by people, not by the process

    def outputs(self) -> dict[str, float]:
        s = self.spec
        vapour = vapour_pressure(
            s.vapour_mpa_at_ref, s.reference_c, s.vapour_b_k, self.temperature_c
        )
        # the cooling water warms by the heat it takes: Q = F·ρ·c_p·ΔT (1.161 kW per m³/h·K),
        # and never past the reactor's own temperature (standing water)
        warming = self.cooling_kw / max(self.flow_m3h * WATER_KW_PER_M3H_K, 1e-9)
        return {
            "temperature": self.temperature_c,
            "pressure": s.pad_mpa + vapour,
            "cooling_flow": self.flow_m3h,
            "esd": float(self.esd_tripped),
            "feed_flow": 0.0 if self.esd_tripped else self.feed_kg_s * 3600,
            "coolant_return": min(self.temperature_c, self.coolant_c + warming),
        }


# --- gas release -----------------------------------------------------------------------


class GasDetectorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str
    distance_m: float = Field(gt=0)
    """From the leak source to the detector."""


class GasReleaseSpec(_Spec):
    type: Literal["gas_release"]
    detectors: tuple[GasDetectorSpec, ...] = Field(min_length=1)
    source_strength: float = Field(default=0.0, ge=0)
    """Concentration 1 m from the source, in the detectors' unit; 0 = no leak."""
    wind_m_s: float = Field(default=1.0, gt=0)
    exponent: float = Field(default=2.0, gt=0)
    """Fall-off with distance: 2 for a plume spreading sideways and up."""
    sensor_t90_s: float = Field(default=30.0, gt=0)
    background: float = Field(default=0.0, ge=0)

    ROLES: ClassVar[tuple[str, ...]] = ()
    SETTABLE: ClassVar[tuple[str, ...]] = ("source_strength", "wind_m_s")
    NOISE: ClassVar[dict[str, float]] = {"gas": 0.2}
    KINDS: ClassVar[dict[str, tuple[str, ...]]] = {"gas": ("gas_lel", "gas_toxic")}

    def bindings(self) -> dict[str, str]:
        """Every detector is a role named after its tag."""
        return {d.tag: d.tag for d in self.detectors}

    def kinds(self, role: str) -> tuple[str, ...]:  # noqa: ARG002 - every detector alike
        return self.KINDS["gas"]

    def noise(self, role: str) -> float:  # noqa: ARG002 - every detector alike
        return self.NOISE["gas"]


class GasReleaseModel:
    def __init__(self, spec: GasReleaseSpec) -> None:
        self.spec = spec
        self.source_strength = spec.source_strength
        self.wind_m_s = spec.wind_m_s
        self._t_s = 0.0
        self._history_t = [0.0]
        self._history_strength = [spec.source_strength]
        self._reading = {d.tag: spec.background for d in spec.detectors}
        self._farthest_m = max(d.distance_m for d in spec.detectors)

    def _strength_at(self, t_s: float) -> float:
        """The source strength at an earlier time (what reaches a detector now)."""
        at = bisect.bisect_right(self._history_t, t_s) - 1
        return self._history_strength[max(0, at)]

    def step(self, dt_s: float) -> None:
        s = self.spec
        if self.source_strength != self._history_strength[-1]:
            self._history_t.append(self._t_s)
            self._history_strength.append(self.source_strength)
            # what left the source longer ago than the farthest detector's delay is gone
            cut = (
                bisect.bisect_right(self._history_t, self._t_s - self._farthest_m / self.wind_m_s)
                - 1
            )
            if cut > 0:
                del self._history_t[:cut], self._history_strength[:cut]
        self._t_s += dt_s
        tau_s = s.sensor_t90_s / LN10  # a first-order sensor reaches 90 % in tau·ln 10
        for detector in s.detectors:
            arrived = self._strength_at(self._t_s - detector.distance_m / self.wind_m_s)
            target = s.background + arrived * max(1.0, detector.distance_m) ** -s.exponent
            self._reading[detector.tag] = _first_order(
                self._reading[detector.tag], target, tau_s, dt_s
            )

    def outputs(self) -> dict[str, float]:
        return dict(self._reading)


# --- electricity -----------------------------------------------------------------------


class ElectricitySpec(_Spec):
    type: Literal["electricity"]
    power: str | None = None
    residual_current: str | None = None
    cable_temp: str | None = None
    current: str | None = None
    load_kw: float = Field(default=100.0, ge=0)
    profile: tuple[float, ...] | None = None
    """24 factors of ``load_kw``, one per hour of the day from 00:00 (linear between
    hours); none = the load is ``load_kw`` all day."""
    residual_ma: float = Field(default=20.0, ge=0)
    residual_ma_per_kw: float = Field(default=0.05, ge=0)
    residual_drift_ma_per_h: float = 0.0
    """Insulation ageing or moisture: the residual current creeping up."""
    ambient_c: float = 20.0
    cable_tau_s: float = Field(default=1200.0, gt=0)
    voltage_v: float = Field(default=400.0, gt=0)
    power_factor: float = Field(default=0.9, gt=0, le=1)
    rated_current_a: float = Field(default=400.0, gt=0)
    rise_at_rated_k: float = Field(default=40.0, ge=0)
    """Cable temperature rise above ambient at the rated current."""
    cable_temperature_c: float | None = None
    """Initial (default: the steady state of the initial load)."""

    ROLES: ClassVar[tuple[str, ...]] = ("power", "residual_current", "cable_temp", "current")
    SETTABLE: ClassVar[tuple[str, ...]] = ("load_kw", "residual_drift_ma_per_h", "ambient_c")
    NOISE: ClassVar[dict[str, float]] = {
        "power": 0.2,
        "residual_current": 0.5,
        "cable_temp": 0.1,
        "current": 0.5,
    }
    KINDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "power": ("power",),
        "residual_current": ("residual_current",),
        "cable_temp": ("cable_temp",),
        "current": ("current",),
    }

    @model_validator(mode="after")
    def _profile_has_24_hours(self) -> ElectricitySpec:
        if self.profile is not None and (
            len(self.profile) != 24 or any(f < 0 for f in self.profile)
        ):
            raise ValueError("profile: expected 24 factors >= 0, one per hour from 00:00")
        if not self.bindings():
            raise ValueError("bind at least one of power, residual_current, cable_temp, current")
        return self


class ElectricityModel:
    def __init__(self, spec: ElectricitySpec, start_hour: float = 12.0) -> None:
        self.spec = spec
        self.load_kw = spec.load_kw
        self.residual_drift_ma_per_h = spec.residual_drift_ma_per_h
        self.ambient_c = spec.ambient_c
        self._start_hour = start_hour
        self._t_s = 0.0
        self.drift_ma = 0.0
        self.cable_c = (
            self._cable_target() if spec.cable_temperature_c is None else spec.cable_temperature_c
        )

    def demand_kw(self) -> float:
        profile = self.spec.profile
        if profile is None:
            return self.load_kw
        hour = (self._start_hour + self._t_s / 3600) % 24
        before = int(hour)
        fraction = hour - before
        factor = profile[before] * (1 - fraction) + profile[(before + 1) % 24] * fraction
        return self.load_kw * factor

    def current_a(self) -> float:
        s = self.spec
        return self.demand_kw() * 1000 / (SQRT3 * s.voltage_v * s.power_factor)

    def _cable_target(self) -> float:
        s = self.spec
        return self.ambient_c + s.rise_at_rated_k * (self.current_a() / s.rated_current_a) ** 2

    def step(self, dt_s: float) -> None:
        self._t_s += dt_s
        self.drift_ma += self.residual_drift_ma_per_h * dt_s / 3600
        self.cable_c = _first_order(self.cable_c, self._cable_target(), self.spec.cable_tau_s, dt_s)

    def outputs(self) -> dict[str, float]:
        s = self.spec
        power = self.demand_kw()
        return {
            "power": power,
            "residual_current": s.residual_ma + s.residual_ma_per_kw * power + self.drift_ma,
            "cable_temp": self.cable_c,
            "current": self.current_a(),
        }


AnySpec = TankSpec | ReactorSpec | GasReleaseSpec | ElectricitySpec
ModelSpec = Annotated[AnySpec, Field(discriminator="type")]
"""A ``[[models]]`` table: the spec its ``type`` names."""
PlantModel = TankModel | ReactorModel | GasReleaseModel | ElectricityModel


def build_model(spec: AnySpec, start_hour: float) -> PlantModel:
    """The model for a spec, in its initial state."""
    if isinstance(spec, TankSpec):
        return TankModel(spec)
    if isinstance(spec, ReactorSpec):
        return ReactorModel(spec)
    if isinstance(spec, GasReleaseSpec):
        return GasReleaseModel(spec)
    return ElectricityModel(spec, start_hour)
