"""A scenario run without a broker: the backtest's path, on scenario time, at full speed.

``hazwatch scenario run NAME --backtest`` and the slow-fault scenarios in ``make test``
use this: a 48-hour scenario in seconds. The :class:`~simulators.player.ScenarioPlayer`
makes the very messages the publisher would send (same seed, same bytes); each is fed to
a :class:`~simulators.backtest.Backtest` — the decoder, the validator, and the
service's own path from detectors to the alarm journal
(:class:`~hazwatch.detection.DetectorFeed`) — received at the time it is stamped with,
on a manual clock that also drives the detector tick. The alarms are judged as an
embedded run's are (:func:`~simulators.verdict.judge`).

Scenario time 0 is :data:`START_MS` (Monday 2026-01-05 00:00 UTC), not the clock's
hour: a run is the same to the byte every time — its report, and the recording
``--record`` writes of the messages (what ``hazwatch learn`` is given to learn the
bundled models from).

What it leaves out, next to an embedded run: MQTT itself (the broker, QoS, sessions),
the spool, storage and notifiers, and the service's batching; the messages arrive in
publishing order with no delay. A gateway's connection is its status messages: the
retained ``online`` when it connects, its will (``offline``) when a ``disconnect``
event drops it. Everything that decides an alarm — decoding, validation, every
detector, the alarm lifecycle — is the service's own code, so an embedded run and
this one raise the same alarms; times from the service's tick (STALE,
GATEWAY_OFFLINE) may differ by the tick (``[detectors] tick_s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from hazwatch.demo import examples_dir
from hazwatch.models import iso_to_ms
from hazwatch.registry import load_registry
from hazwatch.settings import load_settings
from simulators.backtest import Backtest
from simulators.player import Connect, Drop, Publish, ScenarioPlayer
from simulators.publisher import OFFLINE, ONLINE
from simulators.recording import RecordedMessage, RecordingHeader, RecordingWriter
from simulators.scenario import Scenario, load_scenario, with_premises
from simulators.verdict import ObservedAlarm, ScenarioReport, judge

PROGRESS_EVERY = 500
"""Messages between two progress reports."""
START_MS = 1_767_571_200_000
"""2026-01-05T00:00:00Z: scenario second 0 of every run through this path."""


def scenario_messages(
    player: ScenarioPlayer, start_ms: int, until_s: float
) -> Iterator[RecordedMessage]:
    """What the broker would deliver to the service, in order, received when stamped."""
    status = {g.key: g.status_topic for g in player.gateways}
    for topic in status.values():  # every gateway connects before the first step
        yield RecordedMessage(start_ms, topic, ONLINE, retain=True)
    for step in player.steps(until_s=until_s):
        t_ms = start_ms + round(step.t_s * 1000)
        for action in step.actions:
            if isinstance(action, Publish):
                yield RecordedMessage(t_ms, action.message.topic, action.message.payload)
            elif isinstance(action, Connect):
                yield RecordedMessage(t_ms, status[action.gateway], ONLINE, retain=True)
            elif isinstance(action, Drop):
                yield RecordedMessage(t_ms, status[action.gateway], OFFLINE, retain=True)


def run_offline(
    file: Path,
    config: Path | None = None,
    *,
    seed: int | None = None,
    on_progress: Callable[[float, float], None] | None = None,
    record: Path | None = None,
) -> ScenarioReport:
    """Run ``file`` through the backtest path; the same report as an embedded run.
    ``record``: also write the messages, as received, to this new recording."""
    started = time.monotonic()
    settings = load_settings(config or examples_dir() / "hazwatch.toml")
    registry = load_registry(settings.registry)
    scenario: Scenario = load_scenario(file, registry)
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    registry = with_premises(registry, scenario)
    start_ms = START_MS
    player = ScenarioPlayer(registry, scenario, lambda t: start_ms + round(t * 1000))
    end_ms = start_ms + round(scenario.duration_s * 1000)
    messages = 0
    with ExitStack() as stack:
        backtest = stack.enter_context(Backtest(settings, registry, start_ms))
        writer = None
        if record is not None:
            header = RecordingHeader(start_ms, f"scenario {file.name}, seed {scenario.seed}")
            writer = stack.enter_context(RecordingWriter(record, header))
        for message in scenario_messages(player, start_ms, scenario.duration_s):
            backtest.feed(message)
            if writer is not None:
                writer.write(message)
            messages += 1
            if on_progress is not None and messages % PROGRESS_EVERY == 0:
                on_progress((message.t - start_ms) / 1000, scenario.duration_s)
        backtest.advance(end_ms)
        result = backtest.result()
    observed = [
        ObservedAlarm(alarm, (iso_to_ms(result.first_raised_at[alarm.id]) - start_ms) / 1000)
        for alarm in result.alarms
    ]
    expected, unexpected = judge(scenario, observed)
    return ScenarioReport(
        scenario=scenario.name,
        source=str(file),
        mode="backtest",
        broker="none",
        seed=scenario.seed,
        speed=0.0,
        duration_s=scenario.duration_s,
        expected=tuple(expected),
        unexpected=tuple(unexpected),
        messages=messages,
        readings=result.readings,
        max_lag_s=0.0,
        sample_s=player.interval_s,
        wall_s=time.monotonic() - started,
    )
