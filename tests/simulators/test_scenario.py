"""Scenario files: the bundled library loads, and every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazwatch.errors import ConfigError
from hazwatch.models import AlarmType, EnterpriseStatus, Registry
from simulators.runner import bundled_scenarios, find_scenario
from simulators.scenario import load_scenario, unmet_premises, with_premises

HEAD = 'name = "t"\nduration_s = 100\n'
TANK = (
    '[[models]]\ntype = "tank"\nid = "TK101"\nenterprise = "E001"\nlevel = "TK101_LT"\n'
    "level_m = 5\n"
)


def load(tmp_path: Path, registry: Registry, body: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(HEAD + body)
    load_scenario(path, registry)


def test_every_bundled_scenario_loads_and_expects_something(example_registry: Registry) -> None:
    library = bundled_scenarios()
    assert set(library) >= {
        "tank_overfill",
        "reactor_runaway",
        "toxic_leak",
        "gateway_outage",
        "stuck_sensor",
        "suspended_night",
    }
    for path in library.values():
        scenario = load_scenario(path, example_registry)
        assert scenario.expect or "no alarm" in scenario.description, path
        assert scenario.description, path


def test_benign_faults_appear_in_several_scenarios(example_registry: Registry) -> None:
    kinds: dict[str, int] = {}
    for path in bundled_scenarios().values():
        for event in {e.type for e in load_scenario(path, example_registry).events}:
            kinds[event] = kinds.get(event, 0) + 1
    for benign in ("duplicate", "out_of_order", "malformed", "clock_skew"):
        assert kinds.get(benign, 0) >= 2, benign


def test_find_scenario_by_name_or_path(tmp_path: Path) -> None:
    assert find_scenario("tank_overfill").name == "tank_overfill.toml"
    own = tmp_path / "own.toml"
    own.write_text(HEAD)
    assert find_scenario(str(own)) == own
    with pytest.raises(
        ConfigError,
        match=r"nope: no such scenario file.*bundled: buffer_tank_valve, feed_composition, ",
    ):
        find_scenario("nope")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[events]]\nat_s = 1\ntype = "explode"\n', "events[0]: Input tag 'explode'"),
        (
            '[[events]]\nat_s = 1\ntype = "stuck"\nenterprise = "E001"\ntag = "NOPE"\n',
            "events[0] (stuck): point E001/NOPE is not in the registry",
        ),
        (
            '[[events]]\nat_s = 1\ntype = "drift"\nenterprise = "E001"\ntag = "TK101_LT"\n',
            "events[0] (drift).rate_per_min: Field required",
        ),
        (
            (
                '[[events]]\nat_s = 1\ntype = "stuck"\nenterprise = "E001"\ntag = "TK101_LT"\n'
                "until_s = 500\n"
            ),
            "events[0] (stuck): until_s 500 must lie after at_s, up to duration_s",
        ),
        (
            (
                '[[events]]\nat_s = 100\ntype = "disconnect"\nenterprise = "E001"\n'
                'gateway = "MH01-gw"\n'
            ),
            "events[0] (disconnect): at_s 100 is not before duration_s",
        ),
        (
            '[[events]]\nat_s = 1\ntype = "disconnect"\nenterprise = "E001"\ngateway = "GW9"\n',
            (
                "gateway E001/GW9 is not in the registry (gateways are named "
                "<installation>-gw: MH01-gw, MH02-gw, MH03-gw)"
            ),
        ),
        (
            (
                '[[events]]\nat_s = 1\ntype = "malformed"\nenterprise = "E001"\n'
                'gateway = "MH01-gw"\nkind = "rude"\n'
            ),
            "events[0] (malformed).kind: Input should be 'not_json'",
        ),
        (
            TANK + '[[events]]\nat_s = 1\ntype = "set"\nmodel = "TK101"\ncolour = 3\n',
            (
                "events[0] (set): colour: not a parameter a tank model can change "
                "(settable: inlet_open, pump_running"
            ),
        ),
        (
            TANK + '[[events]]\nat_s = 1\ntype = "set"\nmodel = "TK101"\ninflow_m3h = -5\n',
            "events[0] (set): inflow_m3h: Input should be greater than or equal to 0",
        ),
        (
            TANK + '[[events]]\nat_s = 1\ntype = "set"\nmodel = "TK101"\ninlet_open = true\n'
            "ramp_s = 10\n",
            "events[0] (set): inlet_open: ramp_s applies to numbers; inlet_open switches",
        ),
        (
            '[[events]]\nat_s = 1\ntype = "set"\nmodel = "TK9"\ninlet_open = true\n',
            "events[0] (set): model 'TK9' is not defined (models: none)",
        ),
        (
            '[[models]]\ntype = "tank"\nid = "TK101"\nenterprise = "E001"\nlevel = "TK101_TT"\n',
            (
                "models[0] (tank TK101): level = 'TK101_TT': expected a point of kind level, "
                "got temperature"
            ),
        ),
        (
            TANK + TANK.replace('"TK101"', '"TK2"', 1),
            "models[1] (tank TK2): TK101_LT is already driven by model TK101",
        ),
        (
            '[[models]]\ntype = "reactor"\nid = "R"\nenterprise = "E001"\n',
            "models[0] (reactor).temperature: Field required",
        ),
        (
            TANK + '[[signals]]\nenterprise = "E001"\ntag = "TK101_LT"\nstart = 3\n',
            "signals[0]: start: E001/TK101_LT follows model TK101",
        ),
        (
            '[[expect]]\ntype = "HH"\ntag = "NOPE"\n',
            "expect[0]: tag: point NOPE is not in the registry",
        ),
        (
            '[[expect]]\ntype = "GATEWAY_OFFLINE"\ntag = "TK101_LT"\n',
            "expect[0]: tag: no gateway TK101_LT (GATEWAY_OFFLINE names a gateway)",
        ),
        (
            '[[expect]]\ntype = "HH"\ntag = "TK101_LT"\nafter_s = 50\nbefore_s = 20\n',
            "expect[0] (HH TK101_LT): expected after_s <= before_s <= duration_s, got 50, 20, 100",
        ),
        (
            '[[expect]]\ntype = "HHH"\ntag = "TK101_LT"\n',
            "expect[0].type: Input should be 'HH'",
        ),
        ('[enterprises.E404]\nstatus = "suspended"\n', "enterprises.E404: enterprise E404"),
        ("colour = 3\n", "colour: Extra inputs are not permitted"),
    ],
)
def test_mistakes_name_the_file_and_the_key(
    tmp_path: Path, example_registry: Registry, body: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, example_registry, body)
    text = str(raised.value)
    assert text.startswith(f"{tmp_path / 's.toml'}: ")
    assert message in text


def test_unreadable_file_is_a_config_error(tmp_path: Path, example_registry: Registry) -> None:
    with pytest.raises(ConfigError, match="scenario file not found"):
        load_scenario(tmp_path / "missing.toml", example_registry)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(bad, example_registry)


def test_premises_change_a_copy_of_the_registry(tmp_path: Path, example_registry: Registry) -> None:
    path = tmp_path / "s.toml"
    path.write_text(HEAD + '[enterprises.E002]\nstatus = "suspended"\n')
    scenario = load_scenario(path, example_registry)
    assumed = with_premises(example_registry, scenario)
    assert assumed.enterprises["E002"].status is EnterpriseStatus.SUSPENDED
    assert example_registry.enterprises["E002"].status is EnterpriseStatus.OPERATING
    assert assumed.point("E002", "P01") is not None
    assert unmet_premises(example_registry, scenario) == [
        "E002 is operating, the scenario assumes suspended"
    ]
    assert unmet_premises(assumed, scenario) == []


def test_expectation_defaults_to_the_whole_run(tmp_path: Path, example_registry: Registry) -> None:
    path = tmp_path / "s.toml"
    path.write_text(HEAD + '[[expect]]\ntype = "STALE"\ntag = "GD101"\noptional = true\n')
    scenario = load_scenario(path, example_registry)
    [expectation] = scenario.expect
    assert expectation.type is AlarmType.STALE
    assert scenario.window(expectation) == (0.0, 100.0)
