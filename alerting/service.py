"""The alarm service: conditions in, journaled alarm events out, notifications delivered.

``handle(conditions)`` runs the lifecycle through the journal (one transaction for
the conditions handed over together: each event's alarm, transition and outbox rows
are in it, one fsync for all), counts, tells the console (``on_event``) and
wakes the outbox. ``submit(conditions)`` does the same without holding the event loop:
the journal's commits (an fsync each, ``synchronous=FULL``) run in the service's one
journal thread, in the order they were submitted, and what follows a commit (counts,
console, outbox wake-up) comes back to the loop in that order. The live service
submits; the backtest and the tests call ``handle``. ``run_outbox()`` delivers what
the journal holds, at least once (``alerting/dispatch.py``), and ``run_followup()``
runs the journal's timers — escalation, reminders, overdue feedback, shelves,
suppressions (``alerting/followup.py``) — their journal writes in that thread too.

The operators' and the enterprise's actions — acknowledge, shelve, feedback, verify,
suppress — are methods here, each one journal transaction whose event goes out like
every other.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import structlog

from alerting.dispatch import Dispatcher
from alerting.followup import FollowUp
from alerting.journal import Journal
from alerting.messages import MessageBuilder
from alerting.notifiers import Notifier
from alerting.suppressions import Suppression
from hazwatch.alertpolicy import FloodSettings
from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.errors import JournalUnavailable
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
    channel name). ``people``: the channels that reach people, with the ``builder`` of
    their messages and their ``flood`` control (``alerting/dispatch.py``).
    ``backoff``, ``batch_size`` and ``rng`` exist for tests and tuning.
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
        people: Sequence[str] = (),
        builder: MessageBuilder | None = None,
        flood: FloodSettings | None = None,
        max_attempts: int | None = None,
        channel_alarm_s: float = 120,
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
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-journal")
        self._held: list[Condition] = []
        """Conditions the journal could not write (first: the journal_failing alarm)."""
        self._retry_wake = asyncio.Event()
        self._submitted = 0
        """Submissions made (:meth:`submit`), numbered from 1."""
        self._recorded = 0
        """Every submission up to this number is in the journal (or refused for good)."""
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        """:meth:`recorded` futures, each with the submission it waits for, in order."""
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._committed_ms: dict[tuple[str, int | None], int] = {}
        """(alarm id, seq) → when its journal commit returned: the latency metric's stages."""
        directory = getattr(journal.policy, "directory", None)
        self.dispatcher = Dispatcher(
            journal,
            notifiers,
            metrics,
            clock,
            self._thread,
            people=people,
            builder=builder,
            directory=directory,
            flood=flood,
            backoff=backoff,
            rng=rng,
            batch_size=batch_size,
            max_attempts=max_attempts,
            channel_alarm_s=channel_alarm_s,
            on_system=self.submit,
            committed_ms=self._committed_ms,
        )
        self.followup = FollowUp(journal, clock, metrics, self._thread, self._followed_up)

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
        self._submitted += 1
        number = self._submitted
        result: asyncio.Future[list[AlarmEvent]] = loop.create_future()

        def announce(done: asyncio.Future[_Applied]) -> None:
            events, error, open_count, pending_count = done.result()
            if events:
                self._after(events, open_count, pending_count)
            if isinstance(error, JournalUnavailable):
                self._retry_wake.set()  # held: retry_held tries them again
            else:  # recorded: with it, everything held before it (one transaction)
                if error is not None:
                    log.error("alarm_journal_failed", conditions=len(conditions), error=repr(error))
                self._recorded_up_to(number)
            if not result.cancelled():
                result.set_result(events)

        applied.add_done_callback(announce)
        return result

    def recorded(self) -> asyncio.Future[None]:
        """A future that is done once every condition submitted so far is committed in
        the journal — or refused for good (counted in ``conditions_unrecorded``). While
        the journal cannot write, held conditions are not recorded: it waits until
        :meth:`retry_held` commits them. Ingest moves its spool's ``delivered`` cursor
        past a batch only then, so a crash before the commit replays the readings to
        the detectors and no alarm is lost (docs/alerting.md, "No alarm lost on a crash").
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._recorded >= self._submitted:
            done.set_result(None)
        else:
            self._waiting.append((self._submitted, done))
        return done

    def _recorded_up_to(self, number: int) -> None:
        self._recorded = max(self._recorded, number)
        while self._waiting and self._waiting[0][0] <= self._recorded:
            _, done = self._waiting.popleft()
            if not done.done():
                done.set_result(None)

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
        return self._announce(event)

    def shelve(
        self, alarm_id: str, minutes: float, reason: str, user: str = "operator"
    ) -> AlarmEvent:
        """Shelve an alarm for ``minutes`` (the caller checks the maximum). Raises
        ``AlarmNotFound``, or ``StepRefused`` naming the state (409)."""
        now_ms = self._clock.now_ms()
        until_ms = now_ms + round(minutes * 60_000)
        return self._announce(self.journal.shelve(alarm_id, until_ms, reason, now_ms, user))

    def unshelve(self, alarm_id: str, user: str = "operator", comment: str = "") -> AlarmEvent:
        now_ms = self._clock.now_ms()
        return self._announce(self.journal.unshelve(alarm_id, now_ms, user, comment))

    def feedback(
        self, alarm_id: str, cause: str, measures: str, user: str = "enterprise"
    ) -> AlarmEvent:
        """The enterprise's disposal feedback. Raises ``AlarmNotFound`` or ``StepRefused``."""
        now_ms = self._clock.now_ms()
        return self._announce(self.journal.feedback(alarm_id, cause, measures, now_ms, user))

    def verify(
        self, alarm_id: str, accepted: bool, comment: str, user: str = "operator"
    ) -> AlarmEvent:
        """Verify the feedback: accepted closes the alarm. Raises like :meth:`feedback`."""
        now_ms = self._clock.now_ms()
        return self._announce(self.journal.verify(alarm_id, accepted, comment, now_ms, user))

    def suppress(
        self,
        *,
        enterprise: str,
        installation: str,
        tag: str,
        reason: str,
        end_ms: int,
        user: str = "operator",
    ) -> Suppression:
        found = self.journal.suppress(
            enterprise=enterprise,
            installation=installation,
            tag=tag,
            reason=reason,
            end_ms=end_ms,
            now_ms=self._clock.now_ms(),
            user=user,
        )
        self.followup.wake()  # its end is a timer
        return found

    def end_suppression(self, suppression_id: int, user: str = "operator") -> list[AlarmEvent]:
        """End a suppression now. Raises ``KeyError`` for an unknown or ended one."""
        events = self.journal.end_suppression(suppression_id, self._clock.now_ms(), user)
        if events:
            self._after(events, self.journal.open_count(), self.journal.pending_count())
        return events

    def revive(self, item_id: int) -> bool:
        """Queue a dead notification again."""
        revived = self.journal.revive(item_id, self._clock.now_ms(), self.dispatcher.channels)
        if revived:
            self.dispatcher.wake()
        return revived

    def _announce(self, event: AlarmEvent) -> AlarmEvent:
        self._after([event], self.journal.open_count(), self.journal.pending_count())
        return event

    def _followed_up(self, events: list[AlarmEvent], reminders: int) -> None:
        if events:
            self._after(events, self.journal.open_count(), self.journal.pending_count())
        elif reminders:
            self.dispatcher.wake()

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
        self.dispatcher.wake()
        self.followup.wake()
        if self._on_event is not None:
            for event in events:
                try:
                    self._on_event(event)
                except Exception as exc:  # the console's feed must not stop alarm handling
                    log.warning("alarm_event_callback_failed", error=repr(exc))

    # --- outbox and timers -------------------------------------------------------------

    async def run_outbox(self) -> None:
        """Deliver the outbox until cancelled: one loop per notifier channel."""
        self._metrics.outbox_pending.set(self.journal.pending_count())
        self._metrics.alarms_active.set(self.journal.open_count())
        await self.dispatcher.run()

    async def run_followup(self) -> None:
        """Run the journal's timers (escalation, reminders, shelves...) until cancelled."""
        await self.followup.run()


_Applied = tuple[list[AlarmEvent], Exception | None, int, int]
"""What a submission did in the journal's thread: events, failure, open alarms, pending rows."""
