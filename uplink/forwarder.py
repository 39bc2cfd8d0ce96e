"""One uplink: readings and alarm changes in, store-and-forward to one platform.

Two ways in, one way out::

    ingest hand-over ─► ReadingSampler ─► queue (append, fsync) ─┐
    alarm journal ─(cursor: journal position)─► queue ───────────┤
                                                                 └─► send loop ─► platform

- :meth:`UplinkForwarder.offer` gets every batch of readings **after** the spool
  committed it and **before** the spool's ``delivered`` cursor moves past it (the
  wiring awaits it in the ingest's hand-over). The sampler thins them; what is left
  is committed to the uplink's queue, with the sampler's state, before ``offer``
  returns. A crash at any point loses nothing: what the queue has not committed, the
  spool still holds as undelivered and hands over again at start, and the restored
  sampler forwards it exactly as it would have (or skips it as already queued).
- Alarm changes are read from the alarm journal by position (``events_after``) and
  copied into the queue with the position reached, in one transaction. The journal
  keeps every transition; an uplink added later starts at the journal's end.
- The send loop takes the oldest records (alarm changes first), builds one request
  per enterprise (:mod:`uplink.requests`), paces them at ``rate`` records per second
  (:class:`RatePace`) and removes records from the queue only once the platform took
  them. A failure is retried with jittered backoff (1 s up to ``retry_max_s``), for as
  long as it takes, in order: nothing is skipped.

SYSTEM alarms (enterprise ``_system``, tag ``<condition>:<uplink name>``):
``uplink_failing`` — every send failed for ``fail_alarm_s``; clears on the next
success. ``uplink_lag`` — the oldest waiting record is older than ``lag_alarm_s``;
clears below half of it. ``uplink_dropped`` — the queue was full and dropped the
oldest readings, or failed to take some; clears once below half its limit and
taking records again. The first check after start reports every state, so an alarm
left active by the previous run clears.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import orjson
import structlog

from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.errors import UpstreamError
from hazwatch.metrics import Metrics
from hazwatch.models import SYSTEM_ENTERPRISE, Condition, Reading, system_condition
from hazwatch.uplink_settings import UplinkSettings
from uplink.queue import UplinkQueue
from uplink.requests import Outgoing, RequestBuilder
from uplink.sampler import PointSelection, ReadingSampler
from uplink.transport import Upstream

log = structlog.get_logger(__name__)

IDLE_S = 1.0
"""An idle uplink looks for alarm changes and at its lag this often (and when woken)."""
ALARM_PAGE = 1000
"""Alarm changes copied from the journal per read."""


class AlarmJournal(Protocol):
    """What an uplink reads of the alarm journal (the wiring passes the journal)."""

    def events_after(self, position: int, limit: int) -> list[tuple[int, str]]:
        """``(position, event JSON)`` of the transitions after ``position``, in order."""
        ...

    def events_end(self) -> int:
        """The position of the newest transition (0: none yet)."""
        ...


class RatePace:
    """A token bucket: ``rate`` records per second, bursts of at most ``burst``.

    >>> pace = RatePace(rate=100, burst=10, now=lambda: 0.0)
    >>> pace.wait_s(10), pace.wait_s(10)  # the first burst is free, then 10 / 100 s
    (0.0, 0.1)
    """

    def __init__(self, rate: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(1, burst)
        self._now = now
        self._tokens = float(self._burst)
        self._at = now()

    def wait_s(self, records: int) -> float:
        """Take ``records`` tokens; the seconds to wait before sending them."""
        now = self._now()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= min(records, self._burst)
        return max(0.0, -self._tokens / self._rate)

    async def take(self, records: int) -> None:
        delay = self.wait_s(records)
        if delay > 0:
            await asyncio.sleep(delay)


class UplinkForwarder:
    def __init__(
        self,
        settings: UplinkSettings,
        *,
        selection: PointSelection,
        queue: UplinkQueue,
        upstream: Upstream,
        builder: RequestBuilder,
        metrics: Metrics,
        clock: Clock,
        journal: AlarmJournal | None = None,
        on_system: Callable[[list[Condition]], object] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._selection = selection
        r = settings.readings
        self._sampler = ReadingSampler(period_s=r.period_s, deadband=r.deadband, select=selection)
        self._queue = queue
        self._upstream = upstream
        self._builder = builder
        self._metrics = metrics
        self._clock = clock
        self._journal = journal if settings.alarms.enabled else None
        self._on_system = on_system
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        retry_max_ms = round(settings.retry_max_s * 1000)
        self._backoff = Backoff(min(1000, retry_max_ms), retry_max_ms)
        self._pace = RatePace(settings.rate, settings.batch)
        self._wake = asyncio.Event()
        self._attempt = 0
        self._failing_since_ms: int | None = None
        self._queue_failing = False
        self._reported: dict[str, bool] = {}
        self.last_error = ""
        self.lag_s = 0.0

    async def restore(self) -> None:
        """The sampler's state from the queue: call before the first ``offer``."""
        self._sampler.restore(await self._queue.forwarded())
        self._publish_depth()

    # --- in ----------------------------------------------------------------------------

    async def offer(self, readings: Iterable[Reading]) -> None:
        """Queue what the sampler forwards of a delivered batch; returns once it is
        durable. Never raises for a queue failure: those records are counted as
        dropped and alarmed instead (the ingest must go on)."""
        if not self._settings.readings.enabled:
            return
        forwarded = self._sampler.sample(readings)
        if not forwarded:
            return
        try:
            dropped = await self._queue.append_readings(forwarded, self._clock.now_ms())
        except Exception as exc:  # disk full, a broken file: counted, alarmed, logged
            log.exception("uplink_queue_failed", uplink=self.name, records=len(forwarded))
            self._metrics.uplink_dropped.labels(self.name, "queue_error").inc(len(forwarded))
            self._queue_failing = True
            self.last_error = f"queue: {exc}"
            self._report_dropped()
            return
        self._queue_failing = False
        self._metrics.uplink_queued.labels(self.name, "reading").inc(len(forwarded))
        if dropped:
            self._metrics.uplink_dropped.labels(self.name, "queue_full").inc(dropped)
            log.warning("uplink_queue_full_dropped_oldest", uplink=self.name, readings=dropped)
            self._report_dropped()
        self._publish_depth()
        self._wake.set()

    def wake(self) -> None:
        """New alarm changes in the journal (or anything else worth a look)."""
        self._wake.set()

    # --- out ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Send until cancelled."""
        await self._start_alarm_cursor()
        await self.check_alarms()
        while True:
            self._wake.clear()
            await self._copy_alarms()
            batch = await self._queue.next_batch(self._settings.batch)
            if not batch:
                await self.check_alarms()
                await self._idle()
                continue
            sent = await self._send([*self._builder.requests(batch)])
            await self.check_alarms()
            if not sent:
                await asyncio.sleep(self._backoff.delay_s(self._attempt, self._rng))

    async def _idle(self) -> None:
        try:
            async with asyncio.timeout(IDLE_S):
                await self._wake.wait()
        except TimeoutError:
            return

    async def _send(self, outgoing: Sequence[Outgoing]) -> bool:
        """Send in order; stop at the first failure. ``True`` if all went."""
        for item in outgoing:
            await self._pace.take(len(item.seqs))
            try:
                await self._upstream.send(item.request)
            except UpstreamError as exc:
                await self._failed(exc)
                return False
            now_ms = self._clock.now_ms()
            await self._queue.confirm(item.seqs, now_ms)
            self._metrics.uplink_sent.labels(self.name, item.kind).inc(len(item.seqs))
            if self._attempt:
                log.info("uplink_recovered", uplink=self.name, attempts=self._attempt + 1)
            self._attempt = 0
            self._failing_since_ms = None
            self._publish_depth()
        return True

    async def _failed(self, exc: UpstreamError) -> None:
        self._attempt += 1
        now_ms = self._clock.now_ms()
        if self._failing_since_ms is None:
            self._failing_since_ms = now_ms
        self.last_error = str(exc)
        self._metrics.uplink_failures.labels(self.name).inc()
        (log.warning if self._attempt == 1 or self._attempt % 20 == 0 else log.debug)(
            "uplink_send_failed",
            uplink=self.name,
            attempt=self._attempt,
            status=exc.status,
            error=self.last_error,
        )
        await self._queue.note_failure(self.last_error, now_ms)

    # --- alarm changes -----------------------------------------------------------------

    async def _start_alarm_cursor(self) -> None:
        """A new uplink forwards alarm changes from now on, not the journal's history."""
        if self._journal is not None and self._queue.alarm_cursor is None:
            await self._queue.append_alarms([], self._journal.events_end(), self._clock.now_ms())

    async def _copy_alarms(self) -> None:
        journal = self._journal
        if journal is None:
            return
        while True:
            position = self._queue.alarm_cursor or 0
            page = journal.events_after(position, ALARM_PAGE)
            if not page:
                return
            chosen = [(e, event) for _, event in page if (e := self._chosen(event)) is not None]
            await self._queue.append_alarms(chosen, page[-1][0], self._clock.now_ms())
            if chosen:
                self._metrics.uplink_queued.labels(self.name, "alarm").inc(len(chosen))
                self._publish_depth()
            if len(page) < ALARM_PAGE:
                return

    def _chosen(self, event_json: str) -> str | None:
        """The enterprise of an alarm change this uplink forwards, else ``None``."""
        alarm = orjson.loads(event_json)["alarm"]
        enterprise: str = alarm["enterprise"]
        alarms = self._settings.alarms
        if enterprise == SYSTEM_ENTERPRISE:
            if not alarms.include_system:
                return None
        elif not self._selection.enterprise(enterprise):
            return None
        if alarms.types and alarm["type"] not in alarms.types:
            return None
        return enterprise

    # --- health ------------------------------------------------------------------------

    def _publish_depth(self) -> None:
        for kind, depth in self._queue.depth.items():
            self._metrics.uplink_backlog.labels(self.name, kind).set(depth)

    def alarmed(self, condition: str) -> bool:
        """Whether the SYSTEM condition (``uplink_failing``...) was last reported active."""
        return self._reported.get(condition, False)

    @property
    def backlog(self) -> int:
        return sum(self._queue.depth.values())

    async def check_alarms(self) -> None:
        s = self._settings
        now_ms = self._clock.now_ms()
        oldest = await self._queue.oldest_queued_ms()
        self.lag_s = 0.0 if oldest is None else max(0, now_ms - oldest) / 1000
        self._metrics.uplink_lag.labels(self.name).set(self.lag_s)
        was = self._reported.get("uplink_lag")
        lagging = self.lag_s > s.lag_alarm_s or bool(was and self.lag_s > s.lag_alarm_s / 2)
        self._report(
            "uplink_lag",
            lagging,
            self.lag_s,
            s.lag_alarm_s,
            f"uplink {self.name}: the oldest record has waited {self.lag_s:.0f} s "
            f"({self.backlog} waiting)"
            if lagging
            else f"uplink {self.name} caught up",
        )
        since = self._failing_since_ms
        failing_s = 0.0 if since is None else (now_ms - since) / 1000
        failing = failing_s >= s.fail_alarm_s
        self._report(
            "uplink_failing",
            failing,
            failing_s,
            s.fail_alarm_s,
            f"uplink {self.name}: {s.origin} has taken nothing for {failing_s:.0f} s: "
            f"{self.last_error}"[:500]
            if failing
            else f"uplink {self.name}: {s.origin} takes records again",
        )
        self._report_dropped()

    def _report_dropped(self) -> None:
        dropping = self._queue.full or self._queue_failing
        self._report(
            "uplink_dropped",
            dropping,
            float(self.backlog),
            float(self._settings.queue_max_records),
            f"uplink {self.name}: records dropped unsent "
            + ("(the queue is failing)" if self._queue_failing else "(queue full, oldest first)")
            if dropping
            else f"uplink {self.name}: the queue takes records again",
        )

    def _report(
        self, condition: str, active: bool, value: float, limit: float | None, message: str
    ) -> None:
        """Hand a condition to alerting when it changed (the first check: always)."""
        if self._reported.get(condition) == active:
            return
        self._reported[condition] = active
        (log.warning if active else log.info)(
            "system_condition", tag=f"{condition}:{self.name}", active=active
        )
        if self._on_system is not None:
            self._on_system(
                [
                    system_condition(
                        f"{condition}:{self.name}",
                        active=active,
                        ts_ms=self._clock.now_ms(),
                        message=message,
                        value=value,
                        limit=limit,
                    )
                ]
            )
