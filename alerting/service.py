"""The alarm service: conditions in, journaled alarm events out, notifications delivered.

``handle(conditions)`` runs the lifecycle through the journal (one transaction per
event: alarm, transition, outbox rows), counts, tells the console (``on_event``) and
wakes the outbox. ``run_outbox()`` delivers what the journal holds, at least once:

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
import random
from collections.abc import Callable, Iterable, Sequence

import structlog

from alerting.journal import Journal
from alerting.notifiers import Notifier
from alerting.outbox import OutboxItem
from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.errors import NotifierError
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent, Condition

log = structlog.get_logger(__name__)


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
        self._clock = clock
        self._on_event = on_event
        self._backoff = backoff or Backoff()
        self._batch_size = batch_size
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._wakes = {name: asyncio.Event() for name in names}

    # --- alarm lifecycle ---------------------------------------------------------------

    def handle(self, conditions: Iterable[Condition]) -> list[AlarmEvent]:
        """Record the detectors' condition changes; return the alarm events they caused."""
        now_ms = self._clock.now_ms()
        events: list[AlarmEvent] = []
        try:
            for condition in conditions:
                event = self.journal.apply(condition, now_ms)
                if event is not None:
                    events.append(event)
        finally:  # what was committed before a failure is still announced and delivered
            if events:
                self._after(events)
        return events

    def acknowledge(self, alarm_id: str, comment: str, user: str = "operator") -> AlarmEvent:
        """Acknowledge an alarm. Raises ``AlarmNotFound``, or ``JournalError`` (409)."""
        event = self.journal.acknowledge(alarm_id, comment, self._clock.now_ms(), user)
        self._after([event])
        return event

    def _after(self, events: list[AlarmEvent]) -> None:
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
        self._metrics.alarms_active.set(self.journal.open_count())
        self._metrics.outbox_pending.set(self.journal.pending_count())
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
            items = self.journal.pending(
                self._clock.now_ms(), self._batch_size, channel=notifier.name
            )
            for item in items:
                await self._deliver(notifier, item)
                _raise_lost_cancellation()
            self._metrics.outbox_pending.set(self.journal.pending_count())
            if len(items) == self._batch_size:
                continue  # more may be due
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
            self.journal.failed(item.id, error, self._clock.now_ms() + delay_ms)
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
        self.journal.delivered(item.id, self._clock.now_ms())
        self._metrics.notifications.labels(channel=notifier.name, result="delivered").inc()
        log.debug(
            "notification_delivered",
            channel=notifier.name,
            alarm_id=item.event.alarm.id,
            seq=item.event.seq,
            attempt=item.attempts + 1,
        )


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
