"""The plant models' physics: conservation, monotone responses, the runaway and its ESD."""

from __future__ import annotations

import doctest
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulators.plant
from simulators.plant import (
    ElectricityModel,
    ElectricitySpec,
    GasDetectorSpec,
    GasReleaseModel,
    GasReleaseSpec,
    ReactorModel,
    ReactorSpec,
    TankModel,
    TankSpec,
    vapour_pressure,
)

STEP_S = 0.25


def run(
    model: TankModel | ReactorModel | GasReleaseModel | ElectricityModel, seconds: float
) -> None:
    for _ in range(round(seconds / STEP_S)):
        model.step(STEP_S)


def tank(**parameters: float | bool) -> TankModel:
    fields = {"type": "tank", "id": "TK", "enterprise": "E", "level": "L", **parameters}
    return TankModel(TankSpec.model_validate(fields))


def reactor(**parameters: float | bool) -> ReactorModel:
    fields = {"type": "reactor", "id": "R", "enterprise": "E", "temperature": "T", **parameters}
    return ReactorModel(ReactorSpec.model_validate(fields))


def test_docstring_examples() -> None:
    result = doctest.testmod(simulators.plant)
    assert result.attempted > 0
    assert result.failed == 0


@given(
    area=st.floats(1, 100),
    level=st.floats(0, 12),
    inflow=st.floats(0, 500),
    outflow=st.floats(0, 500),
    minutes=st.integers(1, 30),
)
@settings(max_examples=60, deadline=None)
def test_tank_volume_is_conserved(
    area: float, level: float, inflow: float, outflow: float, minutes: int
) -> None:
    """What came in minus what went out is in the tank — or spilled over the top; the
    level stays within the tank."""
    model = tank(
        area_m2=area,
        level_m=level,
        inflow_m3h=inflow,
        outflow_m3h=outflow,
        inlet_open=True,
        pump_running=True,
    )
    pumped_m3 = 0.0
    for _ in range(minutes * 60 * 4):
        if model.level_m > 0:  # the pump only moves liquid that is there
            pumped_m3 += min(outflow / 3600 * STEP_S, model.level_m * area + inflow / 3600 * STEP_S)
        model.step(STEP_S)
    assert 0 <= model.level_m <= 12
    added_m3 = inflow / 3600 * minutes * 60
    in_tank_m3 = (model.level_m - level) * area + model.overflow_m3
    assert in_tank_m3 == pytest.approx(added_m3 - pumped_m3, abs=1e-6 * (1 + added_m3))


def test_tank_level_rises_faster_with_more_inflow_and_overflows_at_the_top() -> None:
    levels = []
    for inflow in (60, 120, 240):
        model = tank(area_m2=20, level_m=9.0, inflow_m3h=inflow, inlet_open=True)
        run(model, 300)
        levels.append(model.level_m)
    assert levels == sorted(levels)
    assert levels[0] == pytest.approx(9.0 + 60 / 3600 * 300 / 20)
    full = tank(area_m2=20, level_m=11.9, inflow_m3h=360, inlet_open=True)
    run(full, 120)
    assert full.level_m == 12.0
    assert full.overflow_m3 == pytest.approx(360 / 3600 * 120 - 0.1 * 20, rel=1e-3)


def test_tank_pressure_follows_the_vapour_pressure_of_a_warming_product() -> None:
    model = tank(level_m=5.0, inflow_m3h=100, inlet_open=True, inflow_temperature_c=40)
    before = model.outputs()
    run(model, 1800)
    after = model.outputs()
    assert 20 < after["temperature"] < 40
    assert after["pressure"] > before["pressure"]


@given(st.floats(-20, 150), st.floats(0.1, 30))
def test_vapour_pressure_rises_with_temperature(t_c: float, rise: float) -> None:
    assert vapour_pressure(3.0, 20.0, 4000.0, t_c + rise) > vapour_pressure(3.0, 20.0, 4000.0, t_c)


def test_reactor_holds_its_setpoint_while_cooled() -> None:
    model = reactor()
    run(model, 1200)
    assert model.temperature_c == pytest.approx(70.0, abs=0.5)
    assert model.heat_release_kw() == pytest.approx(400.0, rel=0.02)  # feed 0.2 kg/s × 2000 kJ/kg
    assert not model.esd_tripped


def test_reactor_runs_away_without_cooling_until_the_esd_trips_and_quenches() -> None:
    model = reactor()
    run(model, 60)
    model.cooling_pump_running = False
    temperatures = []
    for _ in range(60):  # 10 minutes, every 10 s
        run(model, 10)
        temperatures.append(model.temperature_c)
    hot = next(n for n, t in enumerate(temperatures) if t >= 95)
    rises = [b - a for a, b in itertools.pairwise(temperatures[: hot + 1])]
    assert rises == sorted(rises), "up to HH the rise accelerates: a runaway, not a drift"
    assert model.esd_tripped
    assert 97 < max(temperatures) < 110  # tripped at 100 °C (sampled every 10 s)
    assert temperatures[-1] < 50  # quenched
    assert model.outputs()["esd"] == 1.0
    assert model.outputs()["cooling_flow"] < 0.1


def test_reactor_esd_stays_tripped_once_cooled() -> None:
    model = reactor(temperature_c=101.0)
    run(model, 1)
    assert model.esd_tripped
    run(model, 900)
    assert model.temperature_c < 60
    assert model.esd_tripped  # latched: reset by people, not by the process


def gas(*distances: float, **parameters: float) -> GasReleaseModel:
    detectors = tuple(GasDetectorSpec(tag=f"GD{n}", distance_m=d) for n, d in enumerate(distances))
    return GasReleaseModel(
        GasReleaseSpec(
            type="gas_release", id="G", enterprise="E", detectors=detectors, **parameters
        )
    )


def test_gas_arrives_after_the_transport_delay_and_settles_at_strength_over_distance_squared() -> (
    None
):
    model = gas(6.0, wind_m_s=0.8, sensor_t90_s=30)
    run(model, 10)
    model.source_strength = 1440.0
    run(model, 7.0)  # 6 m at 0.8 m/s: 7.5 s on the way
    assert model.outputs()["GD0"] == 0.0
    run(model, 2.0)
    assert 0 < model.outputs()["GD0"] < 10  # 1.5 s into a 13 s time constant
    run(model, 30 - 2.0 + 0.5)  # T90 after arrival
    assert model.outputs()["GD0"] == pytest.approx(0.9 * 40, rel=0.03)
    run(model, 300)
    assert model.outputs()["GD0"] == pytest.approx(1440 / 36, rel=1e-3)
    model.source_strength = 0.0
    run(model, 300)
    assert model.outputs()["GD0"] == pytest.approx(0.0, abs=1e-3)


@given(st.lists(st.floats(0.5, 50), min_size=2, max_size=5), st.floats(1, 5000), st.floats(5, 120))
@settings(max_examples=40, deadline=None)
def test_gas_never_reads_more_farther_from_the_leak(
    distances: list[float], strength: float, seconds: float
) -> None:
    model = gas(*sorted(distances), wind_m_s=1.0, source_strength=strength)
    run(model, seconds)
    readings = [model.outputs()[f"GD{n}"] for n in range(len(distances))]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(readings))


def electricity(start_hour: float = 12.0, **parameters: object) -> ElectricityModel:
    spec = ElectricitySpec.model_validate(
        {"type": "electricity", "id": "B", "enterprise": "E", "power": "P", **parameters}
    )
    return ElectricityModel(spec, start_hour)


def test_cable_temperature_settles_at_ambient_plus_rise_at_its_current() -> None:
    model = electricity(load_kw=10.0, rated_current_a=400, rise_at_rated_k=40, ambient_c=20)
    model.load_kw = 200.0
    current = 200_000 / (math.sqrt(3) * 400 * 0.9)
    run(model, 1200)  # one time constant
    target = 20 + 40 * (current / 400) ** 2
    start = 20 + 40 * (10_000 / (math.sqrt(3) * 400 * 0.9) / 400) ** 2
    assert model.outputs()["cable_temp"] == pytest.approx(
        target + (start - target) * math.exp(-1), rel=1e-3
    )
    assert model.outputs()["current"] == pytest.approx(current)


def test_residual_current_drifts_and_grows_with_load() -> None:
    model = electricity(load_kw=100.0, residual_ma=20, residual_ma_per_kw=0.05)
    assert model.outputs()["residual_current"] == pytest.approx(25.0)
    model.residual_drift_ma_per_h = 12.0
    run(model, 1800)
    assert model.outputs()["residual_current"] == pytest.approx(31.0)


def test_load_follows_the_hourly_profile_between_hours() -> None:
    profile = [0.1] * 8 + [0.9] * 10 + [0.1] * 6  # a day shift 08:00-18:00
    model = electricity(7.5, load_kw=300.0, profile=profile)
    assert model.demand_kw() == pytest.approx(300 * 0.5)  # half way from 07:00 to 08:00
    run(model, 1800)  # 08:00
    assert model.demand_kw() == pytest.approx(300 * 0.9)
    run(model, 3600 * 10)  # 18:00
    assert model.demand_kw() == pytest.approx(300 * 0.1)


def test_electricity_model_needs_a_point_and_24_hours() -> None:
    with pytest.raises(ValueError, match="bind at least one"):
        ElectricitySpec(type="electricity", id="B", enterprise="E")
    with pytest.raises(ValueError, match="24 factors"):
        ElectricitySpec(type="electricity", id="B", enterprise="E", power="P", profile=(1.0,) * 23)
