"""SqliteSink: the embedded readings store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from hazwatch.errors import SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import Quality, Reading, Registry
from ingest.sqlite import SqliteSink

MakeReading = Callable[..., Reading]
T0 = 1_763_820_000_000


def stored(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT * FROM reading ORDER BY enterprise, tag, ts_ms").fetchall()
    conn.close()
    return rows


async def test_write_stores_the_schema_and_creates_directories(
    tmp_path: Path, example_registry: Registry, make_reading: MakeReading
) -> None:
    path = tmp_path / "var" / "deep" / "readings.db"
    metrics = Metrics()
    async with SqliteSink(path, example_registry, metrics) as sink:
        await sink.write(
            [
                make_reading("TK101_LT", 3, T0),
                make_reading("ESD201_ZSC", 1.0, T0, quality=Quality.BAD),
            ]
        )
        assert await sink.ping()
    assert not await sink.ping()  # closed
    assert stored(path) == [
        ("E001", "ESD201_ZSC", T0, "MH02", "state", 1.0, "bad"),
        ("E001", "TK101_LT", T0, "MH01", "level", 3.0, "good"),
    ]
    assert metrics.value("hazwatch_sink_written_points_total", {"backend": "sqlite"}) == 2
    assert metrics.value("hazwatch_sink_write_seconds_count", {"backend": "sqlite"}) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


async def test_a_duplicated_write_changes_nothing(
    tmp_path: Path, example_registry: Registry, make_reading: MakeReading
) -> None:
    readings = [make_reading("TK101_LT", n / 3, T0 + n) for n in range(500)]
    async with SqliteSink(tmp_path / "r.db", example_registry, Metrics()) as sink:
        await sink.write(readings)
        first = stored(tmp_path / "r.db")
        await sink.write(readings)
        await sink.write(readings[:10])
    assert len(first) == 500
    assert stored(tmp_path / "r.db") == first


async def test_same_point_and_time_overwrites(
    tmp_path: Path, example_registry: Registry, make_reading: MakeReading
) -> None:
    async with SqliteSink(tmp_path / "r.db", example_registry, Metrics()) as sink:
        await sink.write([make_reading("TK101_LT", 1.0, T0)])
        await sink.write([make_reading("TK101_LT", 2.0, T0)])
    assert [row[5] for row in stored(tmp_path / "r.db")] == [2.0]


async def test_history_buckets_by_step(
    tmp_path: Path, example_registry: Registry, make_reading: MakeReading
) -> None:
    readings = [make_reading("TK101_LT", float(n), T0 + n * 1000) for n in range(20)]
    readings.append(make_reading("TK101_TT", 99.0, T0 + 1000))  # another point
    readings.append(make_reading("TK101_LT", 99.0, T0 - 1))  # before the window
    async with SqliteSink(tmp_path / "r.db", example_registry, Metrics()) as sink:
        await sink.write(readings)
        buckets = await sink.history("E001", "TK101_LT", T0, T0 + 10_000, 5000)
        assert await sink.history("E001", "TK101_LT", T0 + 100_000, T0 + 200_000, 5000) == []
        with pytest.raises(ValueError, match="step"):
            await sink.history("E001", "TK101_LT", T0, T0 + 10_000, 0)
        with pytest.raises(ValueError, match="buckets"):
            await sink.history("E001", "TK101_LT", T0, T0 + 10_000_000, 1)
    assert T0 % 5000 == 0  # buckets align to the epoch; T0 lies on a 5 s boundary
    assert buckets == [(T0, 2.0), (T0 + 5000, 7.0)]


async def test_unregistered_points_are_refused(
    tmp_path: Path, example_registry: Registry, make_reading: MakeReading
) -> None:
    async with SqliteSink(tmp_path / "r.db", example_registry, Metrics()) as sink:
        with pytest.raises(SinkRejected, match="NOPE"):
            await sink.write([make_reading("NOPE")])


async def test_an_unusable_path_is_unavailable(tmp_path: Path, example_registry: Registry) -> None:
    (tmp_path / "file").write_text("not a directory")
    sink = SqliteSink(tmp_path / "file" / "r.db", example_registry, Metrics())
    with pytest.raises(SinkUnavailable, match="cannot open"):
        await sink.__aenter__()
