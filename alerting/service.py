"""The alarm service: conditions in, journaled alarm events out, notifications delivered.

``handle(conditions)`` runs the lifecycle through the journal (one transaction for
the conditions handed over together: each event's alarm, transition and outbox rows
are in it, one fsync for all), counts, tells the console (``on_event``) and
wakes the outbox. ``submit(conditions)`` does the same without holding the event loop:
the journal's commits (an fsync each, ``synchronous=FULL``) run in the service's one
journal thread, in the order they were submitted, and what follows a commit (counts,
console, outbox wake-up) comes back to the loop in that order. The live service
submits; the backtest and the tests call ``handle``. ``run_outbox()`` delivers what
the journal holds, at least once, its journal writes in that thread too (its reads
use the journal's read connection, which never waits for a commit):

- one loop per channel (a named task in one TaskGroup), so a slow or dead receiver
  delays only its own notifications;
- rows in the order they were written; a failed row is retried after a jittered
  exponential backoff (1 s, 2 s, 4 s ... 5 min by default), for ever — the row stays
  in the journal and in ``outbox_pending`` until it is delivered;
- it sleeps until woken by new rows or until the next retry is due — no polling.

Ordering is best effort: a retried row may arrive after later ones of its channel.
Receivers order and deduplicate by ``alarm.id`` + ``seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import structlog

from alerting.journal import Journal
from alerting.notifiers import Notifier
from alerting.outbox import OutboxItem
from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.errors import JournalUnavailable, NotifierError
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent, Condition, system_condition

log = structlog.get_logger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")
JOURNAL_FAILING_TAG = "journal_failing"
HELD_MAX = 100_000
"""Conditions held while the journal cannot write (ingest stops being acknowledged
then, so only the batches already in flight add to them)."""
HELD_RETRY = Backoff(initial_ms=500, max_ms=10_000)
COMMITTED_KEPT = 10_000
"""Commit times of events not yet delivered, kept for the latency metric (bounded)."""


class AlarmService:
    """Alerting's front: the wiring, the detectors' output and the console talk to this.

    ``notifiers`` must match ``journal.channels`` (the journal writes one outbox row per
    channel name). ``backoff``, ``batch_size`` and ``rng`` exist for tests and tuning.
    """

    def __init__(
        self,
        journal: Journal,
        notifiers: Sequence[Notifier],
        metrics: Metrics,
        clock: Clock,
        on_event: Callable[[AlarmEvent], None] | None = None,
        *,
        backoff: Backoff | None = None,
        batch_size: int = 100,
        rng: random.Random | None = None,
    ) -> None:
        names = [n.name for n in notifiers]
        if sorted(names) != sorted(journal.channels):
            raise ValueError(
                f"notifiers {names} do not match the journal's channels {list(journal.channels)}"
            )
        self.journal = journal
        self._notifiers = tuple(notifiers)
        self._metrics = metrics
        self.journal_ok = True
        """False while the last journal write failed (``/healthz`` reports it)."""
        self._clock = clock
        self._on_event = on_event
        self._backoff = backoff or Backoff()
        self._batch_size = batch_size
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._wakes = {name: asyncio.Event() for name in names}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-journal")
        self._marking: set[int] = set()
        """Outbox rows delivered whose ``delivered`` mark is not yet committed."""
        self._held: list[Condition] = []
        """Conditions the journal could not write (first: the journal_failing alarm)."""
        self._retry_wake = asyncio.Event()
        self._committed_ms: dict[tuple[str, int | None], int] = {}
        """(alarm id, seq) → when its journal commit returned: the latency metric's stages."""

    def close(self) -> None:
        """Finish what was submitted (the journal must still be open), stop the thread."""
        self._thread.shutdown(wait=True)

    # --- alarm lifecycle ---------------------------------------------------------------

    def handle(self, conditions: Iterable[Condition]) -> list[AlarmEvent]:
        """Record the detectors' condition changes; return the alarm events they caused.

        Synchronous, on the caller's thread: the backtest, the tests. The live service
        uses :meth:`submit`."""
        conditions = list(conditions)
        self._observe_detected(conditions, self._clock.now_ms())
        events, error = self._apply(conditions, self._clock.now_ms())
        if events:  # what was committed before a failure is still announced and delivered
            self._after(events, self.journal.open_count(), self.journal.pending_count())
        if error is not None:
            raise error
        return events

    def submit(self, conditions: Iterable[Condition]) -> asyncio.Future[list[AlarmEvent]]:
        """Record the conditions in the journal's thread; the loop goes on meanwhile.

        Submissions are committed in the order they were made (one thread), and their
        events announced on the loop in that order. The future's result is the events;
        a failure is logged here (and the events committed before it still announced).
        """
        conditions = list(conditions)
        now_ms = self._clock.now_ms()
        self._observe_detected(conditions, now_ms)
        loop = asyncio.get_running_loop()
        applied = loop.run_in_executor(self._thread, self._apply_counted, conditions, now_ms)
        result: asyncio.Future[list[AlarmEvent]] = loop.create_future()

        def announce(done: asyncio.Future[_Applied]) -> None:
            events, error, open_count, pending_count = done.result()
            if events:
                self._after(events, open_count, pending_count)
            if isinstance(error, JournalUnavailable):
                self._retry_wake.set()  # held: retry_held tries them again
            elif error is not None:
                log.error("alarm_journal_failed", conditions=len(conditions), error=repr(error))
            if not result.cancelled():
                result.set_result(events)

        applied.add_done_callback(announce)
        return result

    async def _in_journal(self, call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """A journal call in the journal's thread (behind any commit submitted before)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: call(*args, **kwargs))

    def _apply(
        self, conditions: list[Condition], now_ms: int
    ) -> tuple[list[AlarmEvent], Exception | None]:
        """One journal transaction for all of them (one fsync); the events, and the
        first failure (a refused condition leaves the others recorded).

        A journal that cannot write (``JournalUnavailable``: disk full, I/O) refuses
        nothing for good: the conditions are held, in order, and go first into the
        next transaction — the next submission or :meth:`retry_held` — together with
        the ``journal_failing`` SYSTEM alarm, raised and cleared (it could not be
        written while it was true). Held conditions are bounded (``HELD_MAX``; past it
        the oldest are counted in ``conditions_unrecorded``)."""
        events: list[AlarmEvent] = []
        error: Exception | None = None
        unrecorded = 0
        pending = [*self._held, *conditions]
        if self._held:
            pending.append(self._journal_condition(active=False, now_ms=now_ms))
        try:
            if pending:
                events, refused = self.journal.apply_all(pending, now_ms)
                for exc in refused:
                    log.error("alarm_condition_refused", error=str(exc))
                error = refused[0] if refused else None
                unrecorded = len(refused)
            if self._held:
                log.info("alarm_journal_writes_again", recorded=len(self._held))
                self._held = []
        except JournalUnavailable as exc:  # nothing recorded: hold the conditions, retry
            error = exc
            if not self._held:
                log.error("alarm_journal_unavailable", error=str(exc))  # noqa: TRY400 - no bug
                self._held = [self._journal_condition(active=True, now_ms=now_ms, error=exc)]
            self._held += conditions
            if len(self._held) > HELD_MAX:
                unrecorded = len(self._held) - HELD_MAX
                del self._held[1 : 1 + unrecorded]  # the oldest, not the alarm itself
        except Exception as exc:  # the transaction failed: nothing of it was recorded
            error = exc
            unrecorded = len(conditions)
        if unrecorded:  # alarms nobody will see: counted, and /healthz says so
            self._metrics.conditions_unrecorded.inc(unrecorded)
        self.journal_ok = error is None
        committed_ms = self._clock.now_ms()
        if len(self._committed_ms) >= COMMITTED_KEPT:
            self._committed_ms.clear()
        journal_stage = self._metrics.alarm_stage.labels("journal")
        for event in events:
            self._committed_ms[event.alarm.id, event.seq] = committed_ms
            if event.kind == "raised":
                journal_stage.observe(max(0, committed_ms - now_ms) / 1000)
        return events, error

    def _journal_condition(
        self, *, active: bool, now_ms: int, error: Exception | None = None
    ) -> Condition:
        message = (
            f"the alarm journal cannot write ({error}): alarms are held in memory and "
            "ingest is not acknowledged until it writes again"
            if active
            else "the alarm journal writes again; the alarms held meanwhile are recorded"
        )
        return system_condition(
            JOURNAL_FAILING_TAG,
            active=active,
            ts_ms=now_ms,
            message=message,
            value=float(len(self._held)),
            limit=None,
        )

    @property
    def holding(self) -> bool:
        """Conditions are held: the journal could not write them (yet)."""
        return bool(self._held)

    async def retry_held(self) -> None:
        """Until cancelled: while conditions are held (the journal could not write),
        try them again after a jittered backoff (0.5 s doubling to 10 s)."""
        failures = 0
        while True:
            await self._retry_wake.wait()
            self._retry_wake.clear()
            while self.holding:
                failures += 1
                await asyncio.sleep(HELD_RETRY.delay_s(failures, self._rng))
                await self.submit([])
            failures = 0

    def _mark_delivered(self, channel: str, item_id: int, now_ms: int) -> None:
        """Record a delivery in the journal's thread without waiting for its commit:
        the channel goes on with its next row at once. Until the commit is done the row
        is skipped (``_marking``); if it never commits (a crash), the row is sent again
        — at least once, receivers deduplicate by alarm id and seq."""
        self._marking.add(item_id)
        loop = asyncio.get_running_loop()
        marked = loop.run_in_executor(self._thread, self._delivered, item_id, now_ms)

        def done(future: asyncio.Future[int]) -> None:
            self._marking.discard(item_id)
            self._wakes[channel].set()
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                log.error("outbox_mark_delivered_failed", item=item_id, error=repr(error))
            else:
                self._metrics.outbox_pending.set(future.result())

        marked.add_done_callback(done)

    def _delivered(self, item_id: int, now_ms: int) -> int:
        """Mark the row delivered; the rows still pending (journal thread)."""
        self.journal.delivered(item_id, now_ms)
        return self.journal.pending_count()

    async def settled(self) -> None:
        """Return once every journal call submitted before this one is done (tests,
        and anyone who must read what was just submitted)."""
        await self._in_journal(lambda: None)

    def _apply_counted(self, conditions: list[Condition], now_ms: int) -> _Applied:
        """``_apply`` plus the gauges' counts, all in the journal's thread."""
        events, error = self._apply(conditions, now_ms)
        if isinstance(error, JournalUnavailable):
            return events, error, 0, 0  # reading the counts may fail the same way
        return events, error, self.journal.open_count(), self.journal.pending_count()

    def _observe_detected(self, conditions: list[Condition], now_ms: int) -> None:
        """Reading time → handed to alerting, for conditions that raise an alarm."""
        stage = self._metrics.alarm_stage.labels("to_alerting")
        for condition in conditions:
            if condition.active:
                stage.observe(max(0, now_ms - condition.ts_ms) / 1000)

    def acknowledge(self, alarm_id: str, comment: str, user: str = "operator") -> AlarmEvent:
        """Acknowledge an alarm. Raises ``AlarmNotFound``, or ``JournalError`` (409)."""
        event = self.journal.acknowledge(alarm_id, comment, self._clock.now_ms(), user)
        self._after([event], self.journal.open_count(), self.journal.pending_count())
        return event

    def _after(self, events: list[AlarmEvent], open_count: int, pending_count: int) -> None:
        for event in events:
            self._metrics.alarm_events.labels(kind=event.kind).inc()
            alarm = event.alarm
            log.info(
                "alarm_event",
                kind=event.kind,
                alarm_id=alarm.id,
                seq=event.seq,
                enterprise=alarm.enterprise,
                tag=alarm.tag,
                type=alarm.type.value,
                state=alarm.state.value,
            )
        self._metrics.alarms_active.set(open_count)
        self._metrics.outbox_pending.set(pending_count)
        for wake in self._wakes.values():
            wake.set()
        if self._on_event is not None:
            for event in events:
                try:
                    self._on_event(event)
                except Exception as exc:  # the console's feed must not stop alarm handling
                    log.warning("alarm_event_callback_failed", error=repr(exc))

    # --- outbox ------------------------------------------------------------------------

    async def run_outbox(self) -> None:
        """Deliver the outbox until cancelled: one loop per notifier channel."""
        self._metrics.outbox_pending.set(self.journal.pending_count())
        self._metrics.alarms_active.set(self.journal.open_count())
        if not self._notifiers:
            await asyncio.Event().wait()  # nothing to deliver to, ever
        async with asyncio.TaskGroup() as tg:
            for notifier in self._notifiers:
                tg.create_task(self._run_channel(notifier), name=f"outbox-{notifier.name}")

    async def _run_channel(self, notifier: Notifier) -> None:
        wake = self._wakes[notifier.name]
        while True:
            wake.clear()  # before reading: rows written from here on wake us again
            # reads on the loop: the journal's read connection never waits for a commit
            due = self.journal.pending(self._clock.now_ms(), self._batch_size, notifier.name)
            items = [item for item in due if item.id not in self._marking]
            for item in items:
                await self._deliver(notifier, item)
                _raise_lost_cancellation()
            if len(due) == self._batch_size and items:
                continue  # more may be due
            if len(items) < len(due):
                await wake.wait()  # deliveries still being recorded wake us when they are
                continue
            due_ms = self.journal.next_due_ms(notifier.name)
            if due_ms is None:
                await wake.wait()
                continue
            delay_s = (due_ms - self._clock.now_ms()) / 1000
            if delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await wake.wait()

    async def _deliver(self, notifier: Notifier, item: OutboxItem) -> None:
        try:
            await notifier.send(item.event)
        except Exception as exc:  # a notifier bug must not stop delivery: retry it too
            if isinstance(exc, NotifierError):
                error = str(exc)
            else:
                error = f"{type(exc).__name__} in notifier {notifier.name}: {exc}"
            attempt = item.attempts + 1
            delay_ms = self._backoff.delay_ms(attempt, self._rng)
            await self._in_journal(
                self.journal.failed, item.id, error, self._clock.now_ms() + delay_ms
            )
            self._metrics.notifications.labels(channel=notifier.name, result="failed").inc()
            log.warning(
                "notification_failed",
                channel=notifier.name,
                alarm_id=item.event.alarm.id,
                seq=item.event.seq,
                attempt=attempt,
                retry_in_ms=delay_ms,
                error=error,
            )
            return
        published_ms = self._clock.now_ms()
        self._observe_published(notifier.name, item, published_ms)
        self._mark_delivered(notifier.name, item.id, published_ms)
        self._metrics.notifications.labels(channel=notifier.name, result="delivered").inc()
        log.debug(
            "notification_delivered",
            channel=notifier.name,
            alarm_id=item.event.alarm.id,
            seq=item.event.seq,
            attempt=item.attempts + 1,
        )

    def _observe_published(self, channel: str, item: OutboxItem, published_ms: int) -> None:
        """Reading time → published, and journal commit → published, for raised alarms
        on their first attempt (a retry measures the receiver's outage, not the path)."""
        committed_ms = self._committed_ms.pop((item.event.alarm.id, item.event.seq), None)
        if item.attempts or item.event.kind != "raised":
            return
        raised = dt.datetime.fromisoformat(item.event.alarm.raised_at)
        raised_ms = round(raised.timestamp() * 1000)
        self._metrics.alarm_latency.labels(channel).observe(max(0, published_ms - raised_ms) / 1000)
        if committed_ms is not None:
            self._metrics.alarm_stage.labels("journal_to_published").observe(
                max(0, published_ms - committed_ms) / 1000
            )


_Applied = tuple[list[AlarmEvent], Exception | None, int, int]
"""What a submission did in the journal's thread: events, failure, open alarms, pending rows."""


def _raise_lost_cancellation() -> None:
    """Re-raise a cancellation that a notifier swallowed.

    Python 3.11's ``asyncio.wait_for`` (used inside aiomqtt's publish) returns the
    result instead of raising when the task is cancelled just as the awaited future
    completes (CPython gh-86296, fixed in 3.12). The outbox loop would then wait for
    new rows for ever and the service could never stop. The request is still
    counted by ``Task.cancelling()``, so it can be honoured here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
