"""Shared fixtures: real servers on free loopback ports, and factories."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hazwatch.models import Quality, Reading, Registry
from hazwatch.registry import load_registry
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
