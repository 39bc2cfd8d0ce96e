"""Factories for alerting tests: conditions and journals on temporary files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alerting.journal import Journal
from hazwatch.models import (
    Alarm,
    AlarmEvent,
    AlarmState,
    AlarmType,
    Condition,
    Priority,
    ms_to_iso,
)

T0 = 1_763_820_000_000

MakeCondition = Callable[..., Condition]


@pytest.fixture
def make_condition() -> MakeCondition:
    def make(
        active: bool = True,
        value: float | None = 11.2,
        *,
        type: AlarmType = AlarmType.HH,  # noqa: A002 - the field's name
        tag: str = "TK101_LT",
        enterprise: str = "E001",
        installation: str = "MH01",
        limit: float | None = 11.0,
        ts_ms: int = T0,
        message: str | None = None,
    ) -> Condition:
        if message is None:
            where = "above" if active else "back below"
            message = f"Tank 101 level {value} m {where} {type} {limit} m"
        return Condition(enterprise, installation, tag, type, active, value, limit, ts_ms, message)

    return make


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "alarms" / "journal.db"  # parent directories do not exist yet


@pytest.fixture
def journal(journal_path: Path) -> Iterator[Journal]:
    with Journal(journal_path, ["webhook", "mqtt"]) as opened:
        yield opened


@pytest.fixture
def event() -> AlarmEvent:
    alarm = Alarm(
        id="01KANXTMVVWNRR89RWGZDEPE5H",
        enterprise="E001",
        installation="MH01",
        tag="TK101_LT",
        type=AlarmType.HH,
        priority=Priority.CRITICAL,
        state=AlarmState.ACTIVE_UNACK,
        value=11.2,
        limit=11.0,
        raised_at=ms_to_iso(T0),
        cleared_at=None,
        message="Tank 101 level 11.2 m above HH 11.0 m",
    )
    return AlarmEvent(alarm=alarm, previous_state=None, kind="raised", at=ms_to_iso(T0), seq=1)
