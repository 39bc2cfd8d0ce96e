"""Early warning, measured: how long before the first limit alarm TREND and ANOMALY come.

Every bundled scenario (docs/scenarios.md) runs through the backtest path
(``hazwatch scenario run NAME --backtest``: the service's decoder, detectors and journal,
no broker, scenario time at full speed) with the bundled config — its models of normal
operation loaded. For each: the scenario time of the first limit alarm (HH, H, L, LL),
of the first TREND and of the first ANOMALY, how far ahead of the limit each came, and
every alarm nobody expected. The two-day normal run must raise nothing at all::

    .venv/bin/python bench/early_warning.py              # table printed, RESULTS.md appended
    .venv/bin/python bench/early_warning.py --no-record tank_overfill reactor_runaway

The figures are scenario seconds, not wall time: the same on any machine (a run is
deterministic: same seed, same start instant, same alarms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hazwatch import logs
from simulators.offline import run_offline
from simulators.runner import bundled_scenarios
from simulators.verdict import ObservedAlarm, ScenarioReport

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
LIMITS = ("HH", "H", "L", "LL")


def alarms(report: ScenarioReport) -> list[ObservedAlarm]:
    seen = [r.alarm for r in report.expected if r.alarm is not None]
    return sorted([*seen, *report.unexpected], key=lambda a: a.raised_s)


def first(
    report: ScenarioReport, types: tuple[str, ...], tag: str | None = None
) -> ObservedAlarm | None:
    found = [
        a for a in alarms(report) if a.alarm.type.value in types and tag in (None, a.alarm.tag)
    ]
    return found[0] if found else None


def hms(seconds: float) -> str:
    """``13960`` → ``3 h 52 min 40 s``; short ones in seconds."""
    if seconds < 600:
        return f"{seconds:g} s"
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return (f"{h} h " if h else "") + f"{m} min" + (f" {s} s" if s else "")


def row(name: str, report: ScenarioReport) -> tuple[str, ...]:
    """TREND's lead is over the first limit alarm of its own point (the limit it warned
    of); ANOMALY's over the first limit alarm of the scenario."""
    limit = first(report, LIMITS)
    trend = first(report, ("TREND",))
    anomaly = first(report, ("ANOMALY",))

    def lead(alarm: ObservedAlarm, ahead_of: ObservedAlarm | None) -> str:
        text = f"{hms(alarm.raised_s)} ({alarm.alarm.tag})"
        if ahead_of is None:
            return text
        ahead = ahead_of.raised_s - alarm.raised_s
        what = f"{ahead_of.alarm.type.value} {ahead_of.alarm.tag}"
        if ahead > 0:
            return f"{text}, **{hms(ahead)} before {what}**"
        return f"{text}, {hms(-ahead)} after {what}"

    trend_text = "–"
    if trend is not None:
        trend_text = lead(trend, first(report, LIMITS, trend.alarm.tag))
    anomaly_text = "–" if anomaly is None else lead(anomaly, limit)
    limit_text = (
        "–"
        if limit is None
        else f"{hms(limit.raised_s)} ({limit.alarm.type.value} {limit.alarm.tag})"
    )
    unexpected = ", ".join(f"{a.alarm.type.value} {a.alarm.tag}" for a in report.unexpected)
    return (
        name,
        hms(report.duration_s),
        limit_text,
        trend_text,
        anomaly_text,
        str(len(report.unexpected)) + (f" ({unexpected})" if unexpected else ""),
        "PASS" if report.passed else "FAIL",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Scenario names: " + ", ".join(bundled_scenarios()),
    )
    parser.add_argument("scenarios", nargs="*", help="default: every bundled scenario")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    logs.configure("warning")
    library = bundled_scenarios()
    names = args.scenarios or list(library)
    unknown = [n for n in names if n not in library]
    if unknown:
        parser.error(f"not bundled: {', '.join(unknown)}")
    rows = []
    started = time.monotonic()
    failed = False
    for name in names:
        report = run_offline(library[name])
        rows.append(row(name, report))
        failed |= not report.passed
        print(" | ".join(rows[-1]), flush=True)
    header = (
        "| scenario | scenario time | first limit alarm | first TREND | first ANOMALY "
        "| unexpected alarms | verdict |\n|---|---:|---|---|---|---|---|"
    )
    table = "\n".join([header, *("| " + " | ".join(r) + " |" for r in rows)])
    report_text = (
        f"\n## Early warning — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"`.venv/bin/python bench/early_warning.py {' '.join(sys.argv[1:])}`".rstrip()
        + " — every scenario through the backtest path with the bundled config and its "
        "models of normal operation (`simulators/examples/models/normal.json`); times are "
        f"scenario time, the same on any machine ({time.monotonic() - started:.0f} s of "
        "wall time here).\n\n" + table + "\n"
    )
    print(report_text)
    if not args.no_record:
        with RESULTS.open("a") as out:
            out.write(report_text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
