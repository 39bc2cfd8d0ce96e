"""Timeline tests in the style of Alertmanager's acceptance tests: inject at t, expect
between t1 and t2 — on a manual clock, as a discrete-event run.

:class:`Timeline` builds the real alerting stack (journal with the real router over a
registry, the alarm service, its dispatcher with flood control, its follow-up loop)
with a :class:`Receiver` per channel in place of the network. ``run_until(t)`` moves
the clock from event to event — the next injection, the next timer, the next row due
on any channel — and at each one runs what is due, exactly as the service's loops
would, but without waiting: an hour of escalation takes milliseconds, and every time
is exact. Receivers record what arrived and when (in scenario seconds).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting.journal import Journal
from alerting.messages import MessageBuilder
from alerting.notifiers import Notice
from alerting.routing import Router
from alerting.service import AlarmService
from hazwatch.backoff import Backoff
from hazwatch.clock import ManualClock
from hazwatch.errors import NotifierError
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmType, Condition, Registry
from hazwatch.settings import load_settings

T0 = 1_763_820_000_000


@dataclass(frozen=True)
class Arrival:
    t_s: float
    channel: str
    notice: Notice

    @property
    def people(self) -> set[str]:
        return {p.key for p in self.notice.people} or {self.notice.recipient}

    @property
    def kind(self) -> str:
        """The event's kind, or ``reminder`` / ``digest``."""
        if self.notice.purpose != "event":
            return self.notice.purpose
        return self.notice.event.kind


@dataclass
class Receiver:
    """The far end of one channel: records each notice with the time it arrived.
    ``down_until_s``: refuses (a transient error) until then; ``refuse``: which notices
    it refuses for good."""

    name: str
    clock: ManualClock
    arrivals: list[Arrival] = field(default_factory=list)
    down_until_s: float = 0
    refuse: Callable[[Notice], bool] = lambda _notice: False
    attempts: int = 0

    async def send(self, notice: Notice) -> None:
        self.attempts += 1
        t_s = (self.clock.now_ms() - T0) / 1000
        if t_s < self.down_until_s:
            raise NotifierError(f"{self.name}: receiver down")
        if self.refuse(notice):
            raise NotifierError(f"{self.name}: recipient refused", permanent=True)
        self.arrivals.append(Arrival(t_s, self.name, notice))


class Timeline:
    def __init__(
        self,
        tmp_path: Path,
        registry: Registry,
        alerting: Mapping[str, Any] | None = None,
        *,
        channels: Iterable[str] = ("sms", "email"),
    ) -> None:
        overrides = {
            "alerting.email.host": "smtp.invalid",
            "alerting.sms.url": "https://sms.invalid/send",
            **{f"alerting.{k}": v for k, v in (alerting or {}).items()},
        }
        self.settings = load_settings(None, environ={}, overrides=overrides)
        self.clock = ManualClock(T0)
        self.metrics = Metrics()
        a = self.settings.alerting
        self.router = Router(a, registry, ["feed"])
        wanted = set(channels)
        people = [c for c in self.router.people_channels if c in wanted]
        self.router.people_channels = tuple(people)
        self.receivers = {name: Receiver(name, self.clock) for name in ["feed", *people]}
        self.journal = Journal(tmp_path / "journal.db", list(self.receivers), policy=self.router)
        self.journal.open()
        self.service = AlarmService(
            self.journal,
            list(self.receivers.values()),
            self.metrics,
            self.clock,
            people=people,
            builder=MessageBuilder(registry, "en", "http://console.test/", "UTC"),
            flood=a.flood,
            max_attempts=a.max_attempts,
            channel_alarm_s=a.channel_alarm_s,
            backoff=Backoff(initial_ms=1_000, max_ms=60_000),
            rng=random.Random(7),
        )
        self._injections: list[tuple[int, Callable[[], object]]] = []

    def close(self) -> None:
        self.service.close()
        self.journal.close()

    @property
    def now_s(self) -> float:
        return (self.clock.now_ms() - T0) / 1000

    def at(self, t_s: float, action: Callable[[], object]) -> None:
        """Do ``action`` (e.g. ``lambda: tl.raise_(...)``) when the clock reads ``t_s``."""
        self._injections.append((T0 + round(t_s * 1000), action))
        self._injections.sort(key=lambda item: item[0])

    def condition(
        self,
        tag: str = "R201_TT",
        alarm_type: AlarmType = AlarmType.HH,
        *,
        active: bool = True,
        enterprise: str = "E001",
        installation: str = "MH02",
        value: float = 150.0,
        limit: float = 140.0,
    ) -> Condition:
        return Condition(
            enterprise,
            installation,
            tag,
            alarm_type,
            active,
            value,
            limit,
            self.clock.now_ms(),
            f"{tag} {value} {alarm_type.value} {limit}",
        )

    def apply(self, *conditions: Condition) -> None:
        self.service.handle(list(conditions))

    async def run_until(self, t_s: float) -> None:
        end_ms = T0 + round(t_s * 1000)
        while True:
            now = self.clock.now_ms()
            while self._injections and self._injections[0][0] <= now:
                _, action = self._injections.pop(0)
                action()
            await self.service.settled()
            nexts: list[int] = []
            followup_next = await self.service.followup.step()
            await self.service.settled()
            if followup_next is not None:
                nexts.append(followup_next)
            for name in self.receivers:
                while True:
                    due = await self.service.dispatcher.step(name)
                    await self.service.settled()
                    if due is None or due > self.clock.now_ms():
                        break
                if due is not None:
                    nexts.append(due)
            if self._injections:
                nexts.append(self._injections[0][0])
            upcoming = [n for n in nexts if n > now]
            if not upcoming or min(upcoming) > end_ms:
                self.clock.set(max(now, end_ms))
                return
            self.clock.set(min(upcoming))

    def arrivals(self, channel: str | None = None) -> list[Arrival]:
        found = []
        for name, receiver in self.receivers.items():
            if channel is None or name == channel:
                found.extend(receiver.arrivals)
        return sorted(found, key=lambda a: a.t_s)

    def alarm_id(self, tag: str = "R201_TT") -> str:
        [alarm] = [a for a in self.journal.list_alarms(limit=1000) if a.tag == tag][:1]
        return alarm.id
