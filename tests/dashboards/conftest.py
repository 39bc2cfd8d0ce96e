"""A real console: every collaborator is the real class, on temporary files.

``TestClient`` runs the app in its own event-loop thread (an anyio portal). The journal's
SQLite connection, the sink and the feed's asyncio queues belong to that loop, so the
harness opens them there and tests act on them through :meth:`ConsoleHarness.call`.

Every API call needs a session: the harness's client is logged in as ``operator`` (sees
every enterprise; ack, shelve, verify, suppress). ``harness.login(name)`` switches the
client to another of :data:`TEST_USERS` (created on first use, with argon2's cheapest
parameters so tests stay fast) and sends its CSRF token on every request;
``harness.logout_client()`` drops the session.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import pytest
from argon2 import PasswordHasher, profiles
from starlette.exceptions import StarletteDeprecationWarning

from alerting.journal import Journal
from alerting.service import AlarmService
from dashboards.app import create_app
from dashboards.deps import Console
from dashboards.feed import FeedItem, LiveFeed, alarm_item
from dashboards.users import ConsoleDb
from hazwatch.clock import ManualClock
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent, Condition, Reading, Registry
from hazwatch.settings import IngestSettings
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.sqlite import SqliteSink
from ingest.validation import ReadingValidator
from tests.helpers import condition

with warnings.catch_warnings():
    # Starlette 1.x wants httpx2 for its TestClient and warns once, at import, when it
    # falls back to httpx (the project's pinned client); the fallback behaves the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

T = TypeVar("T")

NOW_MS = 1_763_820_000_000  # 2025-11-22T14:00:00.000Z

TEST_PASSWORD = "correct horse battery"
TEST_USERS: dict[str, dict[str, Any]] = {
    "admin": {"role": "admin"},
    "operator": {"role": "operator"},
    "officer3": {"role": "grid_officer", "grids": ("KS-03",)},  # sees E001
    "officer7": {"role": "grid_officer", "grids": ("KS-07",)},  # sees E002
    "ent1": {"role": "enterprise", "enterprises": ("E001",)},
    "ent2": {"role": "enterprise", "enterprises": ("E002",)},
    "operator7": {"role": "operator", "grids": ("KS-07",)},  # an operator of E002's grid only
}
"""The example registry: E001 is in grid KS-03, E002 in KS-07."""


@dataclass
class ConsoleHarness:
    client: TestClient
    console: Console
    clock: ManualClock
    journal: Journal
    service: AlarmService
    sink: SqliteSink
    validator: ReadingValidator
    users: ConsoleDb
    health_report: dict[str, Any] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """name -> (session cookie, csrf) of the users logged in so far."""

    def add_user(self, name: str) -> None:
        if self.users.get(name) is None:
            spec = TEST_USERS[name]
            self.users.add(
                name,
                TEST_PASSWORD,
                spec["role"],
                grids=spec.get("grids", ()),
                enterprises=spec.get("enterprises", ()),
                now_ms=self.clock.now_ms(),
            )

    def login(self, name: str) -> dict[str, Any]:
        """Make the client act as ``name`` (one of TEST_USERS); returns ``/api/me``."""
        if name not in self.sessions:
            self.add_user(name)
            self.client.cookies.clear()
            response = self.client.post(
                "/api/login", json={"username": name, "password": TEST_PASSWORD}
            )
            assert response.status_code == 200, response.text
            self.sessions[name] = (response.cookies["hz_session"], response.json()["csrf"])
        cookie, csrf = self.sessions[name]
        self.client.cookies.clear()
        self.client.cookies.set("hz_session", cookie)
        self.client.headers["X-CSRF-Token"] = csrf
        me = self.client.get("/api/me")
        assert me.status_code == 200, me.text
        return dict(me.json())

    def logout_client(self) -> None:
        """The client without any session or CSRF token (the server's sessions stay)."""
        self.client.cookies.clear()
        self.client.headers.pop("X-CSRF-Token", None)

    @overload
    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...
    @overload
    def call(self, fn: Callable[..., T], *args: Any) -> T: ...
    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (sync or async) in the app's event-loop thread."""
        assert self.client.portal is not None
        return self.client.portal.call(fn, *args)

    def apply(self, *conditions: Condition) -> list[AlarmEvent]:
        return self.call(self.service.handle, list(conditions))

    def store(self, readings: Iterable[Reading]) -> None:
        batch = list(readings)
        self.call(self.sink.write, batch)
        self.call(self.console.latest.update, batch)

    def publish(self, item: FeedItem) -> None:
        self.call(self.console.feed.publish, item)


@pytest.fixture
def make_condition() -> Callable[..., Condition]:
    return functools.partial(condition, ts_ms=NOW_MS)


@pytest.fixture
def harness(tmp_path: Path, example_registry: Registry) -> Iterator[ConsoleHarness]:
    metrics = Metrics()
    clock = ManualClock(NOW_MS)
    limits = IngestSettings()
    journal = Journal(tmp_path / "journal.db", [])
    latest = LatestValues()
    gateways = GatewayTracker(metrics)
    feed = LiveFeed(
        example_registry,
        clock,
        latest,
        gateways,
        open_alarms=lambda: journal.list_alarms(active=True, limit=10_000),
        maxsize=100,
        on_drop=lambda name: metrics.channel_dropped.labels(name).inc(),
    )
    service = AlarmService(
        journal, [], metrics, clock, on_event=lambda event: feed.publish(alarm_item(event))
    )
    sink = SqliteSink(tmp_path / "readings.db", example_registry, metrics)
    validator = ReadingValidator(example_registry, limits, metrics)
    health_report: dict[str, Any] = {"mqtt": "ok", "storage": "ok", "journal": "ok"}
    users = ConsoleDb(tmp_path / "console.db", PasswordHasher.from_parameters(profiles.CHEAPEST))
    console = Console(
        registry=example_registry,
        alarms=service,
        sink=sink,
        latest=latest,
        rejects=RejectLog(limits, metrics),
        unknown_tags=validator.unknown_tags,
        gateways=gateways,
        metrics=metrics,
        feed=feed,
        health=lambda: dict(health_report),
        clock=clock,
        users=users,
    )
    with TestClient(create_app(console)) as client:
        assert client.portal is not None
        client.portal.call(journal.open)
        client.portal.call(sink.__aenter__)
        try:
            harness = ConsoleHarness(
                client=client,
                console=console,
                clock=clock,
                journal=journal,
                service=service,
                sink=sink,
                validator=validator,
                users=users,
                health_report=health_report,
            )
            harness.login("operator")
            yield harness
        finally:
            client.portal.call(sink.__aexit__, None, None, None)
            client.portal.call(journal.close)
            users.close()
