"""Decode cost per reading of every codec, side by side with hz-json, in one run.

    .venv/bin/python bench/codecs.py                  # prints a table, appends to RESULTS.md
    .venv/bin/python bench/codecs.py --no-record --rounds 3

Each codec decodes messages of 100 readings (and of 1 reading) in the shape its
gateways send, through ``codec.decode`` exactly as the service calls it (topic
routing and validation excluded: they are the same for every codec). The codecs
take turns, round after round, and each figure is the best round of CPU time (the
box is shared: CPU time and the minimum are the least disturbed). The Sparkplug goal
is the NDATA of 100 metrics: <= 50 µs per message end to end through the codec.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hazwatch.settings import CodecSettings, IngestSettings, MappingRule
from ingest.codec import PayloadCodec
from ingest.codecs import build_codecs
from ingest.sparkplug import sparkplug_b_pb2 as pb

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TS = 1_763_820_000_000
E001 = (MappingRule(enterprise="E001"),)


def entry(kind: str, **kw: object) -> CodecSettings:
    return CodecSettings.model_validate({"kind": kind, **kw})


CODECS = {
    "hz-json": entry("hz-json"),
    "sparkplug-b": entry("sparkplug-b", map=E001),
    "neuron": entry("neuron", map=E001),
    "thingsboard": entry("thingsboard", map=E001),
    "telegraf": entry("telegraf", map=E001, options={"timestamp_units": "ms"}),
    "field-map": entry(
        "field-map",
        topics=["vendor/+/up"],
        map=E001,
        options={"readings": "data", "tag": "id", "value": "val", "device": "devId"},
    ),
}


def tags(n: int) -> list[str]:
    return [f"P{k:04d}_TT" for k in range(n)]


def sparkplug(n: int) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    birth = pb.Payload(timestamp=TS, seq=0)
    data = pb.Payload(timestamp=TS + 1000, seq=1)
    for k, tag in enumerate(tags(n), start=1):
        b = birth.metrics.add(name=tag, alias=k, datatype=10, timestamp=TS)
        b.double_value = k * 0.5
        d = data.metrics.add(alias=k, timestamp=TS + 1000)
        d.double_value = k * 0.5 + 0.1
    setup = [("spBv1.0/G/NBIRTH/gw1", birth.SerializeToString())]
    return "spBv1.0/G/NDATA/gw1", data.SerializeToString(), setup


def payloads(n: int) -> dict[str, tuple[str, bytes, list[tuple[str, bytes]]]]:
    values = {t: k * 0.5 + 0.1 for k, t in enumerate(tags(n))}
    hz = (
        ("hz/v1/E001/gw1/data", orjson.dumps({"seq": 1, "ts": TS, "readings": [
            {"tag": t, "v": v} for t, v in values.items()]}), [])
        if n > 1
        else ("hz/v1/E001/gw1/tag/P0000_TT", orjson.dumps({"v": 0.1, "ts": TS}), [])
    )  # fmt: skip
    return {
        "hz-json": hz,
        "sparkplug-b": sparkplug(n),
        "neuron": (
            "/neuron/app/modbus/grp",
            orjson.dumps({"timestamp": TS, "node": "gw1", "group": "g", "values": values}),
            [],
        ),
        "thingsboard": (
            "v1/gateway/telemetry",
            orjson.dumps({"gw1": [{"ts": TS, "values": values}]}),
            [],
        ),
        "telegraf": (
            "telegraf/gw1/modbus",
            orjson.dumps({"fields": values, "name": "m", "tags": {"host": "gw1"}, "timestamp": TS}),
            [],
        ),
        "field-map": (
            "vendor/gw1/up",
            orjson.dumps(
                {"devId": "gw1", "ts": TS, "data": [{"id": t, "val": v} for t, v in values.items()]}
            ),
            [],
        ),
    }


def timer(codec: PayloadCodec, topic: str, payload: bytes, n: int) -> Callable[[], float]:
    decode = codec.decode

    def run() -> float:
        started = time.thread_time()  # CPU time: the box is shared, wall time is noise
        for _ in range(n):
            decode(topic, payload, TS)
        return (time.thread_time() - started) / n * 1e6

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=2000, help="per round and codec")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, int, float, int]] = []
    for size in (100, 1):
        runs: dict[str, Callable[[], float]] = {}
        for name, (topic, payload, setup) in payloads(size).items():
            [codec] = build_codecs(IngestSettings(codecs=(CODECS[name],)))
            for setup_topic, setup_payload in setup:
                codec.decode(setup_topic, setup_payload, TS)
            decoded = codec.decode(topic, payload, TS)
            found = sum(len(p.readings) for p in decoded.parts())
            if found != size or decoded.rejections:
                raise SystemExit(f"{name}: {found} readings, {decoded.rejections}")
            runs[name] = timer(codec, topic, payload, args.messages)
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(args.rounds):
            for name, run in runs.items():
                best[name] = min(best[name], run())
        rows += [(name, size, best[name], len(payloads(size)[name][1])) for name in runs]
    lines = [
        "| codec | readings/message | bytes | µs/message | µs/reading | × hz-json |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, size, us, size_bytes in rows:
        base = next(u for n, s, u, _ in rows if n == "hz-json" and s == size)
        lines.append(
            f"| {name} | {size} | {size_bytes:,} | {us:.1f} | {us / size:.2f} | {us / base:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as out:
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            out.write(
                f"\n## Codecs: decode cost per reading — {now}\n\n"
                f"`python bench/codecs.py --rounds {args.rounds} --messages {args.messages}` — "
                f"Python {platform.python_version()}, {platform.machine()}, one core; best of "
                f"{args.rounds} interleaved rounds of {args.messages} messages per codec.\n\n"
                f"{table}\n"
            )


if __name__ == "__main__":
    main()
