"""Run a scenario against the pipeline and judge the alarms that come out.

:class:`ScenarioRun` is what ``hazwatch scenario run`` and the integration tests share:
it watches the contract's alarm topic ``hz/v1/+/alarms`` (docs/contract.md §2) — never the
service's internals — connects the simulated gateways, plays the timeline on a
:class:`~simulators.timebase.ScenarioClock`, lets the run settle for
:data:`SETTLE_S`, and :func:`~simulators.verdict.judge`\\ s what arrived.

Two ways to have a service to run against:

- :func:`run_embedded` starts the real :class:`~hazwatch.app.Hazwatch` in this process
  on the same :class:`ScenarioClock` (time-driven detectors see scenario time at any
  speed), with the config's registry, ``[ingest]`` and ``[detectors]``, storage,
  journal and spool in a temporary directory, and the console on a free port. The
  broker is the config's, or — without a config — the embedded one of the demo.
- :func:`run_external` publishes to the config's broker for a service already running
  there, on the wall clock (speed 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiomqtt
import structlog
from pydantic import ValidationError

from alerting.notifiers import ALARMS_FILTER
from hazwatch.app import Hazwatch
from hazwatch.demo import EmbeddedBroker, examples_dir, free_port
from hazwatch.errors import ConfigError
from hazwatch.models import Alarm, Registry, iso_to_ms
from hazwatch.registry import load_registry
from hazwatch.settings import MqttSettings, Settings, load_settings
from hazwatch.tls import mqtt_ssl_context
from simulators.broker import Broker
from simulators.formats import codec_entry
from simulators.logins import GatewayLogins
from simulators.publisher import ScenarioPublisher
from simulators.scenario import (
    Scenario,
    load_scenario,
    unmet_premises,
    with_format,
    with_premises,
)
from simulators.timebase import ScenarioClock, aligned_start_ms
from simulators.verdict import ObservedAlarm, ScenarioReport, judge

log = structlog.get_logger(__name__)

DEFAULT_SPEED = 25.0
"""Embedded runs: the bundled scenarios (3-11 minutes of plant time) take 8-30 s."""
SETTLE_S = 2.0
"""Wall seconds the run goes on after its end, for the last alarms to come through."""
READY_TIMEOUT_S = 30.0

ProgressCallback = Callable[[float, float], None]
"""Told the scenario second reached and the run's duration, at every step."""


def bundled_scenarios() -> dict[str, Path]:
    """The scenario library shipped in the package, by name."""
    return {p.stem: p for p in sorted((examples_dir() / "scenarios").glob("*.toml"))}


def find_scenario(name_or_path: str) -> Path:
    """A scenario file: the path given, or the bundled scenario of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_scenarios()
    if name_or_path not in bundled:
        raise ConfigError(
            f"{name_or_path}: no such scenario file, and no bundled scenario of that name "
            f"(bundled: {', '.join(bundled)})"
        )
    return bundled[name_or_path]


def scaled_overrides(settings: Settings, speed: float) -> dict[str, Any]:
    """Settings for a service on a ``ScenarioClock(speed)``: its periods that run on
    the wall clock shrink with the speed, so they stay what they are in scenario time —
    the detector tick (STALE checked once per scenario second)."""
    return {"detectors.tick_s": settings.detectors.tick_s / speed}


def _client(mqtt: MqttSettings, identifier: str) -> aiomqtt.Client:
    """A clean-session client with the settings' credentials and TLS."""
    return aiomqtt.Client(
        mqtt.host,
        mqtt.port,
        identifier=identifier,
        clean_session=True,
        username=mqtt.username or None,
        password=mqtt.password.get_secret_value() or None,
        tls_context=mqtt_ssl_context(mqtt),
    )


async def discard_session(mqtt: MqttSettings, client_id: str) -> None:
    """Empty the broker's persistent session of ``client_id``: connecting with a clean
    session discards it. An embedded run's service keeps one (as every ingest does);
    what an earlier run left in it — messages not yet acknowledged when it stopped,
    stamped on that run's clock — must not reach this run's detectors."""
    try:
        async with _client(mqtt, client_id):
            pass
    except aiomqtt.MqttError as exc:
        raise ConfigError(f"cannot connect to the MQTT broker at {mqtt.url}: {exc}") from exc


class AlarmWatcher:
    """Subscribes to every enterprise's alarm topic; keeps each alarm's first message."""

    def __init__(self, mqtt: MqttSettings) -> None:
        self._mqtt = mqtt
        self.alarms: dict[str, Alarm] = {}
        self.unreadable: list[str] = []
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        m = self._mqtt
        client = _client(m, f"hazwatch-scenario-watch-{time.time_ns()}")
        try:
            await self._stack.enter_async_context(client)
            await client.subscribe(ALARMS_FILTER, qos=1)
        except aiomqtt.MqttError as exc:
            await self._stack.aclose()
            raise ConfigError(f"cannot watch alarms on the broker at {m.url}: {exc}") from exc
        reader = asyncio.create_task(self._read(client), name="alarm-watcher")
        self._stack.push_async_callback(_cancelled, reader)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = (
                bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
            )
            try:
                alarm = Alarm.model_validate_json(payload)
            except ValidationError as exc:
                text = payload[:200].decode(errors="replace")
                self.unreadable.append(
                    f"{message.topic.value}: not alarm JSON ({exc.error_count()} errors): {text}"
                )
                continue
            self.alarms.setdefault(alarm.id, alarm)


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class ScenarioRun:
    """One run: ``async with`` watches alarms and connects the gateways (announcing
    them ``online``), :meth:`play` runs the timeline and returns the verdict; leaving
    says the gateways are ``offline``.

    Start the service before :meth:`play` on the same ``clock`` (held until then).
    A service started *after* entering sees the gateways' retained ``online``, not an
    ``offline`` left on a persistent broker by an earlier run.
    """

    def __init__(
        self,
        scenario: Scenario,
        registry: Registry,
        mqtt: MqttSettings,
        clock: ScenarioClock,
        *,
        source: str = "",
        mode: Literal["embedded", "external"] = "embedded",
        settle_s: float = SETTLE_S,
        on_progress: ProgressCallback | None = None,
        logins: GatewayLogins | None = None,
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        self._mqtt = mqtt
        self._source = source
        self._mode = mode
        self._watcher = AlarmWatcher(mqtt)
        duration = scenario.duration_s
        self._publisher = ScenarioPublisher(
            Broker.from_settings(mqtt),
            registry,
            scenario,
            timebase=clock,
            until_s=duration + settle_s * clock.speed,
            on_step=None
            if on_progress is None
            else lambda t: on_progress(min(t, duration), duration),
            logins=logins,
        )
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        try:
            await self._stack.enter_async_context(self._watcher)
            await self._stack.enter_async_context(self._publisher)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def close_gateways(self) -> None:
        """Gateways say ``offline`` now (while the service still runs to take it)."""
        await self._publisher.close()

    async def play(self) -> ScenarioReport:
        started = time.monotonic()
        await self._publisher.run()
        observed = [
            ObservedAlarm(alarm, self.clock.scenario_s(iso_to_ms(alarm.raised_at)))
            for alarm in self._watcher.alarms.values()
        ]
        expected, unexpected = judge(self.scenario, observed)
        publisher = self._publisher
        return ScenarioReport(
            scenario=self.scenario.name,
            source=self._source,
            mode=self._mode,
            broker=self._mqtt.url,
            seed=self.scenario.seed,
            speed=self.clock.speed,
            duration_s=self.scenario.duration_s,
            expected=tuple(expected),
            unexpected=tuple(unexpected),
            messages=publisher.messages_published,
            readings=publisher.readings_published,
            max_lag_s=publisher.max_lag_s,
            sample_s=publisher.player.interval_s,
            wall_s=time.monotonic() - started,
            problems=tuple(self._watcher.unreadable),
        )


def _scenario(file: Path, registry: Registry, seed: int | None, fmt: str | None = None) -> Scenario:
    scenario = with_format(load_scenario(file, registry), fmt)
    return scenario if seed is None else scenario.model_copy(update={"seed": seed})


def codec_overrides(scenario: Scenario) -> dict[str, Any]:
    """Settings for an embedded service: it decodes hz-json and what the scenario's
    gateways speak (simulators/formats.py)."""
    if scenario.format == "hz-json":
        return {}
    return {"ingest.codecs": [codec_entry("hz-json"), codec_entry(scenario.format)]}


async def run_embedded(
    file: Path,
    config: Path | None = None,
    *,
    speed: float = DEFAULT_SPEED,
    seed: int | None = None,
    fmt: str | None = None,
    on_progress: ProgressCallback | None = None,
    logins: Path | None = None,
) -> ScenarioReport:
    """Run ``file`` against a service started here on a ``ScenarioClock(speed)``;
    ``fmt``: what the gateways speak instead of the scenario's ``format``; ``logins``:
    each gateway logs in as itself (the config's broker runs the gateway ACL)."""
    async with AsyncExitStack() as stack:
        config_file = config or examples_dir() / "hazwatch.toml"
        settings = load_settings(config_file)
        mqtt = settings.mqtt
        if config is None:
            broker = await stack.enter_async_context(EmbeddedBroker(free_port()))
            mqtt = MqttSettings(url=broker.url)
        registry = load_registry(settings.registry)
        scenario = _scenario(file, registry, seed, fmt)
        registry = with_premises(registry, scenario)
        workdir = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="hazwatch-scenario-"))
        )
        service_settings = load_settings(
            config_file,
            overrides={
                "mqtt.url": mqtt.url,
                # its own session: never take over the id of a service on the same broker
                "mqtt.client_id": f"{settings.mqtt.client_id}-scenario",
                "storage.backend": "sqlite",
                "storage.path": str(workdir / "readings.db"),
                "journal.path": str(workdir / "journal.db"),
                "ingest.spool_path": str(workdir / "spool.db"),
                "console.listen": "127.0.0.1:0",
                **scaled_overrides(settings, speed),
                **codec_overrides(scenario),
            },
        )
        await discard_session(mqtt, service_settings.mqtt.client_id)
        clock = ScenarioClock(speed, aligned_start_ms())
        run = await stack.enter_async_context(
            ScenarioRun(
                scenario,
                registry,
                mqtt,
                clock,
                source=str(file),
                on_progress=on_progress,
                logins=None if logins is None else GatewayLogins.load(logins),
            )
        )
        service = await stack.enter_async_context(Hazwatch(service_settings, registry, clock=clock))
        serving = asyncio.create_task(service.run(), name="hazwatch")
        stack.push_async_callback(_cancelled, serving)
        ready = asyncio.create_task(service.wait_subscribed())
        stack.push_async_callback(_cancelled, ready)
        done, _ = await asyncio.wait(
            {serving, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if serving in done:
            serving.result()  # raises what stopped it
        if ready not in done:
            raise ConfigError(
                f"the embedded service did not subscribe at the broker {mqtt.url} "
                f"within {READY_TIMEOUT_S:g} s"
            )
        report = await run.play()
        await run.close_gateways()
        return report


async def run_external(
    file: Path,
    config: Path,
    *,
    seed: int | None = None,
    fmt: str | None = None,
    on_progress: ProgressCallback | None = None,
    logins: Path | None = None,
) -> ScenarioReport:
    """Run ``file`` against the service already running at the config's broker (its
    ``[[ingest.codecs]]`` must decode the gateways' format). ``logins``: each gateway
    logs in as itself (:mod:`simulators.logins`); the alarm watcher logs in with the
    config's ``[mqtt]`` credentials."""
    settings = load_settings(config)
    registry = load_registry(settings.registry)
    scenario = _scenario(file, registry, seed, fmt)
    kinds = {entry.kind for entry in settings.ingest.codecs}
    if scenario.format not in kinds:
        raise ConfigError(
            f"{config}: the gateways speak {scenario.format}, which no [[ingest.codecs]] entry "
            f"decodes; add: {codec_entry(scenario.format)}"
        )
    unmet = unmet_premises(registry, scenario)
    if unmet:
        raise ConfigError(
            f"{file}: the scenario assumes what the registry of {config} does not say "
            f"({'; '.join(unmet)}); the running service raises alarms by its registry — "
            "run it embedded, or change the registry"
        )
    gateway_logins = None if logins is None else GatewayLogins.load(logins)
    clock = ScenarioClock(1.0)
    async with ScenarioRun(
        scenario,
        registry,
        settings.mqtt,
        clock,
        source=str(file),
        mode="external",
        on_progress=on_progress,
        logins=gateway_logins,
    ) as run:
        return await run.play()
