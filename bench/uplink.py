"""Uplink benchmark: what an uplink adds to the ingest's hand-over, and what a request costs.

    .venv/bin/python bench/uplink.py              # prints, and appends to bench/RESULTS.md
    .venv/bin/python bench/uplink.py --no-record

Measured side by side in one run (the machine is shared: compare the ratios):

1. **Hand-over cost per ingest batch** (``UplinkForwarder.offer``, the wiring awaits
   it before the spool's delivered cursor moves): a batch of 5,000 readings of 5,000
   points, with the uplink forwarding 0 (period not elapsed), 50, 500 or all 5,000 of
   them — the sampler plus one queue commit (``synchronous=FULL``, an fsync) in a
   worker thread. Median and p90 of 40 batches, against the sampler alone.
2. **Request cost** for a request of 200 readings: template rendering + JSON, then
   sealed without anything, with HMAC-SM3, and with SM4-ECB + HMAC-SM3.
3. **Queue size on disk** per queued reading (to size ``queue_max_records``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hazwatch.clock import ManualClock, SystemClock
from hazwatch.metrics import Metrics
from hazwatch.models import Reading, Registry
from hazwatch.uplink_settings import UplinkSettings
from uplink.forwarder import UplinkForwarder
from uplink.queue import QueuedRecord, UplinkQueue
from uplink.requests import RequestBuilder
from uplink.sampler import PointSelection, ReadingSampler
from uplink.sealing import build_sealer
from uplink.service import build_requests

POINTS = 5000
BATCHES = 40
T0 = 1_763_820_000_000


def batch(round_: int) -> list[Reading]:
    return [
        Reading("E001", f"g{n // 100}", f"P{n:05d}", float(n + round_), T0 + round_ * 1000)
        for n in range(POINTS)
    ]


class _NoUpstream:
    async def send(self, _request: object) -> None:  # never called: run() is not started
        raise AssertionError


async def hand_over(forwarded_per_batch: int, workdir: Path) -> tuple[float, float]:
    """Median and p90 ms of ``offer`` for batches forwarding this many readings."""
    # period 1 s, one round per second: every reading is due; forwarding fewer means a
    # subset of the points (tags matching the first ones).
    tags = [f"P{n:05d}" for n in range(forwarded_per_batch)] or ["none"]
    settings = UplinkSettings.model_validate(
        {"name": "b", "url": "http://127.0.0.1:9/", "readings": {"period_s": 1, "tags": tags}}
    )
    registry = Registry(enterprises={})
    clock = SystemClock()
    times: list[float] = []
    async with UplinkQueue(workdir / f"q{forwarded_per_batch}.db", 10_000_000) as queue:
        forwarder = UplinkForwarder(
            settings,
            selection=PointSelection(registry, (), tags),
            queue=queue,
            upstream=_NoUpstream(),
            builder=build_requests(settings, registry, clock),
            metrics=Metrics(),
            clock=clock,
        )
        batches = [batch(n) for n in range(BATCHES)]
        for readings in batches:
            started = time.perf_counter()
            await forwarder.offer(readings)
            times.append((time.perf_counter() - started) * 1000)
        assert sum(queue.depth.values()) == forwarded_per_batch * BATCHES
    return statistics.median(times), statistics.quantiles(times, n=10)[-1]


def sampler_only() -> float:
    sampler = ReadingSampler(period_s=60, deadband=None, select=lambda _e, _t: True)
    batches = [batch(n) for n in range(BATCHES)]
    started = time.perf_counter()
    for readings in batches:
        sampler.sample(readings)
    return (time.perf_counter() - started) * 1000 / BATCHES


def request_costs() -> dict[str, float]:
    """µs per request of 200 readings, by sealing."""
    registry = Registry(enterprises={})
    clock = ManualClock()
    records = [
        QueuedRecord(n, "reading", "E001", T0, reading=Reading("E001", "g", f"P{n}", 1.5, T0))
        for n in range(200)
    ]
    shapes = {
        "plain JSON": {},
        "HMAC-SM3": {"signature": {"kind": "hmac-sm3", "appid": "a", "secret": "s"}},
        "SM4-ECB + HMAC-SM3": {
            "signature": {"kind": "hmac-sm3", "appid": "a", "secret": "s"},
            "encryption": {"kind": "sm4-ecb", "key": "0123456789abcdeffedcba9876543210"},
        },
    }
    costs: dict[str, float] = {}
    for name, extra in shapes.items():
        settings = UplinkSettings.model_validate({"name": "b", "url": "http://h/", **extra})
        sealer = build_sealer(settings.signature, settings.encryption, clock)
        builder = RequestBuilder(settings, registry, sealer, clock)
        rounds = 200
        started = time.perf_counter()
        for _ in range(rounds):
            builder.requests(records)
        costs[name] = (time.perf_counter() - started) * 1e6 / rounds
    return costs


async def bytes_per_record(workdir: Path) -> float:
    path = workdir / "size.db"
    rows = 200_000
    async with UplinkQueue(path, 10_000_000) as queue:
        for start in range(0, rows, 10_000):
            readings = [
                Reading("91320500MA1XXXXXXX", "gw01", f"TK{n % 5000:04d}_LT", 3.42 + n, T0 + n)
                for n in range(start, start + 10_000)
            ]
            await queue.append_readings(readings, T0)
    return _file_bytes(path) / rows


def _file_bytes(path: Path) -> int:
    """The database and its WAL (not yet checkpointed pages live there)."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def measure() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines = [
            f"## Uplink — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            "",
            (
                f"`.venv/bin/python bench/uplink.py` on {platform.node()} "
                f"({platform.python_implementation()} {platform.python_version()}); "
                "the machine is shared: compare ratios."
            ),
            "",
            (
                f"Hand-over per ingest batch of {POINTS:,} readings (`UplinkForwarder.offer`, "
                f"{BATCHES} batches):"
            ),
            "",
            "| readings forwarded per batch | median ms | p90 ms |",
            "|---:|---:|---:|",
            f"| sampler alone, nothing due | {sampler_only():.2f} | |",
        ]
        for forwarded in (0, 50, 500, POINTS):
            median, p90 = await hand_over(forwarded, workdir)
            lines.append(f"| {forwarded:,} | {median:.2f} | {p90:.2f} |")
        lines += [
            "",
            "One request of 200 readings (templates, JSON, sealing):",
            "",
            "| sealing | µs per request |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {us:,.0f} |" for name, us in request_costs().items()]
        size = await bytes_per_record(workdir)
        lines += [
            "",
            (
                f"Queue on disk: {size:.0f} bytes per queued reading (200,000 rows, with an "
                f"18-character enterprise id): 2,000,000 records ≈ {size * 2e6 / 2**20:,.0f} MiB."
            ),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true")
    text = asyncio.run(measure())
    print(text)
    if not parser.parse_args().no_record:
        with (Path(__file__).resolve().parent / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + text)
