"""Decode cost per reading of every codec, side by side with hz-json, in one run.

    .venv/bin/python bench/codecs.py                  # prints a table, appends to RESULTS.md
    .venv/bin/python bench/codecs.py --no-record --rounds 3

Each codec decodes messages of 100 readings (and of 1 reading) in the shape its
gateways send, through ``codec.decode`` exactly as the service calls it (topic
routing and validation excluded: they are the same for every codec). The codecs
take turns, round after round, and each figure is the best round of CPU time (the
box is shared: CPU time and the minimum are the least disturbed). The Sparkplug goal
is the NDATA of 100 metrics: <= 50 µs per message end to end through the codec.
A second table compares ways of writing ``hazwatch.models.Reading`` (built by every
codec, once per value): its cost to build and to read, side by side.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hazwatch.models import Quality, Reading
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
    "sparkplug-b+quality": entry("sparkplug-b", map=E001),
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


def sparkplug(n: int, *, quality: bool = False) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """An NBIRTH and an NDATA of ``n`` Double metrics; ``quality``: each metric of the
    NDATA carries a ``Quality`` property (192, good), as some edge nodes send."""
    birth = pb.Payload(timestamp=TS, seq=0)
    data = pb.Payload(timestamp=TS + 1000, seq=1)
    for k, tag in enumerate(tags(n), start=1):
        b = birth.metrics.add(name=tag, alias=k, datatype=10, timestamp=TS)
        b.double_value = k * 0.5
        d = data.metrics.add(alias=k, timestamp=TS + 1000)
        d.double_value = k * 0.5 + 0.1
        if quality:
            d.properties.keys.append("Quality")
            d.properties.values.add(type=3, int_value=192)
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
        "sparkplug-b+quality": sparkplug(n, quality=True),
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


def reading_shapes() -> dict[str, Callable[..., Any]]:
    """``Reading``'s fields written the other ways it could be (the same names, types
    and defaults, taken from it): what the comparison sets side by side."""
    fields = msgspec.structs.fields(Reading)
    specs = [
        (f.name, f.type, dataclasses.field(default=f.default))
        if not f.required
        else (f.name, f.type)
        for f in fields
    ]
    defaults = [f.default for f in fields if not f.required]
    return {
        "msgspec.Struct, frozen, gc=False (Reading)": Reading,
        "dataclass, frozen, slots (before)": dataclasses.make_dataclass(
            "FrozenReading", specs, frozen=True, slots=True
        ),
        "dataclass, slots, mutable": dataclasses.make_dataclass(
            "MutableReading", specs, slots=True
        ),
        "NamedTuple": collections.namedtuple(  # noqa: PYI024 - built from Reading's fields
            "TupleReading", [f.name for f in fields], defaults=defaults
        ),
    }


def reading_table(rounds: int, n: int = 200) -> str:
    """Building 100 readings as a codec does (positionally), and reading four fields of
    each as the detectors do, for each way of writing ``Reading``; best of ``rounds``."""
    shapes = reading_shapes()
    good = Quality.GOOD

    def build(shape: Callable[..., Any]) -> float:
        started = time.thread_time()
        for _ in range(n):
            [shape("E001", "gw1", "TK101_LT", 1.5, TS, good) for _ in range(100)]
        return (time.thread_time() - started) / n * 1e6

    def read(shape: Callable[..., Any]) -> float:
        made = [shape("E001", "gw1", "TK101_LT", 1.5 + k, TS, good) for k in range(100)]
        started = time.thread_time()
        for _ in range(n):
            for r in made:
                r.value, r.ts_ms, r.tag, r.enterprise  # noqa: B018 - the reads measured
        return (time.thread_time() - started) / n * 1e6

    built = dict.fromkeys(shapes, float("inf"))
    reads = dict.fromkeys(shapes, float("inf"))
    for _ in range(rounds):
        for name, shape in shapes.items():
            built[name] = min(built[name], build(shape))
            reads[name] = min(reads[name], read(shape))
    base = built["dataclass, frozen, slots (before)"]
    lines = [
        "| Reading as | µs to build 100 | × frozen dataclass | µs to read 4 fields of 100 |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {built[name]:.1f} | {built[name] / base:.2f} | {reads[name]:.1f} |"
        for name in shapes
    ]
    return "\n".join(lines)


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
    parser.add_argument("--codecs", default=",".join(CODECS), help="comma-separated, hz-json first")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, int, float, int]] = []
    for size in (100, 1):
        runs: dict[str, Callable[[], float]] = {}
        for name, (topic, payload, setup) in payloads(size).items():
            if name not in args.codecs.split(","):
                continue
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
    table = "\n".join(lines) + "\n\n" + reading_table(args.rounds)
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
