"""Scenario files: which signals a simulated site produces, and what happens when.

A scenario is TOML::

    name = "Tank 101 overfill"
    duration_s = 300          # length of one run of the timeline
    seed = 42                 # same seed, same values
    noise = 0.005             # default noise, as a fraction of the instrument range

    [[signals]]               # optional: baseline per point (default: mid-band)
    enterprise = "E001"
    tag = "TK101_LT"
    start = 8.0
    noise = 0.002

    [[events]]                # the timeline
    at_s = 20
    enterprise = "E001"
    tag = "TK101_LT"
    ramp_to = 11.6            # linear change ...
    over_s = 30               # ... over this many seconds (0 or absent: a step)

Every registered point is simulated; ``signals`` and ``events`` name points of the
registry (checked on load). Issue 7 extends this format with faults (stuck, drift,
disconnects, malformed payloads) and expected alarms.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hazwatch.errors import ConfigError
from hazwatch.models import Registry


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Signal(_Frozen):
    enterprise: str
    tag: str
    start: float | None = None
    noise: float | None = Field(default=None, ge=0)


class Event(_Frozen):
    at_s: float = Field(ge=0)
    enterprise: str
    tag: str
    ramp_to: float
    over_s: float = Field(default=0, ge=0)


class Scenario(_Frozen):
    name: str
    description: str = ""
    duration_s: float = Field(default=300, gt=0)
    seed: int = 0
    noise: float = Field(default=0.005, ge=0)
    signals: tuple[Signal, ...] = ()
    events: tuple[Event, ...] = ()


def load_scenario(path: Path, registry: Registry) -> Scenario:
    """Read and validate a scenario against the registry; ``ConfigError`` says where."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: scenario file not found") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc}") from exc
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
    for where, item in [("signals", s) for s in scenario.signals] + [
        ("events", e) for e in scenario.events
    ]:
        if registry.point(item.enterprise, item.tag) is None:
            raise ConfigError(
                f"{path}: {where}: point {item.enterprise}/{item.tag} is not in the registry"
            )
    return scenario
