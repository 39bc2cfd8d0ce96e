"""Detector engine benchmark: readings/s and memory per point, one core.

Feeds recorded-shape readings straight into :class:`detectors.engine.DetectorEngine`
— no MQTT, no storage — with every default detector on::

    .venv/bin/python bench/detectors.py                    # 10,000 and 100,000 points
    .venv/bin/python bench/detectors.py --points 10000 --rounds 20 --no-record

The points mirror the example registry's rows: levels, temperatures (with
``roc_per_min``), pressures, gas detectors, residual currents and cable temperatures
(default limits), power and a state point, every one with min/max, limits where its
kind has them, and ``interval_s`` = 5; 100 points per gateway. Each round every point
reports once (timestamps 5 s apart, a little jitter) with a slow random walk plus
noise around its normal value — far from every limit, as nearly all readings are —
so the figure is the common case. Throughput is readings per CPU-second of this process
(``time.process_time``: one core, not skewed by whatever else runs on the box), with
the wall-clock rate beside it. Readings are built before the clock runs and fed in
batches of 1,000 (the ingest pipeline's order of magnitude); one timer tick (stale /
gateway scan) per round is timed separately.

Memory per point: tracemalloc, the engine's allocations after 6 rounds (the slope
rings are fixed arrays allocated at once; the current bucket's buffer half full),
divided by the number of points; then the windows are filled untraced (64 rounds in
all) before the clock runs.
Results are printed and appended to bench/RESULTS.md (``--no-record`` to skip).

ANOMALY's cost (``--anomaly``): the bundled models' judgement of one sample, per
installation and period (a normal sample; and one that raises, with its contributions),
and what a modelled point's reading costs more than another's (10,000 points in
installations of 10 points, each with a model, against the same points without, in
turn in one process).

Side by side (``--against REF``): the same benchmark, this script, run on this tree (a
snapshot of it, uncommitted changes included, taken at the start) and on git revision
``REF``, both exported to a temporary directory, each in a fresh process,
alternated ``--repeat`` times per size; the table gives each run and the ratio of the
medians — on a shared, noisy box a ratio from one session says more than a figure::

    .venv/bin/python bench/detectors.py --against main --points 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

# ``--against`` sets HAZWATCH_BENCH_TREE: the source tree a child run imports hazwatch from
sys.path.insert(0, os.environ.get("HAZWATCH_BENCH_TREE", str(Path(__file__).parent.parent)))

from detectors.engine import DetectorEngine
from hazwatch.models import (
    Enterprise,
    Installation,
    Point,
    PointKind,
    Reading,
    Registry,
)
from hazwatch.settings import DetectorSettings

ROOT = Path(__file__).resolve().parent.parent
TREE_ENV = "HAZWATCH_BENCH_TREE"
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADER = "# Benchmark results\n\nAppended by the scripts in bench/ (newest last).\n"
T0 = 1_763_820_000_000
INTERVAL_MS = 5_000
BATCH = 1_000
PER_GATEWAY = 100
TRACED_ROUNDS = 6
"""Rounds fed under tracemalloc: the slope buckets half full (12 readings each)."""
WARMUP_ROUNDS = 64
"""Rounds fed before the clock runs: every slope window full."""

# kind, unit, columns, normal value, noise
SHAPES: list[tuple[PointKind, str, dict[str, float], float, float]] = [
    (PointKind.LEVEL, "m", {"min": 0, "max": 12, "ll": 0.5, "l": 1, "h": 10.5, "hh": 11}, 6, 0.01),
    (
        PointKind.TEMPERATURE,
        "degC",
        {"min": -20, "max": 120, "h": 45, "hh": 60, "roc_per_min": 2},
        25,
        0.1,
    ),
    (PointKind.PRESSURE, "kPa", {"min": -10, "max": 50, "h": 20, "hh": 30}, 8, 0.05),
    (PointKind.GAS_LEL, "%LEL", {"min": 0, "max": 100, "h": 25, "hh": 50}, 5, 0.2),
    (PointKind.RESIDUAL_CURRENT, "mA", {"min": 0, "max": 1000}, 40, 2),
    (PointKind.CABLE_TEMP, "degC", {"min": -20, "max": 150}, 35, 0.2),
    (PointKind.POWER, "kW", {"min": 0, "max": 500, "h": 400, "hh": 450}, 120, 3),
    (PointKind.STATE, "", {"min": 0, "max": 1}, 1, 0),
]


def registry(n: int) -> Registry:
    points = []
    for i in range(n):
        kind, unit, columns, _, _ = SHAPES[i % len(SHAPES)]
        extra = {"deadband": 0.5} if any(c in columns for c in ("h", "l")) else {}
        points.append(
            Point(
                enterprise="E001",
                installation="U1",
                tag=f"P{i:06d}",
                name=f"Point {i}",
                kind=kind,
                unit=unit,
                interval_s=INTERVAL_MS / 1000,
                **columns,
                **extra,
            )
        )
    installation = Installation(id="U1", name="Unit 1", grade=2, points=tuple(points))
    enterprise = Enterprise(id="E001", name="Bench", grid="G1", installations=(installation,))
    return Registry(enterprises={"E001": enterprise})


class Signals:
    """A slow random walk plus noise per point, around its kind's normal value."""

    def __init__(self, n: int, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.walk = [0.0] * n
        self.tags = [f"P{i:06d}" for i in range(n)]
        self.gateways = [f"gw{i // PER_GATEWAY:04d}" for i in range(n)]

    def round(self, k: int) -> list[Reading]:
        rng = self.rng
        readings = []
        base = T0 + k * INTERVAL_MS
        for i in range(self.n):
            _, _, _, normal, noise = SHAPES[i % len(SHAPES)]
            if noise:
                self.walk[i] = 0.98 * self.walk[i] + rng.gauss(0, noise)
                value = round(normal + self.walk[i] + rng.gauss(0, noise), 3)
            else:
                value = normal
            ts = base + rng.randrange(0, 200)
            readings.append(Reading("E001", self.gateways[i], self.tags[i], value, ts))
        return readings


def run(n: int, rounds: int, warmup: int) -> dict[str, float]:
    reg = registry(n)
    signals = Signals(n)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = DetectorEngine(reg, DetectorSettings(), T0)
    changes = 0
    for k in range(warmup):
        batch = signals.round(k)
        changes += len(engine.update(batch, T0 + k * INTERVAL_MS + 250))
        del batch
    gc.collect()
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # untraced: fill the slope windows (the longest default window is 60 rounds)
    for k in range(warmup, WARMUP_ROUNDS):
        changes += len(engine.update(signals.round(k), T0 + k * INTERVAL_MS + 250))
    warmup = WARMUP_ROUNDS

    fed = 0
    spent = cpu_spent = 0.0
    tick_spent = 0.0
    for k in range(warmup, warmup + rounds):
        readings = signals.round(k)
        now = T0 + k * INTERVAL_MS + 250
        batches = [readings[j : j + BATCH] for j in range(0, len(readings), BATCH)]
        gc.collect()
        started, started_cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            changes += len(engine.update(batch, now))
        spent += time.perf_counter() - started
        cpu_spent += time.process_time() - started_cpu
        fed += len(readings)
        started = time.perf_counter()
        changes += len(engine.tick(now))
        tick_spent += time.perf_counter() - started
    return {
        "points": n,
        "readings": fed,
        "rate": fed / spent,
        "cpu_rate": fed / cpu_spent,
        "us_per_reading": cpu_spent / fed * 1e6,
        "tick_ms": tick_spent / rounds * 1000,
        "bytes_per_point": memory / n,
        "changes": changes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default="10000,100000", help="comma-separated sizes")
    parser.add_argument(
        "--rounds", type=int, default=0, help="rounds per size (default: ~2M readings)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--against", metavar="REF", help="side by side with git revision REF")
    parser.add_argument("--repeat", type=int, default=2, help="--against: runs per tree")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child runs
    parser.add_argument("--anomaly", action="store_true", help="ANOMALY's cost (see above)")
    args = parser.parse_args()
    if args.anomaly:
        anomaly_cost(None if args.no_record else RESULTS)
        return
    sizes = [int(s) for s in args.points.split(",")]
    if args.against:
        side_by_side(args, sizes)
        return
    rows = []
    for n in sizes:
        rounds = args.rounds or max(10, 2_000_000 // n)
        result = run(n, rounds, warmup=TRACED_ROUNDS)
        rows.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        print(
            f"{n:>7,} points: {result['cpu_rate']:>10,.0f} readings/CPU-s "
            f"({result['rate']:,.0f}/s wall; {result['us_per_reading']:.2f} µs CPU/reading, "
            f"{result['readings']:,} readings), "
            f"tick {result['tick_ms']:.1f} ms, {result['bytes_per_point']:,.0f} B/point, "
            f"{result['changes']} condition changes",
            flush=True,
        )
    if not args.no_record and not args.json:
        record(rows, " ".join(["python", "bench/detectors.py", *sys.argv[1:]]))


def anomaly_cost(record_to: Path | None) -> None:
    """``--anomaly``: see the module's docstring."""
    import numpy as np  # noqa: PLC0415

    from detectors.anomaly import AnomalyDetector, Sample  # noqa: PLC0415
    from detectors.normal_model import (  # noqa: PLC0415
        InstallationModel,
        ModelPoint,
        read_model_file,
    )
    from detectors.pca import PcaModel  # noqa: PLC0415
    from hazwatch.settings import AnomalySettings  # noqa: PLC0415

    lines = ["| model | points | components | µs per period, normal | µs per period, raising |"]
    lines.append("|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    for model in read_model_file(ROOT / "simulators/examples/models/normal.json").models:
        detector = AnomalyDetector(model, model.installation, AnomalySettings(), 3.0)
        pca = model.pca
        normal = [list(pca.mean + pca.scale * rng.normal(scale=0.3, size=len(pca.tags)))]
        far = [list(pca.mean + pca.scale * 50)]
        samples = [Sample(T0 + k, normal[0]) for k in range(20_000)]
        started = time.process_time()
        for sample in samples:
            detector.judge(sample)
        per_normal = (time.process_time() - started) / len(samples) * 1e6
        raising = 2_000
        started = time.process_time()
        for k in range(raising):
            detector.active = False
            detector._recent.clear()  # noqa: SLF001 - a bench: raise on every sample
            detector._recent.extend([2.0, 2.0])  # noqa: SLF001
            detector.judge(Sample(T0 + k, far[0]))
        per_raise = (time.process_time() - started) / raising * 1e6
        lines.append(
            f"| {model.name} | {len(pca.tags)} | {pca.components} | {per_normal:.1f} "
            f"| {per_raise:.1f} |"
        )
    # a reading of a modelled point, against one of a point without a model
    n, per_unit = 10_000, 10
    base = registry(n)
    points = [p for p in base.points() if p.kind is not PointKind.STATE][: n // 10 * 9]
    units = [points[i : i + per_unit] for i in range(0, len(points), per_unit)]
    models = [
        InstallationModel(
            "E001",
            "U1",
            f"M{u}.normal",
            30.0,
            tuple(ModelPoint.of(p) for p in unit),
            PcaModel(
                tags=tuple(p.tag for p in unit),
                mean=np.zeros(per_unit),
                scale=np.ones(per_unit) * 1e3,
                loadings=np.eye(per_unit)[:, :3],
                eigenvalues=np.ones(3),
                explained=np.full(3, 0.3),
                t2_limit=1e9,
                spe_limit=1e9,
                variance=0.9,
                confidence=0.999,
                train_samples=300,
                holdout_samples=100,
            ),
            T0,
            T0,
        )
        for u, unit in enumerate(units)
        if len(unit) == per_unit
    ]
    rates: dict[str, list[float]] = {"without models": [], "with models": []}
    for _ in range(3):
        for label, used in (("without models", []), ("with models", models)):
            engine = DetectorEngine(base, DetectorSettings(), T0, models=used)
            signals = Signals(n)
            for k in range(WARMUP_ROUNDS):
                engine.update(signals.round(k), T0 + k * INTERVAL_MS + 250)
            rounds = [signals.round(k) for k in range(WARMUP_ROUNDS, WARMUP_ROUNDS + 60)]
            gc.collect()
            started = time.process_time()
            for k, readings in enumerate(rounds, start=WARMUP_ROUNDS):
                engine.update(readings, T0 + k * INTERVAL_MS + 250)
            rates[label].append(60 * n / (time.process_time() - started))
    without, with_ = (statistics.median(rates[k]) for k in rates)
    extra_us = (1 / with_ - 1 / without) * 1e6 * n / len(points)
    summary = (
        f"Engine, 10,000 points ({len(points):,} in {len(models):,} models of {per_unit}): "
        f"{without:,.0f} readings/CPU-s without models, {with_:,.0f} with (medians of 3, "
        f"alternated): a modelled point's reading costs ~{extra_us:.2f} µs more "
        "(the sampler's bookkeeping, and a judgement per installation per period)."
    )
    report = (
        f"\n## ANOMALY's cost — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"`.venv/bin/python bench/detectors.py --anomaly` — Python {platform.python_version()}, "
        f"one core, CPU time; load average {os.getloadavg()[0]:.2f}.\n\n"
        + "\n".join(lines)
        + "\n\n"
        + summary
        + "\n"
    )
    print(report)
    if record_to is not None:
        with record_to.open("a") as out:
            out.write(report)


def child_run(tree: Path, n: int, rounds: int) -> dict[str, float]:
    """One benchmark of ``n`` points in a fresh process importing from ``tree``."""
    command = [sys.executable, __file__, "--points", str(n), "--json", "--no-record"]
    if rounds:
        command += ["--rounds", str(rounds)]
    out = subprocess.run(
        command, env={**os.environ, TREE_ENV: str(tree)}, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def export(revision: str, target: Path) -> Path:
    """The files of a git revision, in ``target``."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def side_by_side(args: argparse.Namespace, sizes: list[int]) -> None:
    ref = args.against
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode:
        sys.exit(f"error: --against: {ref!r} is not a git revision of {ROOT}")
    # this tree as it is now, uncommitted changes too, frozen for the whole run
    snapshot = (
        subprocess.run(
            ["git", "-C", str(ROOT), "stash", "create"], capture_output=True, text=True, check=True
        ).stdout.strip()
        or "HEAD"
    )
    with tempfile.TemporaryDirectory(prefix="hazwatch-bench-") as tmp:
        trees = {
            f"{ref} ({head.stdout.strip()})": export(ref, Path(tmp) / "ref"),
            "this tree": export(snapshot, Path(tmp) / "this"),
        }
        rows: list[tuple[int, str, list[dict[str, float]]]] = []
        for n in sizes:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for k in range(args.repeat):
                for name, tree in trees.items():
                    result = child_run(tree, n, args.rounds)
                    runs[name].append(result)
                    print(
                        f"{n:>7,} points, {name}, run {k + 1}: "
                        f"{result['cpu_rate']:>10,.0f} readings/CPU-s, "
                        f"{result['bytes_per_point']:,.0f} B/point, "
                        f"{result['changes']:.0f} condition changes",
                        flush=True,
                    )
            rows += [(n, name, found) for name, found in runs.items()]
    load = os.getloadavg()[0]
    lines = [
        "",
        f"## Detector engine, side by side — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        (
            f"`python bench/detectors.py {' '.join(sys.argv[1:])}` — Python "
            f"{platform.python_version()}, one core per run, runs alternated; load average "
            f"after {load:.2f}; every default detector on; readings far from limits."
        ),
        "",
        "| points | tree | readings/CPU-s, each run | median | × ref | memory/point |",
        "|---:|---|---|---:|---:|---:|",
    ]
    medians = {
        (n, name): statistics.median(r["cpu_rate"] for r in found) for n, name, found in rows
    }
    for n, name, found in rows:
        ref_median = medians[n, next(iter(trees))]
        each = " / ".join(f"{r['cpu_rate']:,.0f}" for r in found)
        memory = statistics.median(r["bytes_per_point"] for r in found)
        lines.append(
            f"| {n:,} | {name} | {each} | {medians[n, name]:,.0f} "
            f"| {medians[n, name] / ref_median:.2f} | {memory:,.0f} B |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_record:
        with RESULTS.open("a") as out:
            out.write(report)


def record(rows: list[dict[str, float]], command: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        f"## Detector engine — {when}",
        "",
        (
            f"`{command}` — Python {platform.python_version()}, {platform.machine()}, one core; "
            "every default detector on; readings far from limits (the common case)."
        ),
        "",
        (
            "| points | readings/s (CPU) | readings/s (wall) | µs CPU/reading | tick (ms) "
            "| memory/point |"
        ),
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['points']:,.0f} | {r['cpu_rate']:,.0f} | {r['rate']:,.0f} "
        f"| {r['us_per_reading']:.2f} "
        f"| {r['tick_ms']:.1f} | {r['bytes_per_point']:,.0f} B |"
        for r in rows
    ]
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
