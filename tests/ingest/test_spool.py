"""Spool: durable messages, two cursors, a size limit that drops the oldest first."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hazwatch.errors import ConfigError
from hazwatch.metrics import Metrics
from hazwatch.models import Quality, Reading, Registry
from hazwatch.registry import load_registry
from ingest.lineprotocol import LineEncoder
from ingest.spool import Spool, SpoolBatch, SpooledMessage
from tests.conftest import EXAMPLE_REGISTRY
from tests.helpers import spooled

NOW = 1_763_820_000_000
MB = 2**20
REGISTRY: Registry = load_registry(EXAMPLE_REGISTRY)
ENCODER = LineEncoder(REGISTRY)


def readings(n: int, start: int = 0, tag: str = "TK101_LT") -> list[Reading]:
    return [Reading("E001", "gw1", tag, float(start + k), NOW + start + k) for k in range(n)]


def message(n: int, start: int = 0, received_ms: int = NOW) -> SpooledMessage:
    return spooled(ENCODER, readings(n, start), received_ms)


def values(batch: SpoolBatch) -> list[float]:
    return [r.value for m in batch.messages for r in ENCODER.parse(m.body, m.gateway, m.stamped_ms)]


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    async with Spool(tmp_path / "spool.db", 64 * MB, Metrics()) as opened:
        yield opened


@given(
    st.lists(
        st.builds(
            Reading,
            enterprise=st.just("E001"),
            gateway=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
            tag=st.sampled_from([p.tag for p in REGISTRY.points() if p.enterprise == "E001"]),
            value=st.floats(allow_nan=False, allow_infinity=False),
            ts_ms=st.integers(0, 2**62),
            quality=st.sampled_from(Quality),
            receive_time=st.just(value=False),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(0, 2**62),
)
def test_line_protocol_bodies_parse_back_to_the_readings(
    original: list[Reading], received_ms: int
) -> None:
    gateway = original[0].gateway
    same_gateway = [
        Reading(r.enterprise, gateway, r.tag, r.value, r.ts_ms, r.quality) for r in original
    ]
    m = spooled(ENCODER, same_gateway, received_ms)
    assert ENCODER.parse(m.body, m.gateway, m.stamped_ms) == [
        Reading(r.enterprise, r.gateway, r.tag, r.value, r.ts_ms, r.quality) for r in same_gateway
    ]


def test_readings_that_took_the_receive_time_say_so_after_the_spool() -> None:
    own = Reading("E001", "gw1", "TK101_LT", 1.0, NOW - 5)
    stamped = Reading("E001", "gw1", "TK101_TT", 2.0, NOW, receive_time=True)
    m = spooled(ENCODER, [own, stamped], NOW)
    assert m.stamped_ms == NOW
    assert ENCODER.parse(m.body, m.gateway, m.stamped_ms) == [own, stamped]


async def test_sqlite_settings_are_durable(tmp_path: Path) -> None:
    async with Spool(tmp_path / "a" / "spool.db", MB, Metrics()) as spool:
        conn = spool._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


async def test_one_row_per_message_and_reads_in_order(spool: Spool) -> None:
    empty = SpooledMessage(NOW + 2, "gw1", 0, None, b"")
    last = await spool.append([message(3), message(2, 3, NOW + 1), empty])
    assert spool.depth_messages == 2
    assert spool.depth_readings == 5
    batch = await spool.read_unwritten(100)
    assert batch is not None
    assert batch.last_id == last
    assert values(batch) == [0, 1, 2, 3, 4]
    assert [(m.received_ms, m.readings) for m in batch.messages] == [(NOW, 3), (NOW + 1, 2)]
    # Whole messages only: a limit of 4 readings stops after the first message.
    small = await spool.read_unwritten(4)
    assert small is not None
    assert values(small) == [0, 1, 2]
    assert small.readings == 3
    # A message bigger than the limit still comes (alone), never stalls the writer.
    alone = await spool.read_unwritten(1)
    assert alone is not None
    assert alone.readings == 3
    # The writer reads ahead of what it has in flight.
    ahead = await spool.read_unwritten(100, after=small.last_id)
    assert ahead is not None
    assert values(ahead) == [3, 4]


async def test_rows_go_once_written_and_delivered(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    async with Spool(path, MB, Metrics()) as spool:
        first = await spool.append([message(2)])
        await spool.confirm(first)  # written, but the detectors have not seen it
        assert spool.depth_readings == 0
        assert _rows(path) == 1
        spool.mark_delivered(first)
        await spool.flush()
        assert _rows(path) == 0
        assert spool.bytes == 0
        # Ids keep growing after every row was deleted (AUTOINCREMENT): a reused id
        # would be taken for delivered.
        second = await spool.append([message(1)])
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
        for m in range(700):  # ~500 KiB of bodies into a 64 KiB spool
            last = await spool.append([message(10, m * 10, NOW + m)])
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
        kept = values(batch)
        assert kept == [float(v) for v in range(int(dropped), 7000)]
        assert spool.depth_readings == len(kept)
        assert metrics.value("hazwatch_spool_depth_readings") == len(kept)
        await spool.confirm(batch.last_id)
        await spool.flush()
        await spool.append([message(1)])
        assert not spool.full  # below half the limit again


async def test_dead_letters_are_kept_newest_first(spool: Spool) -> None:
    await spool.dead_letter(readings(2), "HTTP 400: field type conflict", NOW)
    await spool.dead_letter(readings(1, 7), "HTTP 400: beyond retention", NOW + 1)
    letters = await spool.dead_letters()
    assert [(d.reading and d.reading.value, d.error) for d in letters] == [
        (7.0, "HTTP 400: beyond retention"),
        (1.0, "HTTP 400: field type conflict"),
        (0.0, "HTTP 400: field type conflict"),
    ]


async def test_a_spool_of_the_old_format_is_refused_unless_empty(tmp_path: Path) -> None:
    def old_spool(path: Path, rows: int) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(
                "CREATE TABLE message (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "received_ms INTEGER NOT NULL, readings INTEGER NOT NULL, body BLOB NOT NULL)"
            )
            insert = "INSERT INTO message (received_ms, readings, body) VALUES (1, 1, '[]')"
            for _ in range(rows):
                conn.execute(insert)

    old_spool(tmp_path / "pending.db", 2)
    with pytest.raises(ConfigError, match="format 1 holding 2 messages"):
        async with Spool(tmp_path / "pending.db", MB, Metrics()):
            pass
    old_spool(tmp_path / "empty.db", 0)
    async with Spool(tmp_path / "empty.db", MB, Metrics()) as spool:
        assert await spool.append([message(1)]) > 0
