"""A flood: 5,000 alarms in 60 s across 3 enterprises, through the real journal, router,
flood gate and SMS channel to a real HTTP gateway.

Run on a clock scaled 2× (60 s of alarm time take 30 s); every figure is measured in
that clock's time, so "within 1 s" is half a second of wall time here — stricter, not
looser. Logging is at the service's level (info), not the tests' default (debug).
Expectations: every alarm is a journal record; no recipient gets more than
``max_per_minute`` non-critical messages in any minute; every critical alarm's first
attempt to each of its people comes within 1 s of the alarm; every notification is
delivered (alone or in a digest), none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from alerting.channels import build_channels
from alerting.journal import Journal
from alerting.messages import MessageBuilder
from alerting.notifiers import Notice, Notifier
from alerting.service import AlarmService
from hazwatch.clock import ScaledClock
from hazwatch.metrics import Metrics
from hazwatch.models import (
    AlarmType,
    Condition,
    Contact,
    Enterprise,
    Grid,
    Installation,
    Registry,
    iso_to_ms,
)
from hazwatch.settings import load_settings
from tests.helpers import eventually
from tests.receivers import ScriptedReceiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = 2.0
ALARMS = 5_000
SECONDS = 60
BATCHES = 100
ENTERPRISES = ("F001", "F002", "F003")
MAX_PER_MINUTE = 10
NON_CRITICAL = (AlarmType.H, AlarmType.L, AlarmType.ROC, AlarmType.TREND, AlarmType.FAULT)


class Attempts:
    """The real SMS notifier, with the clock time of each attempt written down (what
    "first attempted" means: when hazwatch tries, whatever the gateway then does)."""

    def __init__(self, inner: Notifier, clock: ScaledClock) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock
        self.at: dict[str, int] = {}

    async def send(self, notice: Notice) -> None:
        self.at.setdefault(notice.key, self.clock.now_ms())
        await self.inner.send(notice)


def flood_registry() -> Registry:
    def person(role: str, eid: str, n: int) -> Contact:
        return Contact(name=f"{role} of {eid}", phone=f"+86-100-{n:04d}")

    enterprises = {
        eid: Enterprise(
            id=eid,
            name=f"Flood Chemical {eid}",
            grid="G1",
            contacts={
                role: person(role, eid, 10 * e + r)
                for r, role in enumerate(("principal", "technical", "operations", "duty"))
            },
            installations=(
                Installation(id="A", name="Tank farm", grade=1),
                Installation(id="B", name="Warehouse", grade=3),
            ),
        )
        for e, eid in enumerate(ENTERPRISES)
    }
    grid = Grid(id="G1", officers=(Contact(name="Officer", phone="+86-100-9999"),))
    return Registry(enterprises=enterprises, grids={"G1": grid})


def conditions(start_ms: int) -> list[list[Condition]]:
    """5,000 distinct alarms: one in a hundred critical (HH on the grade-1 tank farm)."""
    per_batch = ALARMS // BATCHES
    batches = []
    for b in range(BATCHES):
        batch = []
        for k in range(per_batch):
            n = b * per_batch + k
            eid = ENTERPRISES[n % len(ENTERPRISES)]
            critical = n % 100 == 7
            alarm_type = AlarmType.HH if critical else NON_CRITICAL[n % len(NON_CRITICAL)]
            batch.append(
                Condition(
                    eid, "A" if critical else "B", f"P{n:05d}", alarm_type, True,  # noqa: FBT003
                    1.0, 0.5, start_ms, f"point {n}",
                )
            )  # fmt: skip
        batches.append(batch)
    return batches


@pytest.fixture
def service_logging() -> Iterator[None]:
    """Log as ``hazwatch run`` does (info and up), not every debug line."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield
    structlog.reset_defaults()


async def test_5000_alarms_in_60_s_across_3_enterprises(
    tmp_path: Path, service_logging: None
) -> None:
    registry = flood_registry()
    clock = ScaledClock(RATE)
    metrics = Metrics()
    async with ScriptedReceiver() as gateway, httpx.AsyncClient(timeout=5) as http:
        settings = load_settings(
            None,
            environ={},
            overrides={
                "alerting.sms.url": gateway.url("/sms"),
                "alerting.allow_private": ["127.0.0.1"],
                "alerting.flood.max_per_minute": MAX_PER_MINUTE,
            },
        )
        channels = build_channels(settings, registry, http, mqtt=False)
        assert [n.name for n in channels.notifiers] == ["sms"]
        sms = Attempts(channels.notifiers[0], clock)
        journal = Journal(tmp_path / "journal.db", ["sms"], policy=channels.router)
        journal.open()
        service = AlarmService(
            journal,
            [sms],
            metrics,
            clock,
            people=channels.router.people_channels,
            builder=MessageBuilder(registry, "en", "http://console.test/", "UTC"),
            flood=settings.alerting.flood,
        )
        outbox = asyncio.create_task(service.run_outbox())
        ref_mono, ref_ms = time.monotonic(), clock.now_ms()
        started_ms = clock.now_ms()
        try:
            for n, batch in enumerate(conditions(started_ms)):
                due_ms = started_ms + n * SECONDS * 1000 // BATCHES
                await asyncio.sleep(max(0.0, clock.wall_s_until(due_ms)))
                service.submit([_at(c, clock.now_ms()) for c in batch])
            flood_s = (clock.now_ms() - started_ms) / 1000
            await service.settled()
            await eventually(
                lambda: journal.pending_count() == 0, timeout=240 / RATE + 30, what="all delivered"
            )
        finally:
            outbox.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await outbox
            service.close()

        def clock_ms(at: float) -> int:
            return ref_ms + round((at - ref_mono) * 1000 * RATE)

        alarms = journal.list_alarms(limit=ALARMS + 10)
        raised_ms = {
            a.id: iso_to_ms(journal.transitions(a.id)[0]["at"])
            for a in alarms
            if a.priority == "critical"
        }
        journal.close()

    assert len(alarms) == ALARMS
    messages = [
        (clock_ms(r.at), r.json()["to"], r.headers["idempotency-key"]) for r in gateway.requests
    ]
    keys = [key for _, _, key in messages]
    assert len(keys) == len(set(keys))  # none twice
    critical_keys = {k for k in keys if k.split(":")[0] in raised_ms and not k.startswith("digest")}
    per_recipient: dict[str, list[int]] = defaultdict(list)
    for at_ms, to, key in messages:
        if key not in critical_keys:
            per_recipient[to].append(at_ms)
    worst = 0
    for times in per_recipient.values():
        times.sort()
        for i, t in enumerate(times):
            in_minute = sum(1 for u in times[i:] if u < t + 60_000)
            worst = max(worst, in_minute)
    assert worst <= MAX_PER_MINUTE
    first_attempt: dict[str, int] = {}  # the last of an alarm's people first attempted
    for key in critical_keys:
        alarm_id = key.split(":")[0]
        first_attempt[alarm_id] = max(first_attempt.get(alarm_id, 0), sms.at[key])
    assert set(first_attempt) == set(raised_ms)  # every critical alarm reached its people
    latencies = sorted(first_attempt[a] - raised_ms[a] for a in raised_ms)
    assert latencies[-1] <= 1000, latencies[-10:]
    digests = sum(1 for k in keys if k.startswith("digest"))
    print(
        f"\nflood: {len(alarms)} alarms in {flood_s:.0f} s of clock time ({RATE:g}x); "
        f"{len(messages)} SMS ({digests} digests) to {len(per_recipient)} recipients; "
        f"worst recipient-minute {worst} non-critical (limit {MAX_PER_MINUTE}); "
        f"{len(raised_ms)} critical, last of their people told after "
        f"p50 {latencies[len(latencies) // 2]} ms / max {latencies[-1]} ms (clock time)"
    )


def _at(condition: Condition, ts_ms: int) -> Condition:
    return Condition(
        condition.enterprise,
        condition.installation,
        condition.tag,
        condition.type,
        condition.active,
        condition.value,
        condition.limit,
        ts_ms,
        condition.message,
    )
