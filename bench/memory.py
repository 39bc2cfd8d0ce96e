"""Memory per monitored point (the goal: ≤ 2 KiB RSS per point): ``hazwatch run``
with registries of two sizes, every point reporting, RSS compared.

    .venv/bin/python bench/memory.py                    # 10,000 and 50,000 points
    .venv/bin/python bench/memory.py --points 10000,100000 --no-record
    .venv/bin/python bench/memory.py --points 10000,100000 --trace --no-record

For each size: a fresh Mosquitto and database, a generated registry (500 points per
gateway, limits on every point), ``hazwatch run`` with its normal config (InfluxDB
backend, detectors on); every point reports 3 times (batch messages of 100 readings),
then, once influxd holds every reading and the spool is drained, the RSS of the
process is read (psutil, after a 2 s settle). The per-point figure is the slope
between the two sizes — what one more point costs (detector state, registry row,
series keys, latest value, caches) — not the interpreter and libraries every run
pays once (the intercept, also printed).

``--trace`` runs ``hazwatch run`` under tracemalloc (bench/traced.py; slower, and its
RSS is not comparable) and, at the same moment the RSS would be read, takes a snapshot
at each size: the difference between the two, by the line that allocated, divided by
the difference in points, says where each point's bytes are (Python allocations only:
not the allocator's slack nor freed buffers RSS still holds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import psutil
from harness import (
    PY,
    RESULTS,
    ROOT,
    Influxd,
    Load,
    Mosquitto,
    generate,
    hazwatch_config,
    influx_query,
    points_written,
    probe,
    stop_process,
    wait_stored,
)

from simulators.load import LoadSpec

POINTS_PER_GATEWAY = 500
SAMPLES = 3
SETTLE_S = 2.0


def measure(
    points: int, influx: Influxd, tmp: Path, trace: bool = False
) -> tuple[float, int, tracemalloc.Snapshot | None]:
    """Peak-free RSS (MiB) of hazwatch once every point reported; the points; with
    ``trace``, a tracemalloc snapshot taken then."""
    gateways = max(1, points // POINTS_PER_GATEWAY)
    spec = LoadSpec(gateways=gateways, points=POINTS_PER_GATEWAY, rate=SAMPLES, duration=1.0)
    load = Load(f"memory{points}", spec, spec)
    work = tmp / load.name
    work.mkdir()
    db = f"bench_{load.name}"
    influx_query(influx, f'CREATE DATABASE "{db}"')
    mqtt = Mosquitto(work / "mosquitto")
    mqtt.start()
    subject = None
    try:
        subject = _start(work, mqtt, influx, db, load, trace)
        probe(mqtt, influx, db, spec, timeout=300)  # a loaded box, or a traced run, starts slowly
        baseline = points_written(influx)
        generator = generate(mqtt, spec, work)
        stored, _ = wait_stored(influx, db, spec.total_readings + 1, baseline, generator, 15)
        generator.wait(60)
        if stored < spec.total_readings + 1:
            raise RuntimeError(f"only {stored - 1:,} of {spec.total_readings:,} stored")
        time.sleep(SETTLE_S)
        rss = psutil.Process(subject.pid).memory_info().rss / 2**20
        snapshot = _snapshot(subject, work / "trace.snapshot") if trace else None
        return rss, spec.gateways * spec.points, snapshot
    finally:
        if subject is not None:
            stop_process(subject)
        mqtt.stop()
        influx_query(influx, f'DROP DATABASE "{db}"')


def _start(
    work: Path, mqtt: Mosquitto, influx: Influxd, db: str, load: Load, trace: bool
) -> subprocess.Popen[bytes]:
    config = hazwatch_config(work, mqtt, influx, db, load)
    cmd = [PY, "-m", "hazwatch.cli", "--log-level", "warning", "run", "--config", str(config)]
    env = dict(os.environ)
    if trace:
        cmd[1:3] = [str(ROOT / "bench" / "traced.py"), "hazwatch.cli"]
        env["TRACED_SNAPSHOT"] = str(work / "trace.snapshot")
    log = (work / "hazwatch.log").open("ab")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _snapshot(subject: subprocess.Popen[bytes], out: Path) -> tracemalloc.Snapshot:
    subject.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not out.exists():
        if time.monotonic() > deadline or subject.poll() is not None:
            raise RuntimeError("hazwatch wrote no tracemalloc snapshot")
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(out))


def _where(
    small: tracemalloc.Snapshot, large: tracemalloc.Snapshot, points: int, top: int = 30
) -> str:
    """The per-point bytes by the line that allocated them (``large`` − ``small``)."""
    diffs = large.compare_to(small, "lineno")
    total = sum(d.size_diff for d in diffs)
    rows = [
        f"| {d.traceback[0].filename.removeprefix(str(ROOT) + '/')}:{d.traceback[0].lineno} "
        f"| {d.size_diff / points:,.0f} | {d.count_diff / points:.2f} |"
        for d in sorted(diffs, key=lambda d: -d.size_diff)[:top]
    ]
    return (
        f"tracemalloc, per point ({points:,} more points): **{total / points:,.0f} B** "
        "traced in all.\n\n| allocated at | B/point | blocks/point |\n|---|---:|---:|\n"
        + "\n".join(rows)
        + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", default="10000,50000", help="two comma-separated sizes")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--trace", action="store_true", help="also where the bytes go (tracemalloc, slower)"
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.points.split(",")]
    if len(sizes) != 2 or sizes[0] >= sizes[1]:
        parser.error("--points: expected two sizes, smaller first")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hazwatch-memory-") as tmp_name:
        tmp = Path(tmp_name)
        influx = Influxd(tmp / "influxd")
        influx.start()
        try:
            results = [measure(n, influx, tmp, args.trace) for n in sizes]
        finally:
            influx.stop()
    (rss_a, points_a, snap_a), (rss_b, points_b, snap_b) = results
    per_point = (rss_b - rss_a) * 2**20 / (points_b - points_a)
    intercept = rss_a - per_point * points_a / 2**20
    rows = "\n".join(f"| {p:,} | {rss:.0f} |" for rss, p, _ in results)
    trace_note = " under tracemalloc (its RSS is not comparable)" if args.trace else ""
    report = (
        f"\n## Memory per point — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"`.venv/bin/python bench/memory.py --points {args.points}"
        f"{' --trace' if args.trace else ''}` — `hazwatch run`{trace_note}, "
        f"InfluxDB backend, detectors on, every point reported {SAMPLES} times; load "
        f"average before {load_before:.2f}.\n\n"
        "| points | RSS MiB |\n|---:|---:|\n"
        f"{rows}\n\n"
        f"Per point (slope): **{per_point:,.0f} B** (goal ≤ 2,048 B); the rest "
        f"(interpreter, libraries, buffers): {intercept:.0f} MiB.\n"
    )
    if snap_a is not None and snap_b is not None:
        report += "\n" + _where(snap_a, snap_b, points_b - points_a)
    print(report)
    if not args.no_record:
        with RESULTS.open("a") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
