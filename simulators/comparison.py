"""Alarms of a backtest against those a live run published: what is the same, what not.

A live service publishes every alarm state change on ``hz/v1/{enterprise}/alarms``;
the last message of each alarm in a recording is its final state. :func:`compare`
pairs those alarms with a backtest's per (enterprise, installation, tag, type) in
order of raising. Values and limits must be equal; raised and cleared times may differ
by a tolerance: times that come from readings are the readings' own, but times from
ticks and status messages are "now" — the live service's clock then, the recorder's
receive time in the backtest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hazwatch.models import Alarm, AlarmType, iso_to_ms

NOT_MODELLED = frozenset({AlarmType.SYSTEM})
"""Alarm types about the platform itself, which a backtest cannot raise."""


@dataclass(frozen=True)
class AlarmDifference:
    recorded: Alarm
    backtest: Alarm
    problems: tuple[str, ...]


@dataclass
class Comparison:
    """The backtest's alarms against those a live run published, paired per
    (enterprise, installation, tag, type) in order of raising."""

    tolerance_ms: int
    same: int = 0
    different: list[AlarmDifference] = field(default_factory=list)
    only_recorded: list[Alarm] = field(default_factory=list)
    only_backtest: list[Alarm] = field(default_factory=list)
    not_compared: int = 0
    """Recorded alarms raised before the recording started, or of types a backtest
    does not model (SYSTEM)."""

    @property
    def identical(self) -> bool:
        return not (self.different or self.only_recorded or self.only_backtest)


def compare(
    recorded: Iterable[Alarm], backtest: Iterable[Alarm], started_ms: int, tolerance_ms: int
) -> Comparison:
    """Pair alarms and compare them: times within ``tolerance_ms`` (a tick, a batch:
    the live service's "now" is not the recorder's), values and limits exactly."""
    comparison = Comparison(tolerance_ms)
    live: dict[tuple[str, str, str, AlarmType], list[Alarm]] = {}
    for alarm in recorded:
        if alarm.type in NOT_MODELLED or iso_to_ms(alarm.raised_at) < started_ms:
            comparison.not_compared += 1
        else:
            live.setdefault(_key(alarm), []).append(alarm)
    ours: dict[tuple[str, str, str, AlarmType], list[Alarm]] = {}
    for alarm in backtest:
        ours.setdefault(_key(alarm), []).append(alarm)
    for key in sorted(live.keys() | ours.keys()):
        theirs_, mine = live.get(key, []), ours.get(key, [])
        for a, b in zip(theirs_, mine, strict=False):
            problems = _differences(a, b, tolerance_ms)
            if problems:
                comparison.different.append(AlarmDifference(a, b, problems))
            else:
                comparison.same += 1
        comparison.only_recorded.extend(theirs_[len(mine) :])
        comparison.only_backtest.extend(mine[len(theirs_) :])
    return comparison


def _key(alarm: Alarm) -> tuple[str, str, str, AlarmType]:
    return (alarm.enterprise, alarm.installation, alarm.tag, alarm.type)


def _differences(recorded: Alarm, backtest: Alarm, tolerance_ms: int) -> tuple[str, ...]:
    problems = []
    if abs(iso_to_ms(recorded.raised_at) - iso_to_ms(backtest.raised_at)) > tolerance_ms:
        problems.append(f"raised {recorded.raised_at} live, {backtest.raised_at} here")
    if (recorded.cleared_at is None) != (backtest.cleared_at is None) or (
        recorded.cleared_at is not None
        and backtest.cleared_at is not None
        and abs(iso_to_ms(recorded.cleared_at) - iso_to_ms(backtest.cleared_at)) > tolerance_ms
    ):
        problems.append(
            f"cleared {recorded.cleared_at or 'never'} live, {backtest.cleared_at or 'never'} here"
        )
    if recorded.value != backtest.value:
        problems.append(f"value {recorded.value} live, {backtest.value} here")
    if recorded.limit != backtest.limit:
        problems.append(f"limit {recorded.limit} live, {backtest.limit} here")
    return tuple(problems)
