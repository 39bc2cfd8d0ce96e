"""The simulated site: seeded noise, baselines, set events on time, sensor faults."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

import simulators.site
from hazwatch.models import EnterpriseStatus, Quality, Registry
from simulators.scenario import Scenario
from simulators.site import Sample, SiteModel


def scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate({"name": "t", "duration_s": 600, **fields})


def series(site: SiteModel, tag: str, times: range) -> list[Sample]:
    return [next(s for s in site.sample(float(t)) if s.point.tag == tag) for t in times]


def values(site: SiteModel, tag: str, times: range) -> list[float]:
    return [s.value for s in series(site, tag, times)]


def test_docstring_examples() -> None:
    result = doctest.testmod(simulators.site)
    assert result.attempted > 0
    assert result.failed == 0


def test_same_seed_same_values_another_seed_other_values(example_registry: Registry) -> None:
    def run(seed: int) -> list[list[float]]:
        site = SiteModel(example_registry, scenario(seed=seed))
        return [[s.value for s in site.sample(float(t))] for t in range(0, 60, 5)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_one_points_noise_does_not_depend_on_other_points_faults(
    example_registry: Registry,
) -> None:
    plain = SiteModel(example_registry, scenario(seed=3))
    faulted = SiteModel(
        example_registry,
        scenario(
            seed=3,
            events=[
                {
                    "at_s": 10,
                    "type": "noise_burst",
                    "enterprise": "E001",
                    "tag": "GD101",
                    "sigma": 5,
                },
            ],
        ),
    )
    assert values(plain, "TK102_LT", range(0, 60, 5)) == values(
        faulted, "TK102_LT", range(0, 60, 5)
    )


def test_baselines_sit_in_the_normal_band_gas_and_states_at_zero(
    example_registry: Registry,
) -> None:
    site = SiteModel(example_registry, scenario(noise=0))
    by_tag = {s.point.tag: s.value for s in site.sample(0.0)}
    assert by_tag["TK102_LT"] == (1.0 + 10.5) / 2
    assert by_tag["GD101"] == 0.0
    assert by_tag["ESD201_ZSC"] == 0.0
    assert by_tag["P01"] == (0 + 400) / 2
    suspended = Registry(
        enterprises={
            **example_registry.enterprises,
            "E002": example_registry.enterprises["E002"].model_copy(
                update={"status": EnterpriseStatus.SUSPENDED}
            ),
        }
    )
    assert {s.point.tag: s.value for s in SiteModel(suspended, scenario(noise=0)).sample(0.0)}[
        "P01"
    ] == 0.0


def test_ramp_events_move_a_baseline(example_registry: Registry) -> None:
    site = SiteModel(
        example_registry,
        scenario(
            noise=0,
            signals=[{"enterprise": "E001", "tag": "TK102_LT", "start": 2.0}],
            events=[
                {
                    "at_s": 10,
                    "type": "ramp",
                    "enterprise": "E001",
                    "tag": "TK102_LT",
                    "to": 6.0,
                    "over_s": 20,
                },
            ],
        ),
    )
    assert values(site, "TK102_LT", range(0, 40, 10)) == [2.0, 2.0, 4.0, 6.0]


def test_set_events_act_at_their_time_and_ramp_numbers(example_registry: Registry) -> None:
    site = SiteModel(
        example_registry,
        scenario(
            models=[
                {
                    "type": "tank",
                    "id": "TK",
                    "enterprise": "E001",
                    "level": "TK101_LT",
                    "level_m": 5.0,
                    "area_m2": 10,
                    "inflow_m3h": 36,
                },
            ],
            signals=[{"enterprise": "E001", "tag": "TK101_LT", "noise": 0}],
            events=[
                {"at_s": 10, "type": "set", "model": "TK", "inlet_open": True},
                {"at_s": 110, "type": "set", "model": "TK", "inflow_m3h": 0, "ramp_s": 100},
            ],
        ),
    )
    levels = values(site, "TK101_LT", range(0, 301, 10))
    assert levels[:2] == [5.0, 5.0]
    assert levels[11] == pytest.approx(5.0 + 0.001 * 100)  # 36 m³/h into 10 m² for 100 s
    # the inflow falls linearly to 0 over 100 s: half of a full 100 s of filling
    assert levels[21] == pytest.approx(5.1 + 0.001 * 50, abs=2e-4)
    assert levels[21:] == [levels[21]] * len(levels[21:])


def test_stuck_repeats_its_first_value_then_moves_again(example_registry: Registry) -> None:
    site = SiteModel(
        example_registry,
        scenario(
            events=[
                {
                    "at_s": 20,
                    "until_s": 60,
                    "type": "stuck",
                    "enterprise": "E001",
                    "tag": "R201_PT",
                },
            ],
        ),
    )
    readings = values(site, "R201_PT", range(0, 80, 5))
    frozen = readings[4:12]  # 20 s .. 55 s
    assert frozen == [readings[4]] * 8
    assert len(set(readings[:4])) == 4
    assert readings[12] != readings[4]


def test_drift_grows_by_its_rate_and_is_gone_after_recalibration(
    example_registry: Registry,
) -> None:
    def run(events: list[dict[str, Any]]) -> list[float]:
        return values(
            SiteModel(example_registry, scenario(seed=4, events=events)),
            "R201_PT",
            range(0, 200, 30),
        )

    plain = run([])
    drifted = run(
        [
            {
                "at_s": 0,
                "until_s": 150,
                "type": "drift",
                "enterprise": "E001",
                "tag": "R201_PT",
                "rate_per_min": 0.1,
            }
        ]
    )
    offsets = [round(d - p, 4) for d, p in zip(drifted, plain, strict=True)]
    assert offsets == [0.0, 0.05, 0.1, 0.15, 0.2, 0.0, 0.0]  # recalibrated at 150 s


def test_instrument_faults_send_bad_quality_or_leave_the_range(
    example_registry: Registry,
) -> None:
    site = SiteModel(
        example_registry,
        scenario(
            events=[
                {"at_s": 10, "until_s": 20, "type": "fault", "enterprise": "E001", "tag": "GD201"},
                {
                    "at_s": 10,
                    "type": "fault",
                    "mode": "out_of_range",
                    "enterprise": "E001",
                    "tag": "R201_TT",
                },
            ],
        ),
    )
    gas = series(site, "GD201", range(0, 30, 5))
    assert [s.quality for s in gas] == [Quality.GOOD] * 2 + [Quality.BAD] * 2 + [Quality.GOOD] * 2
    site = SiteModel(
        example_registry,
        scenario(
            events=[
                {
                    "at_s": 10,
                    "type": "fault",
                    "mode": "out_of_range",
                    "enterprise": "E001",
                    "tag": "R201_TT",
                }
            ]
        ),
    )
    temperature = values(site, "R201_TT", range(0, 20, 5))
    assert all(0 <= v <= 200 for v in temperature[:2])
    assert temperature[2:] == [220.0, 220.0]  # max + 10 % of the span


def test_values_saturate_at_the_instrument_range(example_registry: Registry) -> None:
    site = SiteModel(
        example_registry,
        scenario(
            models=[
                {
                    "type": "tank",
                    "id": "TK",
                    "enterprise": "E001",
                    "level": "TK101_LT",
                    "level_m": 11.99,
                    "inflow_m3h": 360,
                    "inlet_open": True,
                }
            ],
            signals=[{"enterprise": "E001", "tag": "TK101_LT", "noise": 0}],
        ),
    )
    assert values(site, "TK101_LT", range(0, 120, 60))[-1] == 12.0
