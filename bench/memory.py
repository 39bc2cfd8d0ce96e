"""Memory per monitored point (the goal: ≤ 2 KiB RSS per point): ``hazwatch run``
with registries of two sizes, every point reporting, RSS compared.

    .venv/bin/python bench/memory.py                    # 10,000 and 50,000 points
    .venv/bin/python bench/memory.py --points 10000,100000 --no-record

For each size: a fresh Mosquitto and database, a generated registry (500 points per
gateway, limits on every point), ``hazwatch run`` with its normal config (InfluxDB
backend, detectors on); every point reports 3 times (batch messages of 100 readings),
then, once influxd holds every reading and the spool is drained, the RSS of the
process is read (psutil, after a 2 s settle). The per-point figure is the slope
between the two sizes — what one more point costs (detector state, registry row,
series keys, latest value, caches) — not the interpreter and libraries every run
pays once (the intercept, also printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import psutil
from harness import (
    RESULTS,
    Influxd,
    Load,
    Mosquitto,
    generate,
    influx_query,
    points_written,
    probe,
    start_subject,
    stop_process,
    wait_stored,
)

from simulators.load import LoadSpec

POINTS_PER_GATEWAY = 500
SAMPLES = 3
SETTLE_S = 2.0


def measure(points: int, influx: Influxd, tmp: Path) -> tuple[float, int]:
    """Peak-free RSS (MiB) of hazwatch once every point reported; and the points."""
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
        subject = start_subject("hazwatch", work, mqtt, influx, db, load)
        assert subject is not None
        probe(mqtt, influx, db, spec)
        baseline = points_written(influx)
        generator = generate(mqtt, spec, work)
        stored, _ = wait_stored(influx, db, spec.total_readings + 1, baseline, generator, 15)
        generator.wait(60)
        if stored < spec.total_readings + 1:
            raise RuntimeError(f"only {stored - 1:,} of {spec.total_readings:,} stored")
        time.sleep(SETTLE_S)
        rss = psutil.Process(subject.pid).memory_info().rss / 2**20
        return rss, spec.gateways * spec.points
    finally:
        if subject is not None:
            stop_process(subject)
        mqtt.stop()
        influx_query(influx, f'DROP DATABASE "{db}"')


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", default="10000,50000", help="two comma-separated sizes")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
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
            results = [measure(n, influx, tmp) for n in sizes]
        finally:
            influx.stop()
    (rss_a, points_a), (rss_b, points_b) = results
    per_point = (rss_b - rss_a) * 2**20 / (points_b - points_a)
    intercept = rss_a - per_point * points_a / 2**20
    rows = "\n".join(f"| {p:,} | {rss:.0f} |" for rss, p in results)
    report = (
        f"\n## Memory per point — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"`.venv/bin/python bench/memory.py --points {args.points}` — `hazwatch run`, "
        f"InfluxDB backend, detectors on, every point reported {SAMPLES} times; load "
        f"average before {load_before:.2f}.\n\n"
        "| points | RSS MiB |\n|---:|---:|\n"
        f"{rows}\n\n"
        f"Per point (slope): **{per_point:,.0f} B** (goal ≤ 2,048 B); the rest "
        f"(interpreter, libraries, buffers): {intercept:.0f} MiB.\n"
    )
    print(report)
    if not args.no_record:
        with RESULTS.open("a") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
