"""Ingest benchmark (issue 10): hazwatch vs Node-RED vs a naive script vs the raw limits.

One command, everything on this box, its own Mosquitto and influxd on free loopback
ports (temporary directories)::

    .venv/bin/python bench/ingest.py --quick                    # ~4 minutes
    .venv/bin/python bench/ingest.py --quick --crash --latency  # ~8 minutes
    .venv/bin/python bench/ingest.py --crash --latency          # full loads, ~15 minutes
    .venv/bin/python bench/ingest.py --systems hazwatch,nodered-buffered --loads singles
    .venv/bin/python bench/ingest.py --quick --systems hazwatch --profile /tmp/prof --no-record

For each load and system: a fresh Mosquitto and a fresh database; the system under
test is started and proven subscribed (a probe reading must reach influxd); then
``hazwatch simulate --load`` (pre-encoded QoS 1, simulators/load.py) publishes the
load at once, and the clock runs from its first publish until influxd holds every
reading — watched through ``/debug/vars`` (httpd ``pointsWrittenOK``, cheap), then
confirmed by one ``count()``. A system that stops making progress for ``--stall`` s
is stopped, and what is missing is reported as lost. CPU seconds and peak RSS per
process come from psutil. Node-RED is installed under bench/.nodered/ (npm, gitignored)
on first use. Results are printed and appended to bench/RESULTS.md (``--no-record``).

``--latency`` runs each load twice at half the sustained rate: as bursts (every
gateway at once) and spread over the period (bench/latency.py says why both).

``--crash``: hazwatch and Node-RED buffered again, SIGKILLed once a third of the load is
stored and restarted at once (same config, same persistent session); what never
arrives is "lost". ``--latency``: both again at half the rate each sustained
(bench/latency.py). ``--profile DIR``: py-spy samples ``hazwatch run`` (py-spy from
PyPI into /tmp: ``pip install --target /tmp/pyspy py-spy``), with a per-function summary.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from harness import (
    NODE,
    NODERED_DIR,
    RESULTS,
    Influxd,
    Load,
    Mosquitto,
    Row,
    Watch,
    count,
    generate,
    generator_result,
    influx_query,
    points_written,
    probe,
    profiled,
    start_subject,
    stop_process,
    wait_stored,
    wait_written,
)
from latency import run_latency

from simulators.load import LoadSpec

SYSTEMS = [
    "hazwatch",
    "nodered-buffered",
    "nodered-plain",
    "naive",
    "mosquitto_sub",
    "influx-1conn",
    "influx-2conn",
]
REFERENCE_SYSTEM = "nodered-buffered"
PY_SPY = shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy"
PROFILE_DIR: Path | None = None
"""Where ``--profile`` puts py-spy's record of ``hazwatch run`` (None: no profile)."""
LOAD_BEFORE = 0.0


def loads(quick: bool) -> list[Load]:
    # Offered at ~600k readings/s (batches) and ~100k messages/s (singles): above what
    # any subject sustains, i.e. "at once" — a backlog builds in Mosquitto.
    d = 1.0 if quick else 5.0
    return [
        Load(
            "batches",
            LoadSpec(gateways=20, points=500, rate=60, duration=d),
            LoadSpec(gateways=20, points=500, rate=10, duration=2 if quick else 6),
        ),
        Load(
            "singles",
            LoadSpec(gateways=20, points=100, rate=50, duration=d, singles=True),
            LoadSpec(gateways=20, points=100, rate=5, duration=1 if quick else 3, singles=True),
        ),
    ]


def run_subject(
    system: str, load: Load, influx: Influxd, tmp: Path, stall_s: float, crash: bool = False
) -> Row:
    """One system on one load; with ``crash``, SIGKILL it once a third is stored and
    restart it at once (same config, same session), then count what never arrives."""
    spec = load.naive if system == "naive" else load.spec
    work = tmp / f"{load.name}-{system}{'-crash' if crash else ''}"
    work.mkdir()
    db = f"bench_{load.name}_{system.replace('-', '_')}{'_crash' if crash else ''}"
    row = Row(f"{system} SIGKILL" if crash else system, load.name, spec.total_readings)
    mqtt = Mosquitto(work / "mosquitto")
    mqtt.start()
    subject = None
    try:
        if system == "mosquitto_sub":
            return run_mosquitto_sub(row, spec, mqtt, influx, work)
        influx_query(influx, f'CREATE DATABASE "{db}"')
        subject = start_subject(system, work, mqtt, influx, db, load)
        assert subject is not None
        assert mqtt.proc is not None
        assert influx.proc is not None
        probe(mqtt, influx, db, spec)
        baseline = points_written(influx)
        watch = Watch(
            {"subject": subject.pid, "mosquitto": mqtt.proc.pid, "influxd": influx.proc.pid}
        )
        out = PROFILE_DIR / f"hazwatch-{load.name}.txt" if PROFILE_DIR else None
        with profiled(subject.pid, out if system == "hazwatch" else None):
            generator = generate(mqtt, spec, work)
            if crash:
                wait_written(influx, baseline + spec.total_readings // 3, 600)
                subject.kill()
                subject.wait(10)
                subject = start_subject(system, work, mqtt, influx, db, load)
                assert subject is not None
            expected = spec.total_readings + 1
            stored, end = wait_stored(influx, db, expected, baseline, generator, stall_s)
        row.cpu_s, row.rss_mb = watch.stop()
        generator.wait(60)
        result = generator_result(work)
        row.cpu_s["generator"] = result["cpu_s"]
        row.stored = stored - 1  # the probe
        row.elapsed_s = end - result["started_at"]
        if crash:  # the restarted process is not the one watched
            row.cpu_s = {"generator": row.cpu_s["generator"]}
            row.rss_mb = {}
            row.note = "SIGKILL once 1/3 stored, restarted at once"
        if row.lost:
            stalled = f"stalled {stall_s:.0f} s short of the total"
            row.note = f"{row.note}; {stalled}" if row.note else stalled
        return row
    finally:
        if subject is not None:
            stop_process(subject)
        mqtt.stop()
        with contextlib.suppress(OSError):
            influx_query(influx, f'DROP DATABASE "{db}"')


def run_mosquitto_sub(
    row: Row, spec: LoadSpec, mqtt: Mosquitto, influx: Influxd, work: Path
) -> Row:
    """Raw MQTT: the same messages through Mosquitto to ``mosquitto_sub -q 1 -C N``."""
    base = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mqtt.port), "-q", "1", "-c"]
    base += ["-i", "raw-bench", "-t", "hz/v1/#"]
    subprocess.run([*base, "-E"], check=True, timeout=30)  # the session exists from here on
    sub = subprocess.Popen(
        [*base, "-C", str(spec.total_messages)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert mqtt.proc is not None
    assert influx.proc is not None
    watch = Watch({"subject": sub.pid, "mosquitto": mqtt.proc.pid})
    generator = generate(mqtt, spec, work)
    try:
        sub.wait(600)
        end = time.time()
    finally:
        stop_process(sub)
    row.cpu_s, row.rss_mb = watch.stop()
    generator.wait(60)
    result = generator_result(work)
    row.cpu_s["generator"] = result["cpu_s"]
    row.stored = spec.total_readings if sub.returncode == 0 else 0
    row.elapsed_s = end - result["started_at"]
    row.note = "received, not stored"
    return row


def run_raw_influx(connections: int, load: Load, influx: Influxd) -> Row:
    """Raw InfluxDB: the load's readings as pre-built line protocol, 5,000 per request."""
    spec = load.spec
    db = f"bench_{load.name}_raw{connections}"
    influx_query(influx, f'CREATE DATABASE "{db}"')
    row = Row(f"influx-{connections}conn", load.name, spec.total_readings)
    t0 = int(time.time() * 1000)
    lines = [
        f"reading,enterprise={spec.enterprise},gateway={gw},tag={tag} "
        f'value={40.0 + s % 16 * 0.5},quality="good" {t0 + s}'
        for s in range(spec.samples)
        for gw in spec.gateway_ids()
        for tag in spec.tags(gw)
    ]
    bodies = ["\n".join(lines[i : i + 5000]).encode() for i in range(0, len(lines), 5000)]
    del lines
    errors: list[str] = []

    def post(share: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", influx.port, timeout=60)
        for body in share:
            conn.request("POST", f"/write?db={db}&precision=ms", body)
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                errors.append(str(response.status))
        conn.close()

    assert influx.proc is not None
    watch = Watch(
        {"subject": os.getpid(), "influxd": influx.proc.pid}, alone=frozenset({"subject"})
    )
    started = time.time()
    threads = [
        threading.Thread(target=post, args=(bodies[n::connections],)) for n in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row.elapsed_s = time.time() - started
    row.cpu_s, row.rss_mb = watch.stop()
    row.rss_mb.pop("subject")
    row.stored = count(influx, db)
    row.note = f"{len(bodies)} requests" + (f", {len(errors)} failed" if errors else "")
    influx_query(influx, f'DROP DATABASE "{db}"')
    return row


# --- report --------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    ref = {r.load: r.rate for r in rows if r.system == REFERENCE_SYSTEM and r.rate}
    head = (
        "| load | system | readings | lost | readings/s | × Node-RED buffered | CPU s "
        "(subject / mosquitto / influxd / generator) | peak RSS MiB (subject / mosquitto / "
        "influxd) | note |\n|---|---|---:|---:|---:|---:|---|---|---|\n"
    )
    out = []
    for r in rows:
        cpu = " / ".join(
            f"{r.cpu_s[k]:.1f}" if k in r.cpu_s else "–"
            for k in ("subject", "mosquitto", "influxd", "generator")
        )
        rss = " / ".join(
            f"{r.rss_mb[k]:.0f}" if k in r.rss_mb else "–"
            for k in ("subject", "mosquitto", "influxd")
        )
        comparable = " " not in r.system  # latency and crash rows run other loads
        ratio = f"{r.rate / ref[r.load]:.2f}" if ref.get(r.load) and comparable else "–"
        out.append(
            f"| {r.load} | {r.system} | {r.readings:,} | {r.lost:,} | {r.rate:,.0f} | {ratio} "
            f"| {cpu} | {rss} | {r.note} |"
        )
    return head + "\n".join(out) + "\n"


def machine() -> str:
    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
        except OSError:
            return "?"
        return (
            (out.stdout or out.stderr).strip().splitlines()[0]
            if (out.stdout or out.stderr)
            else "?"
        )

    nodered = "?"
    with contextlib.suppress(OSError, ValueError):
        pkg = json.loads((NODERED_DIR / "node_modules/node-red/package.json").read_text())
        nodered = pkg["version"]
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}; "
        f"Python {platform.python_version()}; {version(['mosquitto', '-h'])}; "
        f"influxd {version(['influxd', 'version'])}; Node-RED {nodered} on Node "
        f"{version([str(NODE), '--version'])}; load average before the run "
        f"{LOAD_BEFORE:.2f} (other work on the box skews the figures)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller loads (~3 minutes)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--loads", default="batches,singles")
    parser.add_argument("--stall", type=float, default=15.0, help="s without progress = done")
    parser.add_argument(
        "--crash", action="store_true", help="also the crash test (hazwatch, Node-RED buffered)"
    )
    parser.add_argument(
        "--latency", action="store_true", help="also latency at half of the measured rate"
    )
    parser.add_argument(
        "--latency-rate",
        default="",
        metavar="LOAD=R,...",
        help="readings/s offered in the latency runs (e.g. batches=40000,singles=8000) "
        "instead of half the measured rate: the same load for runs compared side by side",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="with --latency-rate: only the latency runs, no throughput run before them",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy record `hazwatch run` into DIR (pip install --target /tmp/pyspy py-spy)",
    )
    args = parser.parse_args()
    global PROFILE_DIR, LOAD_BEFORE  # noqa: PLW0603 - one run's facts, read deep below
    PROFILE_DIR = args.profile
    LOAD_BEFORE = os.getloadavg()[0]
    if LOAD_BEFORE > 0.5:
        print(f"warning: load average {LOAD_BEFORE:.2f}: something else is running", flush=True)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; known: {SYSTEMS}")
    if not shutil.which("mosquitto_sub"):
        parser.error("mosquitto_sub not found: apt-get install mosquitto-clients")
    chosen = [load for load in loads(args.quick) if load.name in args.loads.split(",")]
    fixed_rate = {
        name: float(rate)
        for name, _, rate in (item.partition("=") for item in args.latency_rate.split(",") if item)
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hazwatch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        influx = Influxd(tmp / "influxd")
        influx.start()
        try:
            for load in chosen:
                for system in systems if not args.latency_only else ():
                    print(f"== {load.name}: {system} ...", flush=True)
                    if system.startswith("influx-"):
                        row = run_raw_influx(int(system[len("influx-")]), load, influx)
                    else:
                        row = run_subject(system, load, influx, tmp, args.stall)
                    rows.append(row)
                    print(table([row]).splitlines()[-1], flush=True)
                for system in ("hazwatch", "nodered-buffered") if args.latency else ():
                    measured = [r.rate for r in rows if r.load == load.name and r.system == system]
                    if args.latency_only and load.name in fixed_rate:
                        measured = [2 * fixed_rate[load.name]]
                    if system in systems and measured and measured[0] > 0:
                        for spread in (False, True):
                            shape = "spread" if spread else "burst"
                            print(
                                f"== {load.name}: {system}, latency at half load ({shape}) ...",
                                flush=True,
                            )
                            half = fixed_rate.get(load.name, measured[0] / 2)
                            rows.append(run_latency(system, load, influx, tmp, half, spread=spread))
                            print(table([rows[-1]]).splitlines()[-1], flush=True)
                for system in ("hazwatch", "nodered-buffered") if args.crash else ():
                    if system in systems:
                        print(f"== {load.name}: {system}, SIGKILL and restart ...", flush=True)
                        rows.append(run_subject(system, load, influx, tmp, args.stall, crash=True))
                        print(table([rows[-1]]).splitlines()[-1], flush=True)
        finally:
            influx.stop()
    report = table(rows)
    print("\n" + report)
    if not args.no_record:
        record(args, chosen, report)
    return 0


def record(args: argparse.Namespace, chosen: list[Load], report: str) -> None:
    command = ".venv/bin/python bench/ingest.py" + " ".join(
        [""]
        + (["--quick"] if args.quick else [])
        + (["--crash"] if args.crash else [])
        + (["--latency"] if args.latency else [])
        + ([f"--systems {args.systems}"] if args.systems != ",".join(SYSTEMS) else [])
        + ([f"--loads {args.loads}"] if args.loads != "batches,singles" else [])
        + ([f"--latency-rate {args.latency_rate}"] if args.latency_rate else [])
        + (["--latency-only"] if args.latency_only else [])
    )
    described = "; ".join(
        f"{load.name}: {load.spec.total_readings:,} readings ({load.spec.gateways} gateways × "
        f"{load.spec.points} points, {'1 reading' if load.spec.singles else '100 readings'} per "
        f"message, offered at {load.spec.total_readings / load.spec.duration:,.0f}/s); naive gets "
        f"{load.naive.total_readings:,}"
        for load in chosen
    )
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results (appended by the bench scripts)\n")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with RESULTS.open("a") as f:
        f.write(
            f"\n## Ingest benchmark, {stamp}\n\nCommand: `{command}`\n\nMachine: {machine()}\n\n"
            f"Loads: {described}.\n\n{report}"
        )


if __name__ == "__main__":
    sys.exit(main())
