"""One forwarder against a real HTTP receiver: alarm changes from the journal,
retries in order, a full queue counted and alarmed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from alerting.journal import Journal
from hazwatch.clock import SystemClock
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmType, Condition, Reading, Registry, system_condition
from hazwatch.uplink_settings import UplinkSettings
from tests.helpers import eventually
from tests.receivers import ScriptedReceiver
from uplink.forwarder import UplinkForwarder
from uplink.queue import UplinkQueue
from uplink.sampler import PointSelection
from uplink.service import build_requests
from uplink.transport import HttpUpstream

T0 = 1_763_820_000_000


def condition(enterprise: str, tag: str, active: bool = True) -> Condition:
    return Condition(enterprise, "U1", tag, AlarmType.HH, active, 9.0, 8.0, T0, f"{tag} high")


@contextlib.asynccontextmanager
async def forwarder(
    tmp_path: Path,
    url: str,
    *,
    journal: Journal | None = None,
    max_records: int = 1000,
    **settings: Any,
) -> AsyncIterator[tuple[UplinkForwarder, Metrics, list[Condition]]]:
    s = UplinkSettings.model_validate(
        {"name": "t", "url": url, "retry_max_s": 0.2, "rate": 1000, **settings}
    )
    registry = Registry(enterprises={})
    metrics = Metrics()
    raised: list[Condition] = []
    clock = SystemClock()
    async with UplinkQueue(tmp_path / "q.db", max_records) as queue, httpx.AsyncClient() as http:
        f = UplinkForwarder(
            s,
            selection=PointSelection(registry, s.enterprises),
            queue=queue,
            upstream=HttpUpstream(s, http),
            builder=build_requests(s, registry, clock),
            metrics=metrics,
            clock=clock,
            journal=journal,
            on_system=raised.extend,
        )
        await f.restore()
        yield f, metrics, raised


@contextlib.asynccontextmanager
async def running(f: UplinkForwarder) -> AsyncIterator[None]:
    task = asyncio.create_task(f.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def records(receiver: ScriptedReceiver, path: str) -> list[dict[str, Any]]:
    return [
        record
        for r in receiver.requests
        if r.path == path and r.status < 300
        for record in orjson.loads(r.body)["records"]
    ]


def count(path: str, n: int) -> Callable[[list[Any]], bool]:
    return lambda requests: (
        sum(
            len(orjson.loads(r.body)["records"])
            for r in requests
            if r.path == path and r.status < 300
        )
        >= n
    )


async def test_alarm_changes_from_the_journals_end_filtered_in_order(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.db", []) as journal:
        journal.apply_all([condition("E001", "OLD")], T0)  # history: not sent up
        async with (
            ScriptedReceiver() as platform,
            forwarder(
                tmp_path,
                platform.url("/api"),
                journal=journal,
                enterprises=["E001"],
                alarms={"path": "/alarms"},
            ) as (f, metrics, _),
            running(f),
        ):
            await asyncio.sleep(0)  # the forwarder has taken the journal's end
            await f.check_alarms()
            changes = [
                condition("E001", "A"),
                condition("E002", "B"),  # another enterprise
                condition("E001", "C"),
                condition("E001", "A", active=False),
            ]
            for change in changes:
                journal.apply_all([change], T0)
            journal.apply_all(
                [system_condition("x", active=True, ts_ms=T0, message="m", value=1, limit=None)],
                T0,
            )
            f.wake()
            await platform.wait_until(count("/api/alarms", 3))
            await eventually(lambda: sent(metrics) == 3, what="confirmed")
            got = records(platform, "/api/alarms")
    assert [(r["alarm"]["tag"], r["kind"]) for r in got] == [
        ("A", "raised"),
        ("C", "raised"),
        ("A", "cleared"),
    ]
    assert [r["seq"] for r in got] == sorted(r["seq"] for r in got)
    assert got[0]["key"].endswith(":1")
    assert f.backlog == 0


def sent(metrics: Metrics, kind: str = "alarm") -> float:
    return metrics.value("hazwatch_uplink_sent_records_total", {"uplink": "t", "kind": kind})


async def test_a_platform_failing_twice_gets_everything_once_in_order(tmp_path: Path) -> None:
    async with (
        ScriptedReceiver(statuses=(503, 503)) as platform,
        forwarder(tmp_path, platform.url("/api"), readings={"period_s": 0}, batch=5) as (
            f,
            metrics,
            _,
        ),
    ):
        await f.offer([Reading("E1", "g", "T", float(n), T0 + n) for n in range(12)])
        async with running(f):
            await platform.wait_until(count("/api", 12))
            await eventually(lambda: sent(metrics, "reading") == 12, what="confirmed")
        keys = [r.headers["idempotency-key"] for r in platform.requests]
    assert [r["v"] for r in records(platform, "/api")] == [float(n) for n in range(12)]
    assert keys[:3] == ["t-1-5"] * 3  # the same records, the same key, on every attempt
    assert metrics.value("hazwatch_uplink_failures_total", {"uplink": "t"}) == 2
    assert f.backlog == 0


async def test_a_full_queue_drops_the_oldest_counts_and_alarms(tmp_path: Path) -> None:
    async with forwarder(
        tmp_path, "http://127.0.0.1:9/", max_records=100, readings={"period_s": 0}
    ) as (f, metrics, raised):
        await f.offer([Reading("E1", "g", "T", float(n), T0 + n) for n in range(150)])
    dropped = metrics.value(
        "hazwatch_uplink_dropped_records_total", {"uplink": "t", "reason": "queue_full"}
    )
    assert dropped == 150 - 90
    assert [(c.tag, c.active) for c in raised] == [("uplink_dropped:t", True)]
