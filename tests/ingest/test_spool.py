"""Spool: durable messages, two cursors, a size limit that drops the oldest first."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hazwatch.metrics import Metrics
from hazwatch.models import Quality, Reading
from ingest.spool import Spool, decode, encode

NOW = 1_763_820_000_000
MB = 2**20


def readings(n: int, start: int = 0, tag: str = "TK101_LT") -> list[Reading]:
    return [Reading("E001", "gw1", tag, float(start + k), NOW + start + k) for k in range(n)]


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    async with Spool(tmp_path / "spool.db", 64 * MB, Metrics()) as opened:
        yield opened


@given(
    st.lists(
        st.builds(
            Reading,
            enterprise=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
            gateway=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
            tag=st.from_regex(r"[A-Za-z0-9_.:-]{1,128}", fullmatch=True),
            value=st.floats(allow_nan=False, allow_infinity=False),
            ts_ms=st.integers(0, 2**62),
            quality=st.sampled_from(Quality),
            receive_time=st.booleans(),
        ),
        max_size=20,
    )
)
def test_encoding_round_trips(original: list[Reading]) -> None:
    assert decode(encode(original)) == original


async def test_sqlite_settings_are_durable(tmp_path: Path) -> None:
    async with Spool(tmp_path / "a" / "spool.db", MB, Metrics()) as spool:
        conn = spool._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


async def test_one_row_per_message_and_reads_in_order(spool: Spool) -> None:
    last = await spool.append([(NOW, readings(3)), (NOW + 1, readings(2, 3)), (NOW + 2, [])])
    assert spool.depth_messages == 2
    assert spool.depth_readings == 5
    batch = await spool.read_unwritten(100)
    assert batch is not None
    assert batch.last_id == last
    assert [r.value for r in batch.readings] == [0, 1, 2, 3, 4]
    # Whole messages only: a limit of 4 readings stops after the first message.
    small = await spool.read_unwritten(4)
    assert small is not None
    assert [r.value for r in small.readings] == [0, 1, 2]
    # A message bigger than the limit still comes (alone), never stalls the writer.
    alone = await spool.read_unwritten(1)
    assert alone is not None
    assert len(alone.readings) == 3


async def test_rows_go_once_written_and_delivered(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    async with Spool(path, MB, Metrics()) as spool:
        first = await spool.append([(NOW, readings(2))])
        await spool.confirm(first)  # written, but the detectors have not seen it
        assert spool.depth_readings == 0
        assert _rows(path) == 1
        spool.mark_delivered(first)
        await spool.flush()
        assert _rows(path) == 0
        assert spool.bytes == 0
        # Ids keep growing after every row was deleted (AUTOINCREMENT): a reused id
        # would be taken for delivered.
        second = await spool.append([(NOW, readings(1))])
        assert second > first
    async with Spool(path, MB, Metrics()) as reopened:
        assert (reopened.written, reopened.delivered) == (first, first)
        batch = await reopened.read_unwritten(10)
        assert batch is not None
        assert batch.last_id == second
        assert reopened.depth_readings == 1


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (n,) = conn.execute("SELECT count(*) FROM message").fetchone()
    return int(n)


async def test_a_full_spool_drops_the_oldest_unwritten_readings_and_says_so(
    tmp_path: Path,
) -> None:
    metrics = Metrics()
    limit = 64 * 1024
    async with Spool(tmp_path / "spool.db", limit, metrics) as spool:
        first_id = 0
        for m in range(200):  # ~100 KiB of bodies into a 64 KiB spool
            last = await spool.append([(NOW + m, readings(10, m * 10))])
            first_id = first_id or last
            spool.mark_delivered(last)
        assert spool.full
        assert spool.bytes <= limit
        dropped = metrics.value("hazwatch_spool_dropped_readings_total")
        assert dropped > 0
        assert dropped % 10 == 0  # whole messages
        batch = await spool.read_unwritten(10_000)
        assert batch is not None
        # The newest survive, contiguous, and nothing counted is missing.
        values = [r.value for r in batch.readings]
        assert values == [float(v) for v in range(int(dropped), 2000)]
        assert spool.depth_readings == len(values)
        assert metrics.value("hazwatch_spool_depth_readings") == len(values)
        await spool.confirm(batch.last_id)
        await spool.flush()
        await spool.append([(NOW, readings(1))])
        assert not spool.full  # below half the limit again


async def test_dead_letters_are_kept_newest_first(spool: Spool) -> None:
    await spool.dead_letter(readings(2), "HTTP 400: field type conflict", NOW)
    await spool.dead_letter(readings(1, 7), "HTTP 400: beyond retention", NOW + 1)
    letters = await spool.dead_letters()
    assert [(d.reading.value, d.error) for d in letters] == [
        (7.0, "HTTP 400: beyond retention"),
        (1.0, "HTTP 400: field type conflict"),
        (0.0, "HTTP 400: field type conflict"),
    ]
