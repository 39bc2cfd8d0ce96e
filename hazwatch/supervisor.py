"""The service's long-running loops, kept running: one that raises is restarted.

Every loop of the wiring (ingest, historian writer, alarm outbox, detector tick,
storage check, console) runs under :class:`TaskSupervisor`, all in one TaskGroup.
A loop handles the failures it expects itself (a broker away, InfluxDB down). What
it did not expect — a bug, an answer nobody foresaw — used to end the TaskGroup,
and with it every other loop: the historian returning something odd stopped
ingest. Now such an exception is

- logged with its traceback (``task_failed``) and counted
  (``hazwatch_task_restarts_total{task}``);
- a ``SYSTEM`` alarm, tag ``task_failed:<task>``, cleared once the restarted loop
  has run ``healthy_after_s`` without failing again;
- followed by a restart of that loop alone, after the jittered exponential backoff
  every stage uses (``hazwatch.backoff``: 0.5 s doubling to 30 s; the count starts
  anew once a run lasted ``healthy_after_s``) — never a hot loop.

Cancellation is not a failure: cancelling :meth:`TaskSupervisor.run` stops every
loop, as the TaskGroup did. A loop that returns is logged and not restarted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import structlog

from hazwatch.backoff import Backoff
from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import Condition, system_condition

log = structlog.get_logger(__name__)

RESTART_BACKOFF = Backoff(initial_ms=500, max_ms=30_000)
HEALTHY_AFTER_S = 60.0
TAG_PREFIX = "task_failed:"

Loop = Callable[[], Awaitable[None]]


class TaskSupervisor:
    """``await supervisor.run({"sink-writer": writer.run, ...})`` until cancelled."""

    def __init__(
        self,
        metrics: Metrics,
        clock: Clock,
        on_system: Callable[[list[Condition]], object] | None = None,
        *,
        backoff: Backoff = RESTART_BACKOFF,
        healthy_after_s: float = HEALTHY_AFTER_S,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._on_system = on_system
        self._backoff = backoff
        self.healthy_after_s = healthy_after_s
        self.failing: set[str] = set()
        """Loops whose SYSTEM alarm is active."""

    async def run(self, loops: Mapping[str, Loop]) -> None:
        async with asyncio.TaskGroup() as tg:
            for name, loop in loops.items():
                tg.create_task(self.supervise(name, loop), name=name)

    async def supervise(self, name: str, loop: Loop) -> None:
        """Run ``loop`` until it returns or is cancelled; restart it when it raises."""
        event_loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = event_loop.time()
            healthy = event_loop.call_later(self.healthy_after_s, self._healthy, name)
            try:
                await loop()
            except Exception as exc:
                healthy.cancel()
                if event_loop.time() - started >= self.healthy_after_s:
                    failures = 0  # it ran well for a while: a new series of failures
                failures += 1
                delay_s = self._backoff.delay_s(failures)
                self._metrics.task_restarts.labels(name).inc()
                log.exception(
                    "task_failed", task=name, failures=failures, restart_in_s=round(delay_s, 2)
                )
                self._report(
                    name,
                    active=True,
                    message=(
                        f"the {name} loop failed ({type(exc).__name__}: {str(exc)[:200]}) and "
                        f"is restarted in {delay_s:.1f} s; failures in a row: {failures}"
                    ),
                    failures=failures,
                )
                await asyncio.sleep(delay_s)
            else:
                healthy.cancel()
                log.warning("task_finished", task=name)
                return
            finally:
                healthy.cancel()

    def _healthy(self, name: str) -> None:
        if name in self.failing:
            log.info("task_recovered", task=name, running_s=self.healthy_after_s)
            self._report(
                name,
                active=False,
                message=f"the {name} loop has run {self.healthy_after_s:g} s since its restart",
                failures=0,
            )

    def _report(self, name: str, *, active: bool, message: str, failures: int) -> None:
        if active:
            self.failing.add(name)
        else:
            self.failing.discard(name)
        if self._on_system is not None:
            self._on_system(
                [
                    system_condition(
                        TAG_PREFIX + name,
                        active=active,
                        ts_ms=self._clock.now_ms(),
                        message=message,
                        value=float(failures),
                        limit=None,
                    )
                ]
            )
