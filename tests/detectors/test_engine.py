"""DetectorEngine: which detectors each point gets, updates, ticks and counts."""

from __future__ import annotations

from detectors.engine import DetectorEngine
from detectors.stale import StaleDetector
from detectors.threshold import LimitDetector
from hazwatch.metrics import Metrics
from hazwatch.models import (
    AlarmType,
    Enterprise,
    Installation,
    Point,
    PointKind,
    Reading,
    Registry,
)
from hazwatch.settings import DetectorSettings

T0 = 1_763_820_000_000


def registry() -> Registry:
    def point(tag: str, **extra: float) -> Point:
        return Point(
            enterprise="E001",
            installation="MH01",
            tag=tag,
            name=tag,
            kind=PointKind.LEVEL,
            unit="m",
            **extra,
        )

    points = (
        point("LIMITS_AND_INTERVAL", h=10.0, hh=11.0, deadband=0.1, interval_s=5),
        point("LIMITS_ONLY", l=1.0),
        point("INTERVAL_ONLY", interval_s=10),
        point("NOTHING"),
    )
    installation = Installation(id="MH01", name="Tank farm", grade=2, points=points)
    enterprise = Enterprise(id="E001", name="Example", grid="G1", installations=(installation,))
    return Registry(enterprises={"E001": enterprise})


def reading(tag: str, value: float, ts_ms: int = T0) -> Reading:
    return Reading("E001", "gw1", tag, value, ts_ms)


def kinds(engine: DetectorEngine, tag: str) -> list[type]:
    return [type(d) for d in engine.detectors("E001", tag)]


def test_each_point_gets_the_detectors_its_row_asks_for() -> None:
    engine = DetectorEngine(registry(), DetectorSettings(), T0)
    assert kinds(engine, "LIMITS_AND_INTERVAL") == [LimitDetector, StaleDetector]
    assert kinds(engine, "LIMITS_ONLY") == [LimitDetector]
    assert kinds(engine, "INTERVAL_ONLY") == [StaleDetector]
    assert kinds(engine, "NOTHING") == []
    assert kinds(engine, "UNKNOWN") == []


def test_update_returns_limit_changes_and_ignores_unknown_points() -> None:
    metrics = Metrics()
    engine = DetectorEngine(registry(), DetectorSettings(), T0, metrics)
    changes = engine.update(
        [
            reading("UNKNOWN", 99.0),
            reading("LIMITS_AND_INTERVAL", 11.5),
            reading("LIMITS_ONLY", 0.5),
        ],
        T0,
    )
    assert [(c.tag, c.type, c.active) for c in changes] == [
        ("LIMITS_AND_INTERVAL", AlarmType.H, True),
        ("LIMITS_AND_INTERVAL", AlarmType.HH, True),
        ("LIMITS_ONLY", AlarmType.L, True),
    ]
    assert engine.update([reading("LIMITS_AND_INTERVAL", 11.4)], T0 + 1) == []
    assert metrics.value("hazwatch_detector_conditions_total", {"type": "H", "active": "true"}) == 1
    assert metrics.value("hazwatch_detector_conditions_total", {"type": "L", "active": "true"}) == 1


def test_tick_raises_stale_once_and_a_reading_clears_it() -> None:
    metrics = Metrics()
    engine = DetectorEngine(registry(), DetectorSettings(stale_factor=3), T0, metrics)
    assert engine.tick(T0 + 15_000) == []
    assert [(c.tag, c.active) for c in engine.tick(T0 + 15_001)] == [("LIMITS_AND_INTERVAL", True)]
    assert engine.tick(T0 + 20_000) == []
    assert [(c.tag, c.active) for c in engine.tick(T0 + 30_001)] == [("INTERVAL_ONLY", True)]
    assert engine.tick(T0 + 100_000) == []
    changes = engine.update([reading("LIMITS_AND_INTERVAL", 5.0, T0 + 100_500)], T0 + 100_500)
    assert [(c.tag, c.type, c.active) for c in changes] == [
        ("LIMITS_AND_INTERVAL", AlarmType.STALE, False)
    ]
    stale = {"type": "STALE", "active": "true"}
    assert metrics.value("hazwatch_detector_conditions_total", stale) == 2
    stale["active"] = "false"
    assert metrics.value("hazwatch_detector_conditions_total", stale) == 1


def test_the_example_registry_builds(example_registry: Registry) -> None:
    engine = DetectorEngine(example_registry, DetectorSettings(), T0)
    assert kinds(engine, "ESD201_ZSC") == [StaleDetector]  # a state point: no limits
    assert kinds(engine, "TK101_LT") == [LimitDetector, StaleDetector]
    changes = engine.update([reading("TK101_LT", 11.2)], T0)
    assert [c.message for c in changes][-1] == "Tank 101 level 11.2 m above HH 11.0 m"


def test_restore_lets_conditions_from_before_a_restart_clear() -> None:
    engine = DetectorEngine(registry(), DetectorSettings(), T0)
    engine.restore(
        [
            ("E001", "LIMITS_AND_INTERVAL", AlarmType.HH),
            ("E001", "INTERVAL_ONLY", AlarmType.STALE),
            ("E001", "LIMITS_ONLY", AlarmType.HH),  # no such limit there: ignored
            ("E001", "UNKNOWN", AlarmType.H),  # not in the registry any more: ignored
        ]
    )
    changes = engine.update(
        [
            reading("LIMITS_AND_INTERVAL", 5.0),
            reading("INTERVAL_ONLY", 1.0),
            reading("LIMITS_ONLY", 5.0),
        ],
        T0,
    )
    assert [(c.tag, c.type, c.active) for c in changes] == [
        ("LIMITS_AND_INTERVAL", AlarmType.HH, False),
        ("INTERVAL_ONLY", AlarmType.STALE, False),
    ]
