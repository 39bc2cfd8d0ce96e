"""How long ``GET /api/kpis`` takes for a period of N alarm transitions: the journal's
read (``Journal.transitions_between``) and the computation (``alerting/kpis.py``) side
by side, at sizes a province's month can reach.

The journal is filled through its own ``apply_all`` (the path the alarm service takes,
``durable=False`` to fill it fast): each cycle raises an alarm and clears it 30 s later,
on ``--enterprises`` enterprises of 10 grids, in chunks of 500 spread over 30 days;
every tenth is acknowledged before it clears.

    .venv/bin/python bench/kpis.py --transitions 200000 --transitions 1000000

Appends a section to bench/RESULTS.md (``--no-record`` to only print).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from alerting import kpis
from alerting.journal import Journal
from hazwatch.models import AlarmType, Condition

DAY_MS = 86_400_000
CHUNK = 500
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _condition(enterprise: str, tag: str, *, active: bool, ts_ms: int) -> Condition:
    return Condition(
        enterprise=enterprise,
        installation="MH01",
        tag=tag,
        type=AlarmType.HH,
        active=active,
        value=1.0,
        limit=1.0,
        ts_ms=ts_ms,
        message=tag,
    )


def fill(journal: Journal, transitions: int, enterprises: int, start_ms: int) -> int:
    """Raise/clear cycles in chunks of ``CHUNK`` (one transaction each, as the service
    batches), an ack of every tenth, until about ``transitions`` are journalled."""
    cycles = transitions * 10 // 21  # 2 transitions a cycle, plus an ack every tenth
    chunks = max(1, cycles // CHUNK)
    step_ms = 30 * DAY_MS // chunks
    written = 0
    for c in range(chunks):
        at = start_ms + c * step_ms
        keys = [
            (f"E{n % enterprises:04}", f"T{(n // enterprises) % 50:02}")
            for n in range(c * CHUNK, (c + 1) * CHUNK)
        ]
        raised, _ = journal.apply_all(
            [_condition(e, t, active=True, ts_ms=at) for e, t in keys], at
        )
        for event in raised[::10]:
            journal.acknowledge(event.alarm.id, "seen", at + 5_000)
        cleared, _ = journal.apply_all(
            [_condition(e, t, active=False, ts_ms=at + 30_000) for e, t in keys], at + 30_000
        )
        written += len(raised) + len(raised[::10]) + len(cleared)
    return written


def run(transitions: int, enterprises: int) -> dict[str, float]:
    start_ms = 1_780_000_000_000
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.db", [], durable=False)
        journal.open()
        try:
            began = time.perf_counter()
            written = fill(journal, transitions, enterprises, start_ms)
            fill_s = time.perf_counter() - began
            grid_of = {f"E{i:04}": f"G{i % 10}" for i in range(enterprises)}
            end_ms = start_ms + 30 * DAY_MS
            began = time.perf_counter()
            rows, truncated = journal.transitions_between(start_ms, end_ms)
            read_s = time.perf_counter() - began
            began = time.perf_counter()
            figures = kpis.compute(rows, grid_of, sorted(set(grid_of.values())), start_ms, end_ms)
            compute_s = time.perf_counter() - began
        finally:
            journal.close()
    assert not truncated
    assert sum(r["alarms"] for r in figures["rate"]) == sum(1 for t in rows if t.annunciates)
    return {
        "transitions": float(len(rows)),
        "written": float(written),
        "fill_s": fill_s,
        "read_s": read_s,
        "compute_s": compute_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, action="append", default=[])
    parser.add_argument("--enterprises", type=int, default=1000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    sizes = args.transitions or [100_000]
    rows = []
    for size in sizes:
        r = run(size, args.enterprises)
        total = r["read_s"] + r["compute_s"]
        rows.append(
            f"| {int(r['transitions']):,} | {r['read_s']:.2f} | {r['compute_s']:.2f} | "
            f"{total:.2f} | {r['read_s'] / total:.0%} / {r['compute_s'] / total:.0%} | "
            f"{r['transitions'] / total:,.0f} |"
        )
        print(rows[-1], flush=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "bench/kpis.py " + " ".join(f"--transitions {s}" for s in sizes)
    section = (
        f"\n## Alarm KPIs (`/api/kpis`) — {stamp}\n\n"
        f"Command: `.venv/bin/python {command}`\n\n"
        f"Machine: {platform.machine()}, Python {platform.python_version()}; "
        f"{args.enterprises} enterprises in 10 grids, 30 days of HH raise/clear cycles "
        "(every tenth acknowledged), one period of all of it.\n\n"
        "| transitions in the period | journal read s | KPIs s | total s | "
        "read / compute | transitions/s |\n|---:|---:|---:|---:|---|---:|\n"
        + "\n".join(rows)
        + "\n"
    )
    print(section)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(section)


if __name__ == "__main__":
    main()
