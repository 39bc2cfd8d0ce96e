"""The scenario library against the real pipeline: real Mosquitto, the whole service on a
``ScenarioClock``, verdicts from the alarm topic — through the runner the CLI uses.

Every bundled scenario must pass, and must fail when the rules behind its expected
alarms are gone (``[detectors] disabled``): each check can fail. The two runs of a
scenario go side by side, each with its own broker and service, to keep the suite short.
The services load the example's models of normal operation (ANOMALY), as the bundled
config does.

Scenarios of more than :data:`LIVE_UP_TO_S` of scenario time (the slow faults, hours;
two days of normal operation) run through the backtest path instead
(``scenario run --backtest``, :mod:`simulators.offline`): the same decoder, detectors
and journal, no broker, in seconds. That what this path raises is what the service
raises is checked on the runaway, live and recorded, then backtested.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from hazwatch.app import Hazwatch
from hazwatch.errors import ConfigError
from hazwatch.models import iso_to_ms
from hazwatch.registry import load_registry
from hazwatch.settings import MqttSettings, Settings, load_settings
from simulators.backtest import run_backtest
from simulators.broker import Broker
from simulators.comparison import compare
from simulators.formats import FORMATS
from simulators.offline import run_offline
from simulators.record import Recorder
from simulators.recording import RecordingReader
from simulators.runner import (
    ScenarioRun,
    bundled_scenarios,
    codec_overrides,
    run_embedded,
    run_external,
    scaled_overrides,
)
from simulators.scenario import load_scenario, with_format, with_premises
from simulators.timebase import ScenarioClock, aligned_start_ms
from simulators.verdict import ScenarioReport
from tests.conftest import EXAMPLE_REGISTRY, EXAMPLES, RunService
from tests.helpers import eventually
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

SPEED = 25.0
HAZWATCH = [sys.executable, "-m", "hazwatch.cli"]
LIVE_UP_TO_S = 900
"""Longer scenarios run through the backtest path (at 25x, two days would take 2 hours)."""
MODELS = EXAMPLES / "models" / "normal.json"
CONFIG = EXAMPLES / "hazwatch.toml"
LIBRARY = sorted(bundled_scenarios())
LIVE = [
    n
    for n in LIBRARY
    if load_scenario(bundled_scenarios()[n], load_registry(EXAMPLE_REGISTRY)).duration_s
    <= LIVE_UP_TO_S
]


@pytest.fixture
def second_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker for the run without the rules (requested first: stopped last)."""
    server = Mosquitto(tmp_path / "mosquitto-2")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def play(
    name: str, run_service: RunService, broker: Mosquitto, overrides: Mapping[str, Any]
) -> ScenarioReport:
    registry = load_registry(EXAMPLE_REGISTRY)
    scenario = load_scenario(bundled_scenarios()[name], registry)
    registry = with_premises(registry, scenario)
    clock = ScenarioClock(SPEED, aligned_start_ms())
    await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "detectors.models": [str(MODELS)],
            "mqtt.url": broker.url,
            **scaled_overrides(Settings(), SPEED),
            **overrides,
        },
        clock=clock,
        registry=registry,
    )
    mqtt = MqttSettings(url=broker.url)
    async with ScenarioRun(scenario, registry, mqtt, clock, source=name) as run:
        return await run.play()


@pytest.mark.parametrize("name", LIVE)
async def test_scenario_passes_and_fails_without_its_rules(
    name: str,
    second_mosquitto: Mosquitto,
    run_service: RunService,
    mosquitto: Mosquitto,
    tmp_path: Path,
) -> None:
    scenario = load_scenario(bundled_scenarios()[name], load_registry(EXAMPLE_REGISTRY))
    expected_types = sorted({e.type.value for e in scenario.expect})
    apart = tmp_path / "without-rules"
    passing, without_rules = await asyncio.gather(
        play(name, run_service, mosquitto, {}),
        play(
            name,
            run_service,
            second_mosquitto,
            {
                "detectors.disabled": expected_types,
                "mqtt.client_id": "hazwatch-test-2",
                "storage.path": str(apart / "readings.db"),
                "journal.path": str(apart / "journal.db"),
                "ingest.spool_path": str(apart / "spool.db"),
            },
        ),
    )
    report = "\n".join(passing.lines())
    assert passing.passed, report
    assert [r.status for r in passing.expected] == [
        "seen" if e.optional else "pass" for e in scenario.expect
    ], report
    assert passing.readings > 0
    failed = "\n".join(without_rules.lines())
    assert not without_rules.passed, failed
    assert all(r.status == "fail" for r in without_rules.expected if not r.expectation.optional)
    assert without_rules.unexpected == (), failed  # disabling raised nothing else


def without(types: list[str], tmp_path: Path) -> Path:
    """The example config with these alarm types disabled."""
    config = tmp_path / "without.toml"
    config.write_text(
        CONFIG.read_text()
        .replace('registry = "registry"', f'registry = "{EXAMPLE_REGISTRY}"')
        .replace('models = ["models/normal.json"]', f'models = ["{MODELS}"]\ndisabled = {types}')
    )
    return config


@pytest.mark.parametrize("name", [n for n in LIBRARY if n not in LIVE])
def test_long_scenario_passes_and_fails_without_its_rules_through_the_backtest_path(
    name: str, tmp_path: Path
) -> None:
    scenario = load_scenario(bundled_scenarios()[name], load_registry(EXAMPLE_REGISTRY))
    report = run_offline(bundled_scenarios()[name])
    text = "\n".join(report.lines())
    assert report.passed, text
    assert [r.status for r in report.expected] == [
        "seen" if e.optional else "pass" for e in scenario.expect
    ], text
    required = sorted({e.type.value for e in scenario.expect if not e.optional})
    if not required:  # normal operation: nothing may come, and nothing did
        assert (report.expected, report.unexpected) == ((), ()), text
        return
    first_limit = min(
        (
            r.alarm.raised_s
            for r in report.expected
            if r.alarm and r.expectation.type.value in LIMITS
        ),
        default=None,
    )
    early = [
        r
        for r in report.expected
        if r.expectation.type.value in ("ANOMALY", "TREND") and not r.expectation.optional
    ]
    assert first_limit is not None
    assert all(r.alarm and r.alarm.raised_s < first_limit for r in early), text
    failing = run_offline(bundled_scenarios()[name], without(required, tmp_path))
    assert not failing.passed
    assert all(r.status == "fail" for r in failing.expected if not r.expectation.optional)
    assert failing.unexpected == (), "\n".join(failing.lines())


LIMITS = ("HH", "H", "L", "LL")


def test_the_drifting_transmitter_is_the_point_anomaly_names_first() -> None:
    report = run_offline(bundled_scenarios()["transmitter_drift"])
    [anomaly] = [r.alarm for r in report.expected if r.expectation.type.value == "ANOMALY"]
    assert anomaly is not None
    assert anomaly.alarm.message.startswith("Nitration reactor: abnormal operation — R201_PT +")
    details = anomaly.alarm.details
    assert details is not None
    assert details["contributions"][0]["tag"] == "R201_PT"
    assert details["spe"] > details["spe_limit"]  # off the patterns, not along them


async def test_anomaly_in_a_backtest_is_what_the_live_service_raised(
    run_service: RunService, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The runaway live at 25x (Mosquitto, the service, the models), every message
    recorded; the backtest of the recording raises the same alarms — ANOMALY with the
    same time, message and contributions."""
    registry = load_registry(EXAMPLE_REGISTRY)
    scenario = load_scenario(bundled_scenarios()["reactor_runaway"], registry)
    clock = ScenarioClock(SPEED, aligned_start_ms())
    service = await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "detectors.models": [str(MODELS)],
            **scaled_overrides(Settings(), SPEED),
        },
        clock=clock,
        registry=registry,
    )
    path = tmp_path / "runaway.jsonl"
    mqtt = MqttSettings(url=mosquitto.url)
    async with Recorder(Broker.from_url(mosquitto.url), path, clock=clock) as recorder:
        async with ScenarioRun(scenario, registry, mqtt, clock, source="runaway") as run:
            report = await run.play()
        published = service.journal.list_alarms(limit=100)
        await eventually(lambda: service.journal.pending_count() == 0, what="alarms published")
        expected_messages = recorder.messages  # what came before the gateways leave
    assert report.passed, "\n".join(report.lines())
    assert expected_messages > 0
    [live] = [a for a in published if a.type.value == "ANOMALY"]
    settings = load_settings(CONFIG, environ={}, overrides={"detectors.models": [str(MODELS)]})
    with RecordingReader(path) as reader:
        result = run_backtest(settings, registry, reader.header.started_ms, list(reader))
    [backtested] = [a for a in result.alarms if a.type.value == "ANOMALY"]
    assert (backtested.tag, backtested.raised_at, backtested.message, backtested.details) == (
        live.tag,
        live.raised_at,
        live.message,
        live.details,
    )
    # everything else the scenario raised, too (not what the gateways leaving said after)
    end_ms = clock.stamp_ms(scenario.duration_s)
    recorded, backtested_all = (
        [a for a in alarms if iso_to_ms(a.raised_at) <= end_ms]
        for alarms in (result.recorded_alarms, result.alarms)
    )
    comparison = compare(recorded, backtested_all, result.started_ms, 2_000)
    assert comparison.identical, comparison
    assert comparison.same == len(scenario.expect)


QUICK_OVERFILL = """
name = "Quick overfill"
duration_s = 12
seed = 1
[[signals]]
enterprise = "E001"
tag = "TK102_LT"
start = 9.0
noise = 0
[[events]]
at_s = 3
type = "ramp"
enterprise = "E001"
tag = "TK102_LT"
to = 11.5
[[expect]]
type = "H"
tag = "TK102_LT"
after_s = 4
before_s = 6
[[expect]]
type = "HH"
tag = "TK102_LT"
after_s = 4
before_s = 6
"""


async def test_external_run_against_a_service_on_the_wall_clock(
    run_service: RunService, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    await run_service({"registry": str(EXAMPLE_REGISTRY), "detectors.tick_s": 0.2})
    config = tmp_path / "hazwatch.toml"
    config.write_text(f'registry = "{EXAMPLE_REGISTRY}"\n[mqtt]\nurl = "{mosquitto.url}"\n')
    scenario = tmp_path / "quick.toml"
    scenario.write_text(QUICK_OVERFILL)
    report = await run_external(scenario, config)
    assert report.passed, "\n".join(report.lines())
    assert (report.mode, report.speed) == ("external", 1.0)
    assert [r.alarm.raised_s for r in report.expected if r.alarm] == [5.0, 5.0]


async def test_external_run_refuses_premises_the_registry_does_not_share(tmp_path: Path) -> None:
    config = tmp_path / "hazwatch.toml"
    config.write_text(f'registry = "{EXAMPLE_REGISTRY}"\n')
    with pytest.raises(ConfigError, match="E002 is operating, the scenario assumes suspended"):
        await run_external(bundled_scenarios()["suspended_night"], config)


async def test_embedded_runs_one_after_another_on_a_persistent_broker(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The embedded service's persistent session outlives a run; what the last run left
    in it (its gateways' final `offline`, readings stamped on its clock) must not reach
    the next run."""
    config = tmp_path / "hazwatch.toml"
    config.write_text(f'registry = "{EXAMPLE_REGISTRY}"\n[mqtt]\nurl = "{mosquitto.url}"\n')
    for _ in range(2):
        report = await run_embedded(bundled_scenarios()["toxic_leak"], config, speed=30)
        assert report.passed, "\n".join(report.lines())


def hazwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HAZWATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def test_cli_runs_a_bundled_scenario_embedded_and_reports_each_alarm() -> None:
    result = hazwatch("scenario", "run", "toxic_leak", "--speed", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Toxic leak, reactor hall" in out
    assert "embedded service, speed 30×, seed 11" in out
    assert "PASS  H   E001/GD201  at 45.0 s (window 40–55 s)" in out
    assert "PASS  HH  E001/GD201  at 50.0 s (window 45–60 s)" in out
    assert "unexpected alarms\n  none" in out
    assert "result: PASS — 2 of 2 expected alarms, 0 unexpected" in out
    assert "Traceback" not in result.stderr


def test_cli_json_report_and_exit_status_of_a_failing_run(tmp_path: Path) -> None:
    """A scenario whose expectation is wrong (HH long before the leak) fails, exit 1."""
    text = (EXAMPLES / "scenarios" / "toxic_leak.toml").read_text()
    wrong = text.replace("after_s = 45\nbefore_s = 60", "after_s = 5\nbefore_s = 20")
    assert wrong != text
    scenario = tmp_path / "scenarios" / "too_early.toml"
    scenario.parent.mkdir()
    scenario.write_text(wrong)
    (tmp_path / "site.toml").write_text((EXAMPLES / "site.toml").read_text())  # its plant
    result = hazwatch("scenario", "run", str(scenario), "--speed", "30", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = orjson.loads(result.stdout)
    assert report["passed"] is False
    by_type = {e["type"]: e for e in report["expected"]}
    assert by_type["H"]["status"] == "pass"
    assert by_type["HH"]["status"] == "fail"
    assert by_type["HH"]["raised_s"] == 50.0  # came, but outside its window
    assert report["unexpected"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_scenario"], "no bundled scenario of that name (bundled: buffer_tank_valve"),
        (["tank_overfill", "--external"], "--external needs --config"),
        (
            ["tank_overfill", "--external", "--config", "x.toml", "--speed", "10"],
            "--speed applies to embedded runs",
        ),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = hazwatch("scenario", "run", *args, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_scenario_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(
        'name = "bad"\nduration_s = 60\n'
        '[[events]]\nat_s = 10\ntype = "stuck"\nenterprise = "E001"\ntag = "NO_SUCH_TAG"\n'
    )
    result = hazwatch("scenario", "run", str(scenario), timeout=30)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {scenario}: events[0] (stuck): point E001/NO_SUCH_TAG is not in the registry\n"
    )


async def play_in(
    fmt: str, name: str, run_service: RunService, broker: Mosquitto
) -> tuple[ScenarioReport, Hazwatch]:
    """A bundled scenario with its gateways speaking ``fmt``, against a service that
    decodes it (the runner's own overrides)."""
    registry = load_registry(EXAMPLE_REGISTRY)
    scenario = with_format(load_scenario(bundled_scenarios()[name], registry), fmt)
    registry = with_premises(registry, scenario)
    clock = ScenarioClock(SPEED, aligned_start_ms())
    service = await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "mqtt.url": broker.url,
            **scaled_overrides(Settings(), SPEED),
            **codec_overrides(scenario),
        },
        clock=clock,
        registry=registry,
    )
    mqtt = MqttSettings(url=broker.url)
    async with ScenarioRun(scenario, registry, mqtt, clock, source=name) as run:
        return await run.play(), service


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "hz-json"])
async def test_a_scenario_passes_whatever_the_gateways_speak(
    fmt: str, run_service: RunService, mosquitto: Mosquitto
) -> None:
    """toxic_leak (its malformed messages included) end to end in each format."""
    report, service = await play_in(fmt, "toxic_leak", run_service, mosquitto)
    assert report.passed, "\n".join(report.lines())
    decoded = service.metrics.value("hazwatch_ingest_messages_total", {"codec": fmt})
    assert decoded >= report.messages * 0.9  # the format's codec took (nearly) all of them
    assert service.metrics.value("hazwatch_ingest_rejected_total", {"reason": "decoder_error"}) == 0


async def test_sparkplug_edge_nodes_die_by_their_will_and_births_follow_reconnects(
    run_service: RunService, mosquitto: Mosquitto
) -> None:
    """gateway_outage as Sparkplug: the power cut is an NDEATH (the will) at once, the
    reconnect a new NBIRTH; the out-of-order message is a seq gap filled within the
    reorder timeout: counted, no rebirth asked."""
    report, service = await play_in("sparkplug-b", "gateway_outage", run_service, mosquitto)
    assert report.passed, "\n".join(report.lines())
    gaps = {"enterprise": "E002", "gateway": "DB01-gw"}
    assert service.metrics.value("hazwatch_gateway_seq_gaps_total", gaps) >= 1
    assert (
        service.metrics.value("hazwatch_sparkplug_rebirth_requests_total", {"reason": "seq_gap"})
        == 0
    )
    assert service.metrics.value("hazwatch_ingest_rejected_total", {"reason": "no_birth"}) == 0
