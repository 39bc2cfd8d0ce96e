"""Routing: which notifications an alarm event makes — feeds, and the people responsible.

The journal asks its :class:`AlarmPolicy` for the deliveries of each event and writes
one outbox row per delivery in the event's transaction. Two policies:

- :class:`Broadcast`: every event to every channel (the backtest, most tests);
- :class:`Router`: every event to the **feeds** (the webhooks and the MQTT alarm topic:
  machines, they get every change), and to **people** by the configured routes (first
  match on type, priority and installation grade; ``hazwatch.alertpolicy``):

  ==============================  ============================================
  event                           people told
  ==============================  ============================================
  raised, unshelved/unsuppressed  the route's ``notify`` (when annunciated)
  escalated, overdue              the tier's roles (``alerting/escalation.py``)
  reminder                        everyone told so far
  feedback                        ``[alerting.feedback] verifiers``
  rejected                        the route's enterprise roles (feedback again)
  anything else                   nobody: the console and the feeds show it
  ==============================  ============================================

  Shelved and suppressed alarms reach nobody. A person is reached on each of the
  route's channels they have an address for — e-mail and SMS one row per person, a
  group robot (DingTalk, WeCom) and the console one row per group with the people
  @mentioned; someone reached on none gets a dead row that says so (listed with the
  dead letters). A SYSTEM alarm about a failing channel (tag ``channel:<name>``) does
  not go through that channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from alerting.escalation import told
from alerting.recipients import ENTERPRISE_ROLES, Directory, Person
from hazwatch.alertpolicy import PEOPLE_CHANNELS, AlertingSettings, Route
from hazwatch.errors import ConfigError
from hazwatch.models import Alarm, AlarmState, AlarmType, EventKind, Priority, Registry

UNREACHABLE = "unreachable"
"""The pseudo-channel of dead rows for people no configured channel reaches."""
GROUP_CHANNELS = frozenset({"dingtalk", "wecom", "console"})
PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}
CHANNEL_ALARM_PREFIX = "channel:"
QUIET = frozenset({AlarmState.SHELVED, AlarmState.SUPPRESSED})
"""States in which an alarm reaches nobody (the feeds still carry its events)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification to write: a channel and who on it (``recipient`` empty: the
    whole feed; a person's key; a robot's organisation, with ``mentions``)."""

    channel: str
    recipient: str = ""
    mentions: tuple[str, ...] = ()
    error: str = ""
    """Non-empty: nobody can deliver it; written dead, with this error."""


class AlarmPolicy(Protocol):
    """What the journal asks while it records an event."""

    def deliveries(
        self,
        alarm: Alarm,
        kind: EventKind,
        route: str,
        roles: Sequence[str] | None = None,
        *,
        feeds: bool = True,
    ) -> list[Delivery]:
        """The notifications of an event (``roles``: a tier's, for escalations and
        reminders, instead of the event's own); ``route`` as :meth:`route_name` gave it.
        ``feeds=False``: people only (a reminder is no event for the feeds)."""
        ...

    def route_name(
        self, enterprise: str, installation: str, alarm_type: AlarmType, priority: Priority
    ) -> str:
        """The route a new alarm follows ('' when there are none)."""
        ...

    def route(self, name: str) -> Route | None:
        """A route by name, for escalation (``None``: nothing to chase)."""
        ...

    def feedback_due_min(self, alarm_type: AlarmType, priority: Priority) -> float | None:
        """Minutes the enterprise has for feedback; ``None``: none is owed."""
        ...


class Broadcast:
    """Every event to every channel; nobody chased, no feedback owed."""

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = tuple(channels)

    def deliveries(
        self,
        alarm: Alarm,
        kind: EventKind,
        route: str,
        roles: Sequence[str] | None = None,
        *,
        feeds: bool = True,
    ) -> list[Delivery]:
        del alarm, kind, route, roles  # the same for every event
        return [Delivery(c) for c in self.channels] if feeds else []

    def route_name(
        self, enterprise: str, installation: str, alarm_type: AlarmType, priority: Priority
    ) -> str:
        del enterprise, installation, alarm_type, priority
        return ""

    def route(self, name: str) -> Route | None:
        del name
        return None

    def feedback_due_min(self, alarm_type: AlarmType, priority: Priority) -> float | None:
        del alarm_type, priority
        return None


class Router:
    """Routes by ``[alerting]`` over the registry. Raises ``ConfigError`` naming the
    key when a route names a channel nothing configures."""

    def __init__(
        self,
        settings: AlertingSettings,
        registry: Registry,
        feeds: Sequence[str],
        *,
        source: str = "config",
    ) -> None:
        self._settings = settings
        self._registry = registry
        self.feeds = tuple(feeds)
        self.directory = Directory(registry, settings.operators, settings.robots)
        robots = self.directory.robot_kinds()
        self.people_channels = tuple(
            c for c in settings.people_channels if c not in {"dingtalk", "wecom"} or c in robots
        )
        for n, route in enumerate(settings.routes):
            for channel in route.channels:
                if channel not in self.people_channels:
                    raise ConfigError(
                        f"{source}: alerting.routes.{n}.channels: channel {channel!r} is not "
                        f"configured (no {channel} robot in the registry or [alerting.robots])"
                    )
        self._routes = {r.name: r for r in settings.routes}
        self._grades = {
            (e.id, i.id): i.grade for e in registry.enterprises.values() for i in e.installations
        }

    @property
    def channels(self) -> tuple[str, ...]:
        return self.feeds + self.people_channels

    def route_name(
        self, enterprise: str, installation: str, alarm_type: AlarmType, priority: Priority
    ) -> str:
        grade = self._grades.get((enterprise, installation))
        for route in self._settings.routes:
            if route.types and alarm_type not in route.types:
                continue
            if route.priorities and priority not in route.priorities:
                continue
            if route.grades and grade not in route.grades:
                continue
            return route.name
        return ""

    def route(self, name: str) -> Route | None:
        return self._routes.get(name)

    def feedback_due_min(self, alarm_type: AlarmType, priority: Priority) -> float | None:
        if alarm_type is AlarmType.SYSTEM:
            return None
        return self._settings.feedback.due_min.get(priority)

    def deliveries(
        self,
        alarm: Alarm,
        kind: EventKind,
        route: str,
        roles: Sequence[str] | None = None,
        *,
        feeds: bool = True,
    ) -> list[Delivery]:
        rows = [Delivery(feed) for feed in self.feeds] if feeds else []
        if roles is None:
            roles = self._roles_of(kind, self.route(route))
        if not roles or alarm.state in QUIET:
            return rows
        people = self.directory.people(alarm.enterprise, roles)
        return rows + self._reach(people, self._channels(alarm, self.route(route)))

    def _roles_of(self, kind: EventKind, route: Route | None) -> Sequence[str]:
        if kind in {"raised", "unshelved", "unsuppressed"}:
            return route.notify if route is not None else ()
        if kind == "feedback":
            return self._settings.feedback.verifiers
        if kind == "rejected" and route is not None:
            return [r for r in told(route, len(route.escalate)) if r in ENTERPRISE_ROLES]
        return ()

    def _channels(self, alarm: Alarm, route: Route | None) -> tuple[str, ...]:
        channels = route.channels if route is not None and route.channels else PEOPLE_CHANNELS
        failing = ""
        if alarm.type is AlarmType.SYSTEM and alarm.tag.startswith(CHANNEL_ALARM_PREFIX):
            failing = alarm.tag.removeprefix(CHANNEL_ALARM_PREFIX)
        return tuple(c for c in channels if c in self.people_channels and c != failing)

    def _reach(self, people: list[Person], channels: tuple[str, ...]) -> list[Delivery]:
        rows: list[Delivery] = []
        reached: set[str] = set()
        for channel in channels:
            if channel == "console":
                rows.append(Delivery(channel, "console", tuple(p.key for p in people)))
                reached.update(p.key for p in people)
                continue
            groups: dict[str, list[str]] = {}
            for person in people:
                if channel in GROUP_CHANNELS:
                    robots = self.directory.robots(person.org)
                    if getattr(robots, channel):
                        groups.setdefault(person.org, []).append(person.key)
                        reached.add(person.key)
                elif person.address(channel):
                    rows.append(Delivery(channel, person.key))
                    reached.add(person.key)
            rows.extend(Delivery(channel, org, tuple(keys)) for org, keys in groups.items())
        language = self._settings.language
        for person in people:
            if person.key not in reached and channels:
                rows.append(  # noqa: PERF401 - one error text per person, built here
                    Delivery(
                        UNREACHABLE,
                        person.key,
                        error=f"{person.key} ({person.label(language)}) has no address on "
                        f"any of the route's channels: {', '.join(channels)}",
                    )
                )
        return rows
