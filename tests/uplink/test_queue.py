"""The uplink queue: order, confirmation, the sampler's state, bounds, reopening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hazwatch.models import Reading
from uplink.queue import UplinkQueue, read_status


def r(n: int, tag: str = "T1") -> Reading:
    return Reading("E1", "gw", tag, float(n), 1_000 + n)


async def test_alarms_first_then_readings_in_order_and_confirmed_ones_gone(tmp_path: Path) -> None:
    async with UplinkQueue(tmp_path / "q.db", 1000) as q:
        await q.append_readings([r(n) for n in range(5)], 10)
        await q.append_alarms([("E1", '{"a": 1}'), ("E1", '{"a": 2}')], 42, 11)
        batch = await q.next_batch(10)
        assert [x.kind for x in batch] == ["alarm", "alarm"]
        await q.confirm([x.seq for x in batch], 12)
        batch = await q.next_batch(3)
        assert [x.reading.value for x in batch if x.reading] == [0.0, 1.0, 2.0]
        await q.confirm([batch[0].seq, batch[1].seq], 13)
        assert q.depth == {"reading": 3, "alarm": 0}
        assert q.alarm_cursor == 42
    async with UplinkQueue(tmp_path / "q.db", 1000) as q:
        assert q.depth == {"reading": 3, "alarm": 0}
        assert q.alarm_cursor == 42
        assert q.sent == 4
        assert [x.reading.value for x in await q.next_batch(10) if x.reading] == [2.0, 3.0, 4.0]
        assert {x.tag: x.value for x in await q.forwarded()} == {"T1": 4.0}
        assert await q.oldest_queued_ms() == 10


async def test_full_drops_the_oldest_readings_never_alarms_nor_the_batch_in_flight(
    tmp_path: Path,
) -> None:
    async with UplinkQueue(tmp_path / "q.db", 100) as q:
        await q.append_readings([r(n) for n in range(60)], 0)
        in_flight = await q.next_batch(5)
        await q.append_alarms([("E1", "{}")], 1, 0)
        dropped = await q.append_readings([r(n) for n in range(60, 120)], 0)
        assert dropped == 121 - 90
        assert q.full
        assert q.dropped == dropped
        await q.confirm([x.seq for x in in_flight], 0)  # the batch in flight was kept
        [alarm] = await q.next_batch(1000)
        assert alarm.kind == "alarm"  # kept
        await q.confirm([alarm.seq], 0)
        rest = await q.next_batch(1000)
        values = [x.reading.value for x in rest if x.reading]
        assert values == [float(n) for n in range(5 + dropped, 120)]  # the oldest went
        await q.confirm([x.seq for x in rest[:40]], 0)
        assert not q.full  # below half again


async def test_status_reads_failures_and_successes(tmp_path: Path) -> None:
    async with UplinkQueue(tmp_path / "q.db", 100) as q:
        await q.append_readings([r(1)], 5)
        await q.note_failure("refused", 20)
        await q.note_failure("refused again", 30)
        status = await q.status()
        assert (status.last_error, status.last_error_ms, status.failing_since_ms) == (
            "refused again",
            30,
            20,
        )
        [record] = await q.next_batch(1)
        await q.confirm([record.seq], 40)
    with sqlite3.connect(f"file:{tmp_path / 'q.db'}?mode=ro", uri=True) as conn:
        status = read_status(conn)
    assert status.failing_since_ms is None
    assert status.last_ok_ms == 40
    assert status.sent == 1
    assert status.readings == 0
