"""The verdict of a scenario run: the alarms that came out, against the expected ones.

Pure: :func:`judge` takes the alarms seen on the alarm topic (the first message of
each alarm id; later messages of the same alarm — cleared, re-raised, acknowledged —
are the same alarm) with their raised time in scenario seconds, and the scenario's
``[[expect]]`` list:

- an expectation **passes** when an alarm of its type on its tag (and enterprise, if
  given) was raised within ``[after_s, before_s]``; every such alarm is claimed by it;
- it **fails** when none was — then the nearest such alarm outside the window, if any,
  is shown with it (raised too early or too late);
- an ``optional`` expectation is *seen* or *not seen*, never a failure;
- every alarm raised during the run that no expectation claimed is **unexpected**, and
  fails the run: a false alarm matters as much as a missed one.

Alarms raised before scenario second 0 (a service running before the run) or after
``duration_s`` (while the run settles) are not the scenario's and are left out.

>>> from rich.markup import escape

from hazwatch.models import Alarm
>>> def alarm(id, type, tag, raised_s):
...     alarm = Alarm(id=id, enterprise="E001", installation="MH01", tag=tag, type=type,
...                   priority="high", state="active_unack", value=None, limit=None,
...                   raised_at="2026-01-01T00:00:00.000Z", cleared_at=None, message="")
...     return ObservedAlarm(alarm, raised_s)
>>> scenario = Scenario(name="x", duration_s=100, expect=[
...     {"type": "H", "tag": "TK101_LT", "after_s": 20, "before_s": 40},
...     {"type": "HH", "tag": "TK101_LT", "after_s": 30, "before_s": 50}])
>>> results, unexpected = judge(scenario, [alarm("a1", "H", "TK101_LT", 31.0),
...                                        alarm("a2", "STALE", "GD101", 60.0)])
>>> [(r.status, r.alarm.raised_s if r.alarm else None) for r in results]
[('pass', 31.0), ('fail', None)]
>>> [a.alarm.tag for a in unexpected]
['GD101']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from rich.markup import escape

from hazwatch.models import Alarm
from simulators.scenario import Expectation, Scenario

Status = Literal["pass", "fail", "seen", "not_seen"]
EARLY_TOLERANCE_S = 0.001
"""Scenario second 0 to the millisecond: readings stamped at t = 0 raise at 0."""


@dataclass(frozen=True)
class ObservedAlarm:
    alarm: Alarm
    raised_s: float
    """When it was raised, in scenario seconds."""

    def as_dict(self) -> dict[str, Any]:
        return {"raised_s": round(self.raised_s, 3), "alarm": self.alarm.model_dump(mode="json")}


@dataclass(frozen=True)
class ExpectationResult:
    expectation: Expectation
    window: tuple[float, float]
    status: Status
    alarm: ObservedAlarm | None
    """The alarm that met it — or, for a failure, the nearest one outside the window."""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def as_dict(self) -> dict[str, Any]:
        e = self.expectation
        return {
            "type": e.type.value,
            "enterprise": e.enterprise,
            "tag": e.tag,
            "after_s": self.window[0],
            "before_s": self.window[1],
            "optional": e.optional,
            "status": self.status,
            "raised_s": None if self.alarm is None else round(self.alarm.raised_s, 3),
            "alarm_id": None if self.alarm is None else self.alarm.alarm.id,
        }


def _matches(expectation: Expectation, alarm: Alarm) -> bool:
    return (
        alarm.type is expectation.type
        and alarm.tag == expectation.tag
        and expectation.enterprise in (None, alarm.enterprise)
    )


def judge(
    scenario: Scenario, alarms: Iterable[ObservedAlarm]
) -> tuple[list[ExpectationResult], list[ObservedAlarm]]:
    """Each expectation's result, in file order, and the unexpected alarms by time."""
    run = [a for a in alarms if -EARLY_TOLERANCE_S <= a.raised_s <= scenario.duration_s]
    run.sort(key=lambda a: (a.raised_s, a.alarm.id))
    claimed: set[str] = set()
    results = []
    for expectation in scenario.expect:
        after, before = window = scenario.window(expectation)
        candidates = [
            a for a in run if a.alarm.id not in claimed and _matches(expectation, a.alarm)
        ]
        inside = [a for a in candidates if after <= a.raised_s <= before]
        claimed.update(a.alarm.id for a in inside)
        if inside:
            status: Status = "seen" if expectation.optional else "pass"
            results.append(ExpectationResult(expectation, window, status, inside[0]))
        elif expectation.optional:
            results.append(ExpectationResult(expectation, window, "not_seen", None))
        else:
            nearest = min(
                candidates,
                key=lambda a: min(abs(a.raised_s - after), abs(a.raised_s - before)),
                default=None,
            )
            if nearest is not None:
                claimed.add(nearest.alarm.id)
            results.append(ExpectationResult(expectation, window, "fail", nearest))
    return results, [a for a in run if a.alarm.id not in claimed]


@dataclass(frozen=True)
class ScenarioReport:
    """What ``hazwatch scenario run`` prints (as text or JSON) and tests assert on."""

    scenario: str
    source: str
    mode: Literal["embedded", "external", "backtest"]
    broker: str
    seed: int
    speed: float
    duration_s: float
    expected: tuple[ExpectationResult, ...]
    unexpected: tuple[ObservedAlarm, ...]
    messages: int
    readings: int
    max_lag_s: float
    """How far publishing fell behind schedule at worst, in scenario seconds."""
    sample_s: float
    """Scenario seconds between samples."""
    wall_s: float
    problems: tuple[str, ...] = ()
    """What went wrong with the run itself (an alarm message that is not alarm JSON)."""

    @property
    def passed(self) -> bool:
        return (
            not self.unexpected and not self.problems and not any(r.failed for r in self.expected)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "source": self.source,
            "passed": self.passed,
            "mode": self.mode,
            "broker": self.broker,
            "seed": self.seed,
            "speed": self.speed,
            "duration_s": self.duration_s,
            "expected": [r.as_dict() for r in self.expected],
            "unexpected": [a.as_dict() for a in self.unexpected],
            "messages": self.messages,
            "readings": self.readings,
            "max_lag_s": round(self.max_lag_s, 3),
            "sample_s": self.sample_s,
            "wall_s": round(self.wall_s, 3),
            "problems": list(self.problems),
        }

    def lines(self) -> list[str]:
        """The report as text with rich markup (``rich.print`` it; without a terminal
        rich prints it plain)."""
        out = [
            f"[bold]{escape(self.scenario)}[/bold] — {escape(self.source)}",
            (
                f"{self.mode} service, speed {self.speed:g}×, seed {self.seed}: "
                f"{self.duration_s:g} s of scenario time in {self.wall_s:.1f} s"
                if self.mode != "backtest"
                else f"backtest (no broker, scenario time at full speed), seed {self.seed}: "
                f"{self.duration_s:g} s of scenario time in {self.wall_s:.1f} s"
            ),
            "",
            "expected alarms",
        ]
        types = max((len(r.expectation.type.value) for r in self.expected), default=0)
        places = max((len(_place(r)) for r in self.expected), default=0)
        out += [
            f"  {_STATUS_WORD[r.status]}  {r.expectation.type.value:<{types}}  "
            f"{_place(r):<{places}}  {_when(r)}"
            for r in self.expected
        ]
        if not self.expected:
            out.append("  none")
        out += ["", "unexpected alarms"]
        out += [
            f"  [red]{a.alarm.type.value} {a.alarm.enterprise}/{a.alarm.tag}[/red]  "
            f"at {a.raised_s:.1f} s  {escape(a.alarm.message)}"
            for a in self.unexpected
        ]
        if not self.unexpected:
            out.append("  none")
        out.append("")
        out += [f"[red]problem:[/red] {escape(p)}" for p in self.problems]
        out.append(
            f"published {self.messages:,} messages ({self.readings:,} readings); "
            f"at most {self.max_lag_s:.1f} s behind schedule"
        )
        if self.max_lag_s > self.sample_s:
            out.append(
                f"[yellow]warning:[/yellow] publishing fell {self.max_lag_s:.1f} s behind "
                f"schedule, more than the {self.sample_s:g} s between samples: alarms about "
                "silence (STALE, GATEWAY_OFFLINE) may be this machine's doing — lower --speed"
            )
        required = [r for r in self.expected if not r.expectation.optional]
        met = sum(r.status == "pass" for r in required)
        verdict = "[bold green]PASS[/bold green]" if self.passed else "[bold red]FAIL[/bold red]"
        out.append(
            f"result: {verdict} — {met} of {len(required)} expected alarms, "
            f"{len(self.unexpected)} unexpected"
        )
        return out


_STATUS_WORD: dict[Status, str] = {
    "pass": "[green]PASS[/green]",
    "fail": "[red]FAIL[/red]",
    "seen": "[cyan]SEEN[/cyan]",
    "not_seen": "[dim]----[/dim]",
}


def _place(result: ExpectationResult) -> str:
    """``enterprise/tag`` — the enterprise of the alarm that came, if none was expected."""
    expectation = result.expectation
    enterprise = expectation.enterprise or (result.alarm.alarm.enterprise if result.alarm else "")
    return f"{enterprise}/{expectation.tag}" if enterprise else expectation.tag


def _when(result: ExpectationResult) -> str:
    after, before = result.window
    window = f"window {after:g}–{before:g} s"
    if result.status == "not_seen":
        return f"not raised (optional, {window})"
    if result.alarm is None:
        return f"not raised ({window})"
    at = f"at {result.alarm.raised_s:.1f} s"
    if result.status == "fail":
        return f"{at}, outside the {window}"
    return f"{at} ({window})"
