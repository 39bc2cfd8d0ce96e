"""The follow-up loop: runs the journal's timers — escalation (督办), reminders, overdue
feedback, expired shelves, ended suppressions — when they are due.

The timers themselves are columns of the journal (``alerting/escalation.py`` says what
each one does), so they survive a restart: after one, whatever fell due while the
service was down fires at the first step. Each step is one journal transaction in the
alarm service's journal thread; the events it records go out like every other
(console, feeds, the people of the tier). The loop sleeps until the next timer (on a
scaled clock, the wall time that takes) or until woken by a change that may have set
an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from alerting.dispatch import wall_s_until
from alerting.journal import Journal
from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent

log = structlog.get_logger(__name__)

IDLE_S = 60.0
"""Longest sleep with nothing due: a cheap look, in case a wake-up was missed."""


class FollowUp:
    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        metrics: Metrics,
        thread: ThreadPoolExecutor,
        on_events: Callable[[list[AlarmEvent], int], None],
    ) -> None:
        """``on_events(events, reminder_rows)``: announce what a step recorded."""
        self._journal = journal
        self._clock = clock
        self._metrics = metrics
        self._thread = thread
        self._on_events = on_events
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def step(self) -> int | None:
        """Fire what is due now; when the next timer is due (``None``: none waits)."""
        now_ms = self._clock.now_ms()
        loop = asyncio.get_running_loop()
        events, reminders = await loop.run_in_executor(
            self._thread, self._journal.follow_up, now_ms
        )
        for event in events:
            if event.kind == "escalated":
                self._metrics.escalations.labels("tier").inc()
        if reminders:
            self._metrics.escalations.labels("reminder").inc()
        if events or reminders:
            self._on_events(events, reminders)
        return self._journal.next_timer_ms()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                due_ms = await self.step()
            except Exception as exc:  # a journal failure must not end the chase for good
                log.exception("followup_step_failed", error=repr(exc))
                due_ms = None
            delay_s = IDLE_S if due_ms is None else min(IDLE_S, wall_s_until(self._clock, due_ms))
            if delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await self._wake.wait()
