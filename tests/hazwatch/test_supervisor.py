"""TaskSupervisor: a loop that raises is logged, counted, alarmed and restarted alone."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest
import structlog.testing

from hazwatch.backoff import Backoff
from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.models import Condition
from hazwatch.supervisor import TaskSupervisor

NOW = 1_763_820_000_000
FAST = Backoff(initial_ms=1, max_ms=5)


async def test_a_failing_loop_is_restarted_alone_and_its_alarm_clears_once_healthy() -> None:
    conditions: list[Condition] = []
    metrics = Metrics()
    supervisor = TaskSupervisor(
        metrics, ManualClock(NOW), conditions.extend, backoff=FAST, healthy_after_s=0.2
    )
    runs = 0
    healthy_ticks = 0
    running_again = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ValueError(f"odd answer {runs}")
        running_again.set()
        await asyncio.Event().wait()

    async def steady() -> None:
        nonlocal healthy_ticks
        while True:
            healthy_ticks += 1
            await asyncio.sleep(0.001)

    with structlog.testing.capture_logs() as logged:
        task = asyncio.create_task(supervisor.run({"flaky": flaky, "steady": steady}))
        async with asyncio.timeout(5):
            await running_again.wait()
            ticks = healthy_ticks
            while not conditions or conditions[-1].active:
                await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert healthy_ticks > ticks  # the other loop never stopped
    assert metrics.value("hazwatch_task_restarts_total", {"task": "flaky"}) == 2
    assert [(c.tag, c.active) for c in conditions] == [
        ("task_failed:flaky", True),
        ("task_failed:flaky", True),
        ("task_failed:flaky", False),
    ]
    assert "ValueError: odd answer 1" in conditions[0].message
    failed = [e for e in logged if e["event"] == "task_failed"]
    assert [e["task"] for e in failed] == ["flaky", "flaky"]
    assert all(e.get("exc_info") for e in failed)  # with its traceback
    assert supervisor.failing == set()


async def test_restarts_follow_the_backoff_not_a_hot_loop() -> None:
    supervisor = TaskSupervisor(
        Metrics(), ManualClock(NOW), backoff=Backoff(initial_ms=50, max_ms=50)
    )
    started: list[float] = []
    fourth = asyncio.Event()

    async def always_fails() -> None:
        started.append(time.monotonic())
        if len(started) == 4:
            fourth.set()
        raise RuntimeError("bug")

    task = asyncio.create_task(supervisor.supervise("buggy", always_fails))
    async with asyncio.timeout(10):
        await fourth.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    gaps = [b - a for a, b in itertools.pairwise(started)]
    # equal jitter over 50 ms: at least 25 ms between attempts (a loaded box only adds)
    assert len(gaps) >= 3
    assert min(gaps) >= 0.024, gaps


async def test_cancelling_stops_every_loop_and_a_returning_loop_is_not_restarted() -> None:
    supervisor = TaskSupervisor(Metrics(), ManualClock(NOW), backoff=FAST)
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    await supervisor.supervise("once", once)
    assert runs == 1
    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(supervisor.run({"forever": forever}))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped.is_set()
