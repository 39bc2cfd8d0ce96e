"""Shared fixtures: real servers on free loopback ports, and factories."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from hazwatch.app import Hazwatch
from hazwatch.clock import Clock
from hazwatch.models import Quality, Reading, Registry
from hazwatch.registry import load_registry
from hazwatch.settings import Settings, load_settings
from tests.helpers import eventually
from tests.servers import Influxd, Mosquitto

EXAMPLES = Path(__file__).resolve().parent.parent / "simulators" / "examples"
EXAMPLE_REGISTRY = EXAMPLES / "registry"
_db_numbers = itertools.count(1)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh Mosquitto broker for one test."""
    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def influxd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One influxd for the whole run (it takes ~1 s to start); tests use own databases."""
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def influx_db(influxd_server: Influxd) -> str:
    """A database name no other test uses (created by the sink under test)."""
    return f"test_{next(_db_numbers)}"


@pytest.fixture(scope="session")
def example_registry() -> Registry:
    return load_registry(EXAMPLE_REGISTRY)


@pytest.fixture
def make_reading() -> Callable[..., Reading]:
    def make(
        tag: str = "TK101_LT",
        value: float = 5.0,
        ts_ms: int = 1_763_820_000_000,
        *,
        enterprise: str = "E001",
        gateway: str = "gw1",
        quality: Quality = Quality.GOOD,
    ) -> Reading:
        return Reading(enterprise, gateway, tag, value, ts_ms, quality)

    return make


class RunService(Protocol):
    def __call__(
        self,
        overrides: Mapping[str, Any],
        *,
        clock: Clock | None = None,
        registry: Registry | None = None,
    ) -> Awaitable[Hazwatch]: ...


def service_settings(
    tmp_path: Path, mosquitto: Mosquitto, overrides: Mapping[str, Any]
) -> Settings:
    """The service's settings in tests: the test's Mosquitto, SQLite storage, journal,
    spool and console users in ``tmp_path``, the console on a free port; ``overrides``
    (dotted keys) must include ``registry``."""
    return load_settings(
        None,
        environ={},
        overrides={
            "mqtt.url": mosquitto.url,
            "mqtt.client_id": "hazwatch-test",
            "storage.backend": "sqlite",
            "storage.path": str(tmp_path / "readings.db"),
            "journal.path": str(tmp_path / "journal.db"),
            "ingest.spool_path": str(tmp_path / "spool.db"),
            "console.listen": "127.0.0.1:0",
            "console.db": str(tmp_path / "console.db"),
            **overrides,
        },
    )


@pytest.fixture
async def run_service(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[RunService]:
    """Start the real service in this event loop; stopped after the test.

    Defaults: the test's Mosquitto, SQLite storage, journal and spool in ``tmp_path``,
    the console on a free port. ``overrides`` are dotted settings keys
    (``{"storage.backend": "influxdb"}``) and must include ``registry``. ``clock``: the
    service's clock (default: the system's); ``registry``: instead of loading the one
    the settings name (a scenario's premises change it).
    """
    running: list[tuple[Hazwatch, asyncio.Task[Registry | None]]] = []

    async def run(
        overrides: Mapping[str, Any],
        *,
        clock: Clock | None = None,
        registry: Registry | None = None,
    ) -> Hazwatch:
        settings = service_settings(tmp_path, mosquitto, overrides)
        if registry is None:
            registry = load_registry(settings.registry)
        service = Hazwatch(settings, registry, clock=clock)
        await service.__aenter__()
        running.append((service, asyncio.create_task(service.run())))
        await eventually(
            lambda: all(source.connected for source in service.sources), what="ingest subscribed"
        )
        return service

    yield run
    for service, task in running:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.__aexit__(None, None, None)
