"""AlarmService.submit: journal commits in the service's thread, the event loop free.

Real journals on temporary files; a second SQLite connection stands in for a slow
fsync (it holds the write lock), a trigger for a failing write.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from alerting.journal import Journal
from alerting.notifiers import Notice
from alerting.service import AlarmService
from hazwatch.clock import ManualClock, SystemClock
from hazwatch.errors import JournalError, JournalUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent, Condition
from tests.alerting.conftest import T0, MakeCondition


class Unused:
    """A notifier channel whose outbox never runs here: its rows stay pending."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, notice: Notice) -> None:
        event = notice.event
        raise AssertionError(f"the outbox does not run in this test: {event}")


class ThreadNoted(Journal):
    """A real journal that notes which thread applied each condition."""

    def __init__(self, path: Path, channels: list[str]) -> None:
        super().__init__(path, channels)
        self.threads: set[int] = set()

    def apply_all(
        self, conditions: Sequence[Condition], now_ms: int
    ) -> tuple[list[AlarmEvent], list[JournalError]]:
        self.threads.add(threading.get_ident())
        return super().apply_all(conditions, now_ms)


async def test_submissions_commit_in_the_journal_thread_in_order(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    seen: list[tuple[str, str, int | None]] = []
    metrics = Metrics()
    with ThreadNoted(tmp_path / "journal.db", ["webhook", "mqtt"]) as journal:
        service = AlarmService(
            journal,
            [Unused("webhook"), Unused("mqtt")],
            metrics,
            SystemClock(),
            on_event=lambda e: seen.append((e.alarm.tag, e.kind, e.seq)),
        )
        try:
            # submitted back to back, none awaited: the order must still hold
            first = service.submit([make_condition(tag="A")])
            second = service.submit([make_condition(tag="A", active=False)])
            third = service.submit([make_condition(tag="B")])
            [raised_b] = await third
            [raised_a], [cleared_a] = first.result(), second.result()
        finally:
            service.close()
        assert journal.threads
        assert threading.get_ident() not in journal.threads
        assert seen == [("A", "raised", 1), ("A", "cleared", 2), ("B", "raised", 1)]
        assert raised_a.alarm.id == cleared_a.alarm.id != raised_b.alarm.id
        # each event: its transition and one outbox row per channel, all committed
        assert [t["kind"] for t in journal.transitions(raised_a.alarm.id)] == ["raised", "cleared"]
        rows = journal.notifications(raised_a.alarm.id)
        assert [(r["seq"], r["channel"]) for r in rows] == [
            (1, "webhook"),
            (1, "mqtt"),
            (2, "webhook"),
            (2, "mqtt"),
        ]
        assert journal.pending_count() == 6
    assert metrics.value("hazwatch_outbox_pending") == 6
    assert metrics.value("hazwatch_alarms_active") == 2  # A cleared but unacknowledged, B


async def test_a_failed_write_leaves_no_half_recorded_alarm(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    path = tmp_path / "journal.db"
    seen: list[AlarmEvent] = []
    with Journal(path, ["mqtt"]) as journal:
        other = sqlite3.connect(path)
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        other.commit()
        metrics = Metrics()
        service = AlarmService(
            journal, [Unused("mqtt")], metrics, SystemClock(), on_event=seen.append
        )
        try:
            assert await service.submit([make_condition()]) == []  # logged, not raised
            assert journal.list_alarms() == []  # alarm and transition rolled back with it
            assert metrics.value("hazwatch_alarm_conditions_unrecorded_total") == 1
            assert not service.journal_ok
            other.execute("DROP TRIGGER refuse")
            other.commit()
            [raised] = await service.submit([make_condition()])
            assert service.journal_ok
        finally:
            service.close()
            other.close()
        assert raised.seq == 1
        assert [a.id for a in journal.list_alarms()] == [raised.alarm.id]
        assert [n["seq"] for n in journal.notifications(raised.alarm.id)] == [1]
    assert seen == [raised]


async def test_the_loop_runs_while_a_commit_waits(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    path = tmp_path / "journal.db"
    with Journal(path, []) as journal:
        service = AlarmService(journal, [], Metrics(), SystemClock())
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: a commit that takes long
        try:
            pending = service.submit([make_condition()])
            ticks = 0
            for _ in range(50):  # the loop keeps turning meanwhile
                await asyncio.sleep(0)
                ticks += 1
            assert ticks == 50
            assert not pending.done()
            # reads meanwhile: the read connection does not queue behind the writer
            assert journal.list_alarms() == []
            assert journal.pending_count() == 0
            blocker.execute("COMMIT")
            [raised] = await pending
        finally:
            service.close()
            blocker.close()
        assert journal.get(raised.alarm.id).state == "active_unack"


class Recorder:
    """A notifier that takes ``send_ms`` of the manual clock to publish."""

    name = "mqtt"

    def __init__(self, clock: ManualClock, send_ms: int) -> None:
        self.clock = clock
        self.send_ms = send_ms
        self.sent: list[AlarmEvent] = []
        self.done = asyncio.Event()

    async def send(self, notice: Notice) -> None:
        event = notice.event
        self.clock.advance(self.send_ms)
        self.sent.append(event)
        if len(self.sent) == 2:
            self.done.set()


async def test_alarm_latency_is_measured_from_the_reading_to_the_publish(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    clock = ManualClock(T0 + 30)  # the reading (T0) reached alerting 30 ms later
    metrics = Metrics()
    notifier = Recorder(clock, send_ms=20)
    with Journal(tmp_path / "journal.db", ["mqtt"]) as journal:
        service = AlarmService(journal, [notifier], metrics, clock)
        outbox = asyncio.create_task(service.run_outbox())
        try:
            await service.submit([make_condition(ts_ms=T0)])
            await service.submit([make_condition(active=False, ts_ms=T0 + 40)])
            async with asyncio.timeout(10):
                await notifier.done.wait()
            await service.settled()
        finally:
            outbox.cancel()
            await asyncio.gather(outbox, return_exceptions=True)
            service.close()

    def histogram(name: str, labels: dict[str, str]) -> tuple[float, float]:
        return metrics.value(f"{name}_count", labels), metrics.value(f"{name}_sum", labels)

    # raised events only: the cleared one is not an alarm reaching anyone late
    assert histogram("hazwatch_alarm_latency_seconds", {"channel": "mqtt"}) == (1, 0.05)
    stage = "hazwatch_alarm_stage_seconds"
    assert histogram(stage, {"stage": "to_alerting"}) == (1, 0.03)
    assert histogram(stage, {"stage": "journal"}) == (1, 0)  # the manual clock stood still
    assert histogram(stage, {"stage": "journal_to_published"}) == (1, 0.02)


async def test_the_outbox_does_not_wait_for_a_delivery_to_be_recorded(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    path = tmp_path / "journal.db"
    clock = ManualClock(T0)
    notifier = Recorder(clock, send_ms=0)
    with Journal(path, ["mqtt"]) as journal:
        service = AlarmService(journal, [notifier], Metrics(), clock)
        [raised] = service.handle([make_condition()])
        [cleared] = service.handle([make_condition(active=False)])
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the 'delivered' marks cannot commit yet
        outbox = asyncio.create_task(service.run_outbox())
        try:
            async with asyncio.timeout(10):
                await notifier.done.wait()  # both sent while the first mark still waits
            assert journal.pending_count() == 2
            blocker.execute("COMMIT")
            await service.settled()
            assert journal.pending_count() == 0
        finally:
            outbox.cancel()
            await asyncio.gather(outbox, return_exceptions=True)
            service.close()
            blocker.close()
        rows = journal.notifications(raised.alarm.id)
    assert notifier.sent == [raised, cleared]  # each once, in order
    assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 1)] * 2


class FailsFirst(Journal):
    """A real journal whose first ``failures`` transactions fail as a full disk does."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path, [])
        self.failures = failures

    def apply_all(
        self, conditions: Sequence[Condition], now_ms: int
    ) -> tuple[list[AlarmEvent], list[JournalError]]:
        if self.failures:
            self.failures -= 1
            raise JournalUnavailable("database or disk is full")
        return super().apply_all(conditions, now_ms)


async def test_recorded_waits_for_the_commit_and_for_held_conditions(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    """What ingest's delivered cursor waits for: every submission so far committed —
    conditions held while the journal cannot write count only once a retry commits them."""
    path = tmp_path / "journal.db"
    with FailsFirst(path, failures=2) as journal:
        service = AlarmService(journal, [], Metrics(), SystemClock())
        try:
            assert service.recorded().done()  # nothing submitted
            held = service.submit([make_condition(tag="A")])
            first = service.recorded()
            assert await held == []
            assert service.holding
            assert await service.submit([]) == []  # the retry fails too
            assert not first.done()
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the next commit waits for the write lock
            later = service.submit([make_condition(tag="B")])  # A, then B, in one commit
            second = service.recorded()
            for _ in range(20):
                await asyncio.sleep(0)
            assert not first.done()
            blocker.execute("COMMIT")
            blocker.close()
            await second
            assert first.done()
            assert not service.holding
            assert {"A", "B"} <= {e.alarm.tag for e in await later}
        finally:
            service.close()
