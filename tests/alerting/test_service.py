"""AlarmService: handle/acknowledge, and the outbox delivering to a real HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerting.dispatch import DEAD_TAG
from alerting.journal import Journal
from alerting.notifiers import Notice, Notifier, WebhookNotifier
from alerting.service import AlarmService
from alerting.targets import TargetGuard
from hazwatch.backoff import Backoff
from hazwatch.clock import SystemClock
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent
from tests.alerting.conftest import MakeCondition
from tests.receivers import ScriptedReceiver

LOOPBACK = TargetGuard(["127.0.0.1"])
FAST = Backoff(initial_ms=20, max_ms=100)


class Observed:
    """A real notifier, with each attempt's outcome reported to the test.

    The service hands the outcome to the journal's thread right after ``send`` returns,
    before it awaits anything else; ``outcomes`` then waits for that thread
    (``AlarmService.settled``), so once the test has the outcome the journal has it too.
    """

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner
        self.service: AlarmService | None = None
        self.name = inner.name
        self._outcomes: asyncio.Queue[str] = asyncio.Queue()

    async def send(self, notice: Notice) -> None:
        try:
            await self.inner.send(notice)
        except Exception:
            self._outcomes.put_nowait("failed")
            raise
        self._outcomes.put_nowait("delivered")

    async def outcomes(self, count: int, timeout: float = 10) -> list[str]:
        async with asyncio.timeout(timeout):
            seen = [await self._outcomes.get() for _ in range(count)]
            if self.service is not None:
                await self.service.settled()
            return seen

    def idle(self) -> bool:
        return self._outcomes.empty()


@contextlib.asynccontextmanager
async def outbox_running(service: AlarmService) -> AsyncIterator[None]:
    task = asyncio.create_task(service.run_outbox(), name="test-outbox")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def sent(metrics: Metrics, channel: str, result: str) -> float:
    labels = {"channel": channel, "result": result}
    return metrics.value("hazwatch_notifications_total", labels)


async def test_each_event_is_posted_exactly_once(
    tmp_path: Path, http: httpx.AsyncClient, make_condition: MakeCondition
) -> None:
    metrics = Metrics()
    seen: list[AlarmEvent] = []
    async with ScriptedReceiver() as receiver:
        hook = Observed(WebhookNotifier(receiver.url(), http, name="hook", guard=LOOPBACK))
        with Journal(tmp_path / "journal.db", ["hook"]) as journal:
            service = AlarmService(journal, [hook], metrics, SystemClock(), on_event=seen.append)
            hook.service = service
            async with outbox_running(service):
                [raised] = service.handle([make_condition()])
                assert await hook.outcomes(1) == ["delivered"]
                assert metrics.value("hazwatch_outbox_pending") == 0
                [cleared] = service.handle([make_condition(active=False)])
                assert await hook.outcomes(1) == ["delivered"]
            notifications = journal.notifications(raised.alarm.id)
    # one channel delivers in order: a duplicate of the first would precede the second
    assert [r.json() for r in receiver.requests] == [
        raised.model_dump(mode="json"),
        cleared.model_dump(mode="json"),
    ]
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [
        f"{raised.alarm.id}:1",
        f"{raised.alarm.id}:2",
    ]
    assert [(n["status"], n["attempts"]) for n in notifications] == [("delivered", 1)] * 2
    assert seen == [raised, cleared]
    assert sent(metrics, "hook", "delivered") == 2
    assert sent(metrics, "hook", "failed") == 0
    assert metrics.value("hazwatch_alarm_events_total", {"kind": "raised"}) == 1
    assert metrics.value("hazwatch_alarm_events_total", {"kind": "cleared"}) == 1
    assert metrics.value("hazwatch_alarms_active") == 1  # cleared but unacknowledged


async def test_a_failing_receiver_gets_the_event_again_until_it_takes_it(
    tmp_path: Path, http: httpx.AsyncClient, make_condition: MakeCondition
) -> None:
    metrics = Metrics()
    async with ScriptedReceiver(statuses=(500, 500)) as receiver:
        hook = Observed(WebhookNotifier(receiver.url(), http, name="hook", guard=LOOPBACK))
        with Journal(tmp_path / "journal.db", ["hook"]) as journal:
            service = AlarmService(journal, [hook], metrics, SystemClock(), backoff=FAST)
            hook.service = service
            async with outbox_running(service):
                [raised] = service.handle([make_condition()])
                assert await hook.outcomes(3) == ["failed", "failed", "delivered"]
            [notification] = journal.notifications(raised.alarm.id)
            assert journal.pending_count() == 0
    assert [r.status for r in receiver.requests] == [500, 500, 204]
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {f"{raised.alarm.id}:1"}
    assert {r.body for r in receiver.requests} == {raised.model_dump_json().encode()}
    first, second, third = (r.at for r in receiver.requests)
    assert second - first >= 0.009  # backoff: at least half of 20 ms (clock ms granularity)
    assert third - second >= 0.019  # then at least half of 40 ms
    assert notification["status"] == "delivered"
    assert notification["attempts"] == 3
    assert "answered 500" in notification["last_error"]
    assert sent(metrics, "hook", "failed") == 2
    assert sent(metrics, "hook", "delivered") == 1


async def test_rows_left_by_a_stopped_service_are_delivered_after_a_restart(
    tmp_path: Path, http: httpx.AsyncClient, make_condition: MakeCondition
) -> None:
    path = tmp_path / "journal.db"
    with Journal(path, ["hook"]) as journal:
        # the outbox never ran (say the process was killed right after the commit)
        dead_end = WebhookNotifier("http://127.0.0.1:9/", http, "hook", guard=LOOPBACK)
        stopped = AlarmService(journal, [dead_end], Metrics(), SystemClock())
        [raised] = stopped.handle([make_condition()])
    async with (
        ScriptedReceiver() as receiver,
        restarted_with_one_delivery(path, http, receiver) as (_, _, metrics),
    ):
        assert metrics.value("hazwatch_alarms_active") == 1
    assert [r.json() for r in receiver.requests] == [raised.model_dump(mode="json")]


@contextlib.asynccontextmanager
async def restarted_with_one_delivery(
    path: Path, http: httpx.AsyncClient, receiver: ScriptedReceiver
) -> AsyncIterator[tuple[Journal, AlarmService, Metrics]]:
    """The service started again on the journal at ``path`` with one channel, ``hook``
    (a webhook to ``receiver``), once its outbox delivered one row."""
    hook = Observed(WebhookNotifier(receiver.url(), http, name="hook", guard=LOOPBACK))
    with Journal(path, ["hook"]) as journal:
        metrics = Metrics()
        service = AlarmService(journal, [hook], metrics, SystemClock())
        hook.service = service
        async with outbox_running(service):
            assert await hook.outcomes(1) == ["delivered"]
        yield journal, service, metrics


async def test_rows_of_a_channel_taken_out_of_the_configuration_are_dead_lettered(
    tmp_path: Path, http: httpx.AsyncClient, make_condition: MakeCondition
) -> None:
    """A channel removed from the configuration (a webhook, the historian feed after a
    switch to SQLite) leaves its rows pending: nobody delivers them, and they counted
    as pending for ever. The outbox dead-letters them when it starts, and says so."""
    path = tmp_path / "journal.db"
    with Journal(path, ["hook", "historian"]) as journal:
        stopped = AlarmService(
            journal,
            [
                WebhookNotifier("http://127.0.0.1:9/", http, name, guard=LOOPBACK)
                for name in ("hook", "historian")
            ],
            Metrics(),
            SystemClock(),
        )
        stopped.handle([make_condition()])
        assert journal.pending_count() == 2
    async with (
        ScriptedReceiver() as receiver,
        restarted_with_one_delivery(path, http, receiver) as (journal, service, metrics),
    ):
        assert journal.pending(2**62, channel="historian") == []
        [dead] = journal.dead_letters()
        assert (dead["channel"], dead["last_error"]) == (
            "historian",
            "the channel is no longer configured",
        )
        assert metrics.value("hazwatch_notifications_dead_total", {"channel": "historian"}) == 1
        [announced] = [a for a in journal.list_alarms() if a.tag == DEAD_TAG]
        assert "on historian: the channel is no longer configured" in announced.message
        assert not service.revive(dead["id"])  # nothing could deliver it


class FlakyNotifier:
    """A notifier with a bug on its first call (not a NotifierError)."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0
        self.delivered: list[AlarmEvent] = []
        self.done = asyncio.Event()

    async def send(self, notice: Notice) -> None:
        event = notice.event
        self.calls += 1
        if self.calls == 1:
            raise KeyError("bug")
        self.delivered.append(event)
        self.done.set()


async def test_a_notifier_bug_does_not_stop_the_outbox(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    notifier = FlakyNotifier()
    with Journal(tmp_path / "journal.db", ["flaky"]) as journal:
        service = AlarmService(journal, [notifier], Metrics(), SystemClock(), backoff=FAST)
        async with outbox_running(service):
            [raised] = service.handle([make_condition()])
            async with asyncio.timeout(10):
                await notifier.done.wait()
            await service.settled()  # the delivery is recorded in the journal's thread
        [notification] = journal.notifications(raised.alarm.id)
    assert notifier.delivered == [raised]
    assert notification["attempts"] == 2
    assert "KeyError in notifier flaky" in notification["last_error"]


async def test_acknowledge_and_the_console_callback(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    seen: list[str] = []

    def on_event(event: AlarmEvent) -> None:
        seen.append(event.kind)
        raise RuntimeError("a broken console feed")

    metrics = Metrics()
    with Journal(tmp_path / "journal.db", []) as journal:
        service = AlarmService(journal, [], metrics, SystemClock(), on_event=on_event)
        [raised] = service.handle([make_condition(), make_condition()])  # repeat: one event
        acked = service.acknowledge(raised.alarm.id, "on it", user="op1")
        assert service.handle([make_condition(active=False)])[0].alarm.state == "cleared"
        assert journal.transitions(raised.alarm.id)[1]["user"] == "op1"
    assert acked.alarm.state == "active_ack"
    assert seen == ["raised", "acknowledged", "cleared"]
    assert metrics.value("hazwatch_alarm_events_total", {"kind": "acknowledged"}) == 1
    assert metrics.value("hazwatch_alarms_active") == 0


async def test_notifiers_must_match_the_journals_channels(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    with Journal(tmp_path / "journal.db", ["hook", "mqtt"]) as journal:
        hook = WebhookNotifier("http://127.0.0.1:9/", http, name="hook", guard=LOOPBACK)
        with pytest.raises(ValueError, match="do not match"):
            AlarmService(journal, [hook], Metrics(), SystemClock())


def test_backoff_grows_jittered_up_to_its_cap() -> None:
    backoff = Backoff(initial_ms=1_000, max_ms=300_000)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1_000), (2, 2_000), (3, 4_000), (9, 256_000), (10, 300_000)]:
        delays = {backoff.delay_ms(attempt, rng) for _ in range(200)}
        assert ceiling / 2 <= min(delays)
        assert max(delays) < ceiling
        assert len(delays) > 100  # jittered, not one fixed value
    assert backoff.delay_ms(10_000, rng) < 300_000
    with pytest.raises(ValueError, match="initial_ms"):
        Backoff(initial_ms=0)


class SwallowsCancellation:
    """A notifier that, like ``asyncio.wait_for`` on Python 3.11 when the awaited
    future completes together with the cancellation, returns instead of raising."""

    name = "mqtt"

    def __init__(self) -> None:
        self.sending = asyncio.Event()

    async def send(self, notice: Notice) -> None:
        self.sending.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()  # the first cancellation is lost here


async def test_outbox_stops_when_a_notifier_swallows_the_cancellation(
    tmp_path: Path, make_condition: MakeCondition
) -> None:
    notifier = SwallowsCancellation()
    with Journal(tmp_path / "journal.db", [notifier.name]) as journal:
        service = AlarmService(journal, [notifier], Metrics(), SystemClock(), backoff=FAST)
        task = asyncio.create_task(service.run_outbox())
        service.handle([make_condition()])
        await notifier.sending.wait()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:  # without the guard the outbox waits for new rows for ever
            for stuck in asyncio.all_tasks():
                if stuck.get_name() == f"outbox-{notifier.name}":
                    stuck.cancel()  # the TaskGroup does not cancel a child twice
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert done == {task}
        assert task.cancelled()
