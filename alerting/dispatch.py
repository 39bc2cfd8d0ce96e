"""Delivering the outbox: one loop per channel, at least once, flood-controlled, bounded.

- Two loops per notifier channel (named tasks in one TaskGroup), so a slow or dead
  receiver delays only its own notifications: one for critical rows, which never wait
  behind a digest, a flood-control hold or a burst of lesser rows, and one for the
  rest, by priority, oldest due first. Each sleeps until woken by new rows or until its
  next row is due — no polling.
- Feeds (webhooks, the MQTT alarm topic) get every row one by one. Channels for people
  go through :class:`~alerting.flood.FloodGate`: some rows are held for a digest.
- A failed row is retried after a jittered exponential backoff (1 s, 2 s, 4 s ... 5
  min); after ``max_attempts`` failures, or at once when the receiver refused it for
  good (``NotifierError.permanent``: a 4xx, a refused SMTP recipient, an SSRF refusal),
  it is **dead**: kept, counted (``hazwatch_notifications_dead_total``), listed at
  ``GET /api/notifications/dead``, and announced by the ``notifications_dead`` SYSTEM
  alarm (raised and cleared at once: it waits for an operator's acknowledgement).
- A channel failing for ``channel_alarm_s`` raises the SYSTEM alarm ``channel:<name>``,
  which routing sends through the *other* channels; it clears with the next delivery.

The journal writes (delivered, failed, held) run in the alarm service's journal thread;
the reads use the journal's read connection, which never waits for a commit. Ordering
is best effort: receivers order and deduplicate by the notice's key.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import structlog

from alerting.flood import DIGEST_MAX, FloodGate, Row
from alerting.journal import Journal
from alerting.messages import MessageBuilder
from alerting.notifiers import Notice, Notifier
from alerting.outbox import RANKS, OutboxItem
from alerting.recipients import Directory
from hazwatch.alertpolicy import FloodSettings
from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.errors import NotifierError
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmType, Condition, iso_to_ms, system_condition

log = structlog.get_logger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

DEAD_TAG = "notifications_dead"
DIGEST_SHOWN = 10
"""Notifications listed in a digest message (the rest are counted)."""
ALL_RANKS = range(RANKS)
LANES: dict[str, Sequence[int]] = {"critical": (0,), "other": range(1, RANKS)}
"""Each channel's two delivery loops, by priority rank."""


class Dispatcher:
    """Delivers what the journal's outbox holds. ``people``: the channels that reach
    people (flood-controlled), with ``builder`` and ``directory`` to write their
    messages; every other channel is a feed."""

    def __init__(
        self,
        journal: Journal,
        notifiers: Sequence[Notifier],
        metrics: Metrics,
        clock: Clock,
        thread: ThreadPoolExecutor,
        *,
        people: Sequence[str] = (),
        builder: MessageBuilder | None = None,
        directory: Directory | None = None,
        flood: FloodSettings | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        batch_size: int = 100,
        max_attempts: int | None = None,
        channel_alarm_s: float = 120,
        on_system: Callable[[list[Condition]], object] | None = None,
        committed_ms: dict[tuple[str, int | None], int] | None = None,
    ) -> None:
        self.journal = journal
        self._notifiers = {n.name: n for n in notifiers}
        self._metrics = metrics
        self._clock = clock
        self._thread = thread
        self._people = frozenset(people)
        self._builder = builder
        self._directory = directory
        self._gates = {name: FloodGate(flood or FloodSettings()) for name in self._people}
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._channel_alarm_ms = round(channel_alarm_s * 1000)
        self._on_system = on_system
        self._committed_ms = committed_ms if committed_ms is not None else {}
        self.wakes = {(name, lane): asyncio.Event() for name in self._notifiers for lane in LANES}
        self._marking: set[int] = set()
        """Outbox rows delivered whose ``delivered`` mark is not yet committed."""
        self._failing_since: dict[str, int] = {}
        self._alarmed: set[str] = set()

    def wake(self) -> None:
        for event in self.wakes.values():
            event.set()

    async def _in_journal(self, call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: call(*args, **kwargs))

    # --- loops --------------------------------------------------------------------

    @property
    def channels(self) -> list[str]:
        """The channels configured (each has a notifier)."""
        return list(self._notifiers)

    async def run(self) -> None:
        """Deliver until cancelled: one loop per channel — after dead-lettering what
        waits for a channel that is no longer configured."""
        retired = await self._in_journal(self.journal.retire_channels, self.channels)
        for channel, rows in retired.items():
            log.warning("outbox_channel_retired", channel=channel, notifications=rows)
            self._metrics.notifications_dead.labels(channel).inc(rows)
            self._announce_dead(
                f"{rows} notification(s) dead-lettered on {channel}: the channel is no "
                "longer configured",
                rows,
            )
        if retired:
            self._metrics.outbox_pending.set(await self._in_journal(self.journal.pending_count))
        if not self._notifiers:
            await asyncio.Event().wait()  # nothing to deliver to, ever
        async with asyncio.TaskGroup() as tg:
            for notifier in self._notifiers.values():
                for lane in LANES:
                    tg.create_task(
                        self._run_channel(notifier, lane), name=f"outbox-{notifier.name}-{lane}"
                    )

    async def _run_channel(self, notifier: Notifier, lane: str) -> None:
        wake = self.wakes[notifier.name, lane]
        while True:
            wake.clear()  # before reading: rows written from here on wake us again
            due_ms = await self.step(notifier.name, LANES[lane])
            if due_ms is None:
                await wake.wait()
                continue
            delay_s = wall_s_until(self._clock, due_ms)
            if delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await wake.wait()

    async def step(self, channel: str, ranks: Sequence[int] = ALL_RANKS) -> int | None:
        """Deliver (or hold) what is due on ``channel`` now (rows of ``ranks``). Returns
        when to look again (now: more may be due), ``None`` to wait for new rows."""
        notifier = self._notifiers[channel]
        now_ms = self._clock.now_ms()
        due = self.journal.pending(now_ms, self._batch_size, channel, ranks)
        items = [item for item in due if item.id not in self._marking]
        if not items:
            return None if due else self.journal.next_due_ms(channel, ranks)
        if channel in self._people:
            messages = await self._plan(channel, items, now_ms)
        else:
            messages = [_Message([item]) for item in items]
        if tuple(ranks) == LANES["critical"]:  # each critical message at once, side by side
            await asyncio.gather(*(self._deliver(notifier, m) for m in messages))
            _raise_lost_cancellation()
            return now_ms
        for message in messages:
            await self._deliver(notifier, message)
            _raise_lost_cancellation()
        return now_ms

    async def _plan(self, channel: str, items: list[OutboxItem], now_ms: int) -> list[_Message]:
        by_id = {item.id: item for item in items}
        rows = [Row(i.id, i.recipient, i.enterprise, i.rank) for i in items]
        plan = self._gates[channel].plan(rows, now_ms)
        for until_ms, ids in plan.holds.items():
            await self._in_journal(self.journal.hold, ids, until_ms)
            self._metrics.notifications_held.labels(channel).inc(len(ids))
        messages = [_Message([by_id[row.id]]) for row in plan.singles]
        for recipient, enterprise in plan.digests:
            ids, shown = self.journal.pending_for(
                channel, recipient, enterprise, now_ms=now_ms, limit=DIGEST_MAX, shown=DIGEST_SHOWN
            )
            ids = [i for i in ids if i not in self._marking]
            shown = [i for i in shown if i.id not in self._marking]
            if shown:
                messages.append(_Message(shown, ids))
        return messages

    # --- one message -----------------------------------------------------------------

    def notice(self, channel: str, message: _Message) -> Notice:
        """The notice of one message: a feed's event, or a message for people."""
        items = message.items
        head = items[-1]
        if channel not in self._people:
            return Notice(event=head.event, key=head.idempotency_key)
        assert self._builder is not None
        assert self._directory is not None
        keys = head.mentions or ((head.recipient,) if head.recipient else ())
        people = tuple(p for p in map(self._directory.person, keys) if p is not None)
        if not message.digest:
            return Notice(
                event=head.event,
                key=head.idempotency_key,
                purpose=head.purpose,
                recipient=head.recipient,
                people=people,
                message=self._builder.event(head.event, head.purpose),
            )
        events = tuple(i.event for i in items)
        ids = message.ids
        return Notice(
            event=head.event,
            key=f"digest:{head.recipient}:{ids[0]}-{ids[-1]}",
            purpose="digest",
            recipient=head.recipient,
            people=people,
            message=self._builder.digest(events, len(ids)),
            events=events,
            count=len(ids),
        )

    async def _deliver(self, notifier: Notifier, message: _Message) -> None:
        channel = notifier.name
        items = message.items
        try:
            await notifier.send(self.notice(channel, message))
        except Exception as exc:  # a notifier bug must not stop delivery: retry it too
            await self._failed(channel, message, exc)
            return
        now_ms = self._clock.now_ms()
        if message.digest:
            self._metrics.notification_digests.labels(channel).inc()
        else:
            self._observe_published(channel, items[0], now_ms)
        self._mark_delivered(channel, message.ids, now_ms, digest=message.digest)
        self._metrics.notifications.labels(channel=channel, result="delivered").inc(
            len(message.ids)
        )
        self._channel_ok(channel)
        log.debug(
            "notification_delivered",
            channel=channel,
            alarm_id=items[-1].event.alarm.id,
            seq=items[-1].event.seq,
            rows=len(items),
        )

    async def _failed(self, channel: str, message: _Message, exc: Exception) -> None:
        items = message.items
        permanent = isinstance(exc, NotifierError) and exc.permanent
        if isinstance(exc, NotifierError):
            error = str(exc)
        else:
            error = f"{type(exc).__name__} in notifier {channel}: {exc}"
        attempt = min(i.attempts for i in items) + 1
        delay_ms = self._backoff.delay_ms(attempt, self._rng)
        retry_ms = self._clock.now_ms() + delay_ms

        dead_ids = await self._in_journal(
            self.journal.failed_all,
            message.ids,
            error,
            retry_ms,
            max_attempts=self._max_attempts,
            permanent=permanent,
        )
        dead = [item for item in items if item.id in dead_ids]
        if len(dead_ids) > len(dead):  # a digest's rows not read in full: count them too
            self._metrics.notifications_dead.labels(channel).inc(len(dead_ids) - len(dead))
        self._metrics.notifications.labels(channel=channel, result="failed").inc(len(message.ids))
        log.warning(
            "notification_failed",
            channel=channel,
            alarm_id=items[-1].event.alarm.id,
            seq=items[-1].event.seq,
            recipient=items[-1].recipient,
            attempt=attempt,
            retry_in_ms=None if dead else delay_ms,
            dead=len(dead),
            error=error,
        )
        if dead:
            self._dead(channel, dead, error)
        self._channel_failing(channel, error)

    def _dead(self, channel: str, dead: list[OutboxItem], error: str) -> None:
        self._metrics.notifications_dead.labels(channel).inc(len(dead))
        announce = [i for i in dead if i.event.alarm.type is not AlarmType.SYSTEM]
        if announce:  # a SYSTEM alarm's own dead notification does not raise another one
            last = announce[-1]
            self._announce_dead(
                f"{len(announce)} notification(s) dead-lettered on {channel} (last: "
                f"{last.recipient or channel}, alarm {last.event.alarm.id}): {error}",
                len(announce),
            )

    def _announce_dead(self, message: str, count: int) -> None:
        if self._on_system is None:
            return
        now_ms = self._clock.now_ms()
        self._on_system(
            [
                system_condition(
                    DEAD_TAG,
                    active=active,
                    ts_ms=now_ms,
                    message=message[:500],
                    value=count,
                    limit=None,
                )
                for active in (True, False)
            ]
        )

    def _channel_failing(self, channel: str, error: str) -> None:
        now_ms = self._clock.now_ms()
        since = self._failing_since.setdefault(channel, now_ms)
        if now_ms - since < self._channel_alarm_ms or channel in self._alarmed:
            return
        self._alarmed.add(channel)
        if self._on_system is not None:
            seconds = (now_ms - since) / 1000
            self._on_system(
                [
                    system_condition(
                        f"channel:{channel}",
                        active=True,
                        ts_ms=now_ms,
                        message=f"notification channel {channel} failing for {seconds:.0f} s: "
                        f"{error}"[:500],
                        value=seconds,
                        limit=self._channel_alarm_ms / 1000,
                    )
                ]
            )

    def _channel_ok(self, channel: str) -> None:
        self._failing_since.pop(channel, None)
        if channel not in self._alarmed:
            return
        self._alarmed.discard(channel)
        if self._on_system is not None:
            self._on_system(
                [
                    system_condition(
                        f"channel:{channel}",
                        active=False,
                        ts_ms=self._clock.now_ms(),
                        message=f"notification channel {channel} delivers again",
                        value=0,
                        limit=self._channel_alarm_ms / 1000,
                    )
                ]
            )

    def _mark_delivered(self, channel: str, ids: list[int], now_ms: int, *, digest: bool) -> None:
        """Record a delivery in the journal's thread without waiting for its commit:
        the channel goes on with its next row at once. Until the commit is done the rows
        are skipped (``_marking``); if it never commits (a crash), they are sent again
        — at least once, receivers deduplicate by the notice's key."""
        head = ids[0] if digest else None
        self._marking.update(ids)
        loop = asyncio.get_running_loop()

        def mark() -> int:
            self.journal.delivered_all(ids, now_ms, head)
            return self.journal.pending_count()

        marked = loop.run_in_executor(self._thread, mark)

        def done(future: asyncio.Future[int]) -> None:
            self._marking.difference_update(ids)
            for lane in LANES:
                self.wakes[channel, lane].set()
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                log.error("outbox_mark_delivered_failed", items=ids, error=repr(error))
            else:
                self._metrics.outbox_pending.set(future.result())

        marked.add_done_callback(done)

    def _observe_published(self, channel: str, item: OutboxItem, published_ms: int) -> None:
        """Reading time → published, and journal commit → published, for raised alarms
        on their first attempt (a retry measures the receiver's outage, not the path)."""
        committed_ms = self._committed_ms.pop((item.event.alarm.id, item.event.seq), None)
        if item.attempts or item.event.kind != "raised" or item.purpose != "event":
            return
        raised_ms = iso_to_ms(item.event.alarm.raised_at)
        self._metrics.alarm_latency.labels(channel).observe(max(0, published_ms - raised_ms) / 1000)
        if committed_ms is not None:
            self._metrics.alarm_stage.labels("journal_to_published").observe(
                max(0, published_ms - committed_ms) / 1000
            )


@dataclass(frozen=True, slots=True)
class _Message:
    """One message to send: one row, or a digest (``ids``: every row it stands for;
    ``items``: those read in full, listed in it)."""

    items: list[OutboxItem]
    all_ids: list[int] | None = None

    @property
    def digest(self) -> bool:
        return self.all_ids is not None

    @property
    def ids(self) -> list[int]:
        return self.all_ids if self.all_ids is not None else [i.id for i in self.items]


def wall_s_until(clock: Clock, due_ms: int) -> float:
    """Wall-clock seconds until ``clock`` reads ``due_ms`` (a scaled clock runs faster)."""
    scaled: Callable[[int], float] | None = getattr(clock, "wall_s_until", None)
    if scaled is not None:
        return float(scaled(due_ms))
    return (due_ms - clock.now_ms()) / 1000


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
