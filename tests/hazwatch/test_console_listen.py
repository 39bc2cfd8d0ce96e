"""``[console] listen`` on an address others can reach needs a console user first."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles

from dashboards.users import ConsoleDb
from hazwatch.app import Hazwatch
from hazwatch.errors import ConfigError
from hazwatch.registry import load_registry
from hazwatch.settings import Settings, load_settings


def _settings(tmp_path: Path, listen: str) -> Settings:
    return load_settings(
        None,
        environ={},
        overrides={
            "registry": "simulators/examples/registry",
            "storage.path": str(tmp_path / "readings.db"),
            "journal.path": str(tmp_path / "journal.db"),
            "ingest.spool_path": str(tmp_path / "spool.db"),
            "console.listen": listen,
            "console.db": str(tmp_path / "console.db"),
        },
    )


async def test_a_network_address_without_any_user_is_refused_in_one_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "0.0.0.0:0")
    service = Hazwatch(settings, load_registry(settings.registry))
    with pytest.raises(ConfigError) as refused:
        await service.__aenter__()
    message = str(refused.value)
    assert message.startswith("console.listen: 0.0.0.0 is reachable from other machines")
    assert "hazwatch user add" in message
    assert "\n" not in message


async def test_a_network_address_with_a_user_starts(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "0.0.0.0:0")
    db = ConsoleDb(settings.console.db, PasswordHasher.from_parameters(profiles.CHEAPEST))
    db.add("admin", "a long enough password", "admin", now_ms=0)
    db.close()
    service = Hazwatch(settings, load_registry(settings.registry))
    async with service:
        assert service.console_port


async def test_loopback_starts_without_users(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "127.0.0.1:0")
    async with Hazwatch(settings, load_registry(settings.registry)) as service:
        assert service.console.users is not None
        assert service.console.users.user_count() == 0
