"""DetectorEngine: which detectors each point gets, updates, ticks, gateways, restore."""

from __future__ import annotations

from detectors.electricity import SuspendedLoadDetector
from detectors.engine import DetectorEngine
from detectors.fault import FaultDetector
from detectors.roc import RocDetector
from detectors.stale import StaleDetector
from detectors.stuck import StuckDetector
from detectors.threshold import LimitDetector
from detectors.trend import TrendDetector
from hazwatch.metrics import Metrics
from hazwatch.models import (
    AlarmType,
    Enterprise,
    EnterpriseStatus,
    GatewayState,
    GatewayStatus,
    Installation,
    Point,
    PointKind,
    Quality,
    Reading,
    Registry,
)
from hazwatch.settings import DetectorSettings

T0 = 1_763_820_000_000


def point(tag: str, kind: PointKind = PointKind.LEVEL, **extra: float | str) -> Point:
    values: dict[str, object] = {"unit": "m", **extra}
    return Point(
        enterprise="E001",
        installation="MH01",
        tag=tag,
        name=tag,
        kind=kind,
        **values,  # type: ignore[arg-type]
    )


def registry(*extra: Point, status: EnterpriseStatus = EnterpriseStatus.OPERATING) -> Registry:
    points = (
        point("LIMITS_AND_INTERVAL", h=10.0, hh=11.0, deadband=0.1, interval_s=5),
        point("LIMITS_ONLY", l=1.0, trend_horizon_s=0),
        point("INTERVAL_ONLY", interval_s=10),
        point("NOTHING"),
        point("RANGE", PointKind.PRESSURE, min=0, max=50, h=20, roc_per_min=5, stuck_s=60),
        *extra,
    )
    installation = Installation(id="MH01", name="Tank farm", grade=2, points=points)
    enterprise = Enterprise(
        id="E001", name="Example", grid="G1", status=status, installations=(installation,)
    )
    return Registry(enterprises={"E001": enterprise})


def reading(
    tag: str, value: float, ts_ms: int = T0, gateway: str = "gw1", quality: Quality = Quality.GOOD
) -> Reading:
    return Reading("E001", gateway, tag, value, ts_ms, quality)


def kinds(engine: DetectorEngine, tag: str) -> list[type]:
    return [type(d) for d in engine.detectors("E001", tag)]


def changes_of(found: list) -> list[tuple[str, AlarmType, bool]]:  # type: ignore[type-arg]
    return [(c.tag, c.type, c.active) for c in found]


def test_each_point_gets_the_detectors_its_row_asks_for() -> None:
    engine = DetectorEngine(registry(), DetectorSettings(), T0)
    assert kinds(engine, "LIMITS_AND_INTERVAL") == [
        StaleDetector,
        FaultDetector,
        LimitDetector,
        TrendDetector,
    ]
    assert kinds(engine, "LIMITS_ONLY") == [FaultDetector, LimitDetector]  # trend off: 0
    assert kinds(engine, "INTERVAL_ONLY") == [StaleDetector, FaultDetector]
    assert kinds(engine, "NOTHING") == [FaultDetector]
    assert kinds(engine, "RANGE") == [
        FaultDetector,
        LimitDetector,
        RocDetector,
        TrendDetector,
        StuckDetector,
    ]
    assert kinds(engine, "UNKNOWN") == []


def test_electricity_points_get_default_limits_and_suspended_power_is_watched() -> None:
    extra = (
        point("RC01", PointKind.RESIDUAL_CURRENT, unit="mA"),
        point("RC02", PointKind.RESIDUAL_CURRENT, unit="A"),  # not the defaults' unit
        point("P01", PointKind.POWER, unit="kW"),
    )
    engine = DetectorEngine(registry(*extra), DetectorSettings(), T0)
    assert LimitDetector in kinds(engine, "RC01")
    assert LimitDetector not in kinds(engine, "RC02")
    assert SuspendedLoadDetector not in kinds(engine, "P01")  # operating
    assert changes_of(engine.update([reading("RC01", 320.0)], T0)) == [("RC01", AlarmType.H, True)]
    suspended = DetectorEngine(
        registry(*extra, status=EnterpriseStatus.SUSPENDED),
        DetectorSettings(suspended_standby=5, suspended_delay_s=30),
        T0,
    )
    assert SuspendedLoadDetector in kinds(suspended, "P01")
    assert suspended.update([reading("P01", 50.0, T0)], T0) == []
    assert changes_of(suspended.update([reading("P01", 60.0, T0 + 30_000)], T0 + 30_000)) == [
        ("P01", AlarmType.SUSPENDED_LOAD, True)
    ]


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
    assert changes_of(changes) == [
        ("LIMITS_AND_INTERVAL", AlarmType.H, True),
        ("LIMITS_AND_INTERVAL", AlarmType.HH, True),
        ("LIMITS_ONLY", AlarmType.L, True),
    ]
    assert engine.update([reading("LIMITS_AND_INTERVAL", 11.4)], T0 + 1) == []
    assert metrics.value("hazwatch_detector_conditions_total", {"type": "H", "active": "true"}) == 1
    assert metrics.value("hazwatch_detector_conditions_total", {"type": "L", "active": "true"}) == 1


def test_disabled_types_are_not_raised_and_not_counted() -> None:
    metrics = Metrics()
    settings = DetectorSettings(disabled=(AlarmType.HH, AlarmType.STALE))
    engine = DetectorEngine(registry(), settings, T0, metrics)
    changes = engine.update([reading("LIMITS_AND_INTERVAL", 11.5)], T0)
    assert changes_of(changes) == [("LIMITS_AND_INTERVAL", AlarmType.H, True)]
    late = T0 + 3_600_000  # every watched point long overdue
    assert AlarmType.STALE not in {c.type for c in engine.tick(late)}
    counted = {"type": "HH", "active": "true"}
    assert metrics.value("hazwatch_detector_conditions_total", counted) == 0
    enabled = DetectorEngine(registry(), DetectorSettings(), T0)
    assert AlarmType.STALE in {c.type for c in enabled.tick(late)}


def test_a_faulty_instrument_raises_fault_only_and_no_process_alarm() -> None:
    engine = DetectorEngine(registry(), DetectorSettings(), T0)
    # 75 kPa is above H (20) but outside the instrument range [0, 50]
    assert changes_of(engine.update([reading("RANGE", 75.0)], T0)) == [
        ("RANGE", AlarmType.FAULT, True)
    ]
    bad = reading("RANGE", 30.0, T0 + 1000, quality=Quality.BAD)
    assert engine.update([bad], T0 + 1000) == []
    # sound again and above H: FAULT clears, H is raised from the good value
    assert changes_of(engine.update([reading("RANGE", 30.0, T0 + 2000)], T0 + 2000)) == [
        ("RANGE", AlarmType.FAULT, False),
        ("RANGE", AlarmType.H, True),
    ]
    # a bad reading while H is active raises FAULT and leaves H as it was
    bad = reading("RANGE", 1.0, T0 + 3000, quality=Quality.BAD)
    assert changes_of(engine.update([bad], T0 + 3000)) == [("RANGE", AlarmType.FAULT, True)]
    assert changes_of(engine.update([reading("RANGE", 1.0, T0 + 4000)], T0 + 4000)) == [
        ("RANGE", AlarmType.FAULT, False),
        ("RANGE", AlarmType.H, False),
    ]


def test_tick_raises_stale_once_and_a_reading_clears_it() -> None:
    metrics = Metrics()
    engine = DetectorEngine(registry(), DetectorSettings(stale_factor=3), T0, metrics)
    assert engine.tick(T0 + 15_000) == []
    assert changes_of(engine.tick(T0 + 15_001)) == [("LIMITS_AND_INTERVAL", AlarmType.STALE, True)]
    assert engine.tick(T0 + 20_000) == []
    assert changes_of(engine.tick(T0 + 30_001)) == [("INTERVAL_ONLY", AlarmType.STALE, True)]
    assert engine.tick(T0 + 100_000) == []
    changes = engine.update([reading("LIMITS_AND_INTERVAL", 5.0, T0 + 100_500)], T0 + 100_500)
    assert changes_of(changes) == [("LIMITS_AND_INTERVAL", AlarmType.STALE, False)]
    stale = {"type": "STALE", "active": "true"}
    assert metrics.value("hazwatch_detector_conditions_total", stale) == 2
    stale["active"] = "false"
    assert metrics.value("hazwatch_detector_conditions_total", stale) == 1


def gateway_registry() -> Registry:
    points = (*(point(f"G{n}", interval_s=5) for n in range(3)), point("OTHER", interval_s=5))
    installation = Installation(id="MH01", name="Tank farm", grade=2, points=points)
    enterprise = Enterprise(id="E001", name="Example", grid="G1", installations=(installation,))
    return Registry(enterprises={"E001": enterprise})


def test_a_silent_gateway_is_one_gateway_offline_and_no_stale() -> None:
    engine = DetectorEngine(gateway_registry(), DetectorSettings(stale_factor=3), T0)
    engine.update([reading(f"G{n}", 1.0, T0, "gwA") for n in range(3)], T0)
    engine.update([reading("OTHER", 1.0, T0, "gwB")], T0)
    # gwB keeps reporting, gwA went silent
    for k in range(1, 5):
        now = T0 + k * 5_000
        engine.update([reading("OTHER", 1.0, now, "gwB")], now)
    [offline] = engine.tick(T0 + 20_000)
    assert (offline.type, offline.tag, offline.installation, offline.active) == (
        AlarmType.GATEWAY_OFFLINE,
        "gwA",
        "MH01",
        True,
    )
    assert engine.offline_gateways() == [("E001", "gwA")]
    # its points are suppressed (no STALE); gwB, silent since 20 s, is offline too now
    assert changes_of(engine.tick(T0 + 60_000)) == [("gwB", AlarmType.GATEWAY_OFFLINE, True)]
    # one point of gwA reports: the gateway is back; the others get a fresh allowance
    back = engine.update([reading("G0", 1.0, T0 + 61_000, "gwA")], T0 + 61_000)
    assert changes_of(back) == [("gwA", AlarmType.GATEWAY_OFFLINE, False)]
    assert engine.tick(T0 + 75_000) == []
    # ...and, if still silent after it while G0 reports, go STALE on their own
    engine.update([reading("G0", 1.0, T0 + 72_000, "gwA")], T0 + 72_000)
    engine.update([reading("OTHER", 1.0, T0 + 72_000, "gwB")], T0 + 72_000)
    assert sorted(changes_of(engine.tick(T0 + 76_001))) == [
        ("G1", AlarmType.STALE, True),
        ("G2", AlarmType.STALE, True),
    ]


def test_gateway_status_offline_and_online() -> None:
    engine = DetectorEngine(gateway_registry(), DetectorSettings(stale_factor=3), T0)
    engine.update([reading(f"G{n}", 1.0, T0, "gwA") for n in range(3)], T0)
    down = GatewayStatus("E001", "gwA", GatewayState.OFFLINE, T0 + 1000)
    assert changes_of(engine.gateway_status(down, T0 + 1000)) == [
        ("gwA", AlarmType.GATEWAY_OFFLINE, True)
    ]
    assert engine.gateway_status(down, T0 + 2000) == []  # said again: nothing new
    ticked = engine.tick(T0 + 30_000)
    assert all(c.tag == "OTHER" for c in ticked)  # gwA's points are suppressed
    up = GatewayStatus("E001", "gwA", GatewayState.ONLINE, T0 + 31_000)
    [cleared] = engine.gateway_status(up, T0 + 31_000)
    assert (cleared.tag, cleared.installation, cleared.active) == ("gwA", "MH01", False)
    assert engine.gateway_status(up, T0 + 32_000) == []
    unknown = GatewayStatus("E001", "gwZ", GatewayState.OFFLINE, T0)
    [raised] = engine.gateway_status(unknown, T0 + 33_000)
    assert (raised.tag, raised.installation) == ("gwZ", "")


def test_chattering_points_are_counted_and_listed() -> None:
    metrics = Metrics()
    engine = DetectorEngine(registry(), DetectorSettings(), T0, metrics)
    values = [0.5, 2.0, 0.5, 2.0, 0.5]  # L on, off, on, off, on: no deadband
    for k, value in enumerate(values):
        engine.update([reading("LIMITS_ONLY", value, T0 + k * 10_000)], T0 + k * 10_000)
    [chatter] = engine.chattering()
    assert (chatter.tag, chatter.type, chatter.flips) == ("LIMITS_ONLY", "L", 3)
    assert metrics.value("hazwatch_detector_chattering_total") == 1
    engine.tick(T0 + 50_000)
    assert metrics.value("hazwatch_detector_chattering_points") == 1
    engine.tick(T0 + 200_000)
    assert engine.chattering() == []
    assert metrics.value("hazwatch_detector_chattering_points") == 0


def test_the_example_registry_builds(example_registry: Registry) -> None:
    engine = DetectorEngine(example_registry, DetectorSettings(), T0)
    assert kinds(engine, "ESD201_ZSC") == [StaleDetector, FaultDetector]  # a state point
    assert LimitDetector in kinds(engine, "TK101_LT")
    changes = engine.update([reading("TK101_LT", 11.2)], T0)
    assert [c.message for c in changes][-1] == "Tank 101 level 11.2 m above HH 11.0 m"


def test_restore_lets_conditions_from_before_a_restart_clear_and_not_rise_again() -> None:
    engine = DetectorEngine(registry(), DetectorSettings(), T0)
    engine.restore(
        [
            ("E001", "LIMITS_AND_INTERVAL", AlarmType.HH),
            ("E001", "INTERVAL_ONLY", AlarmType.STALE),
            ("E001", "LIMITS_ONLY", AlarmType.HH),  # no such limit there: ignored
            ("E001", "UNKNOWN", AlarmType.H),  # not in the registry any more: ignored
            ("E001", "RANGE", AlarmType.FAULT),
            ("E001", "RANGE", AlarmType.STUCK),
            ("E001", "RANGE", AlarmType.ROC),
        ]
    )
    changes = engine.update(
        [
            reading("LIMITS_AND_INTERVAL", 11.5),  # still above HH: not raised again
            reading("INTERVAL_ONLY", 1.0),
            reading("LIMITS_ONLY", 5.0),
            reading("RANGE", 99.0),  # still faulty: nothing
        ],
        T0,
    )
    assert changes_of(changes) == [
        ("LIMITS_AND_INTERVAL", AlarmType.H, True),  # H was not open: raised
        ("INTERVAL_ONLY", AlarmType.STALE, False),
    ]
    changes = engine.update([reading("LIMITS_AND_INTERVAL", 5.0, T0 + 1)], T0 + 1)
    assert changes_of(changes) == [
        ("LIMITS_AND_INTERVAL", AlarmType.HH, False),
        ("LIMITS_AND_INTERVAL", AlarmType.H, False),
    ]
    assert changes_of(engine.update([reading("RANGE", 10.0, T0 + 2)], T0 + 2)) == [
        ("RANGE", AlarmType.FAULT, False)
    ]
    # STUCK stays active on the first value seen, clears when the value moves
    assert engine.update([reading("RANGE", 10.0, T0 + 3)], T0 + 3) == []
    assert changes_of(engine.update([reading("RANGE", 10.5, T0 + 4)], T0 + 4)) == [
        ("RANGE", AlarmType.STUCK, False)
    ]


def test_restored_limit_alarm_clears_on_the_first_reading_even_a_normal_one() -> None:
    """After a restart the first reading may already be back to normal (the value
    returned while the service was down, or readings replayed from the spool): it
    clears the restored alarm, and the next excursion raises it again."""
    engine = DetectorEngine(registry(), DetectorSettings(), T0)
    engine.restore([("E001", "LIMITS_AND_INTERVAL", AlarmType.HH)])
    changes = engine.update([reading("LIMITS_AND_INTERVAL", 5.0)], T0)
    assert changes_of(changes) == [("LIMITS_AND_INTERVAL", AlarmType.HH, False)]
    changes = engine.update([reading("LIMITS_AND_INTERVAL", 11.5, T0 + 1)], T0 + 1)
    assert ("LIMITS_AND_INTERVAL", AlarmType.HH, True) in changes_of(changes)


def test_restore_of_an_offline_gateway_keeps_its_points_quiet() -> None:
    engine = DetectorEngine(gateway_registry(), DetectorSettings(stale_factor=3), T0)
    engine.restore([("E001", "gwA", AlarmType.GATEWAY_OFFLINE, "MH01")])
    assert engine.offline_gateways() == [("E001", "gwA")]
    # OTHER (on gwB) reports: it is re-assigned; gwA's unseen points stay suppressed
    for k in range(5):
        engine.update([reading("OTHER", 1.0, T0 + k * 5000, "gwB")], T0 + k * 5000)
    assert engine.tick(T0 + 20_000) == []
    [back] = engine.update([reading("G1", 1.0, T0 + 21_000, "gwA")], T0 + 21_000)
    assert (back.type, back.tag, back.installation, back.active) == (
        AlarmType.GATEWAY_OFFLINE,
        "gwA",
        "MH01",
        False,
    )


def test_a_late_reading_changes_no_alarm_and_is_counted() -> None:
    metrics = Metrics()
    engine = DetectorEngine(registry(), DetectorSettings(), T0, metrics)
    tag = "LIMITS_AND_INTERVAL"  # H 10.0, HH 11.0, deadband 0.1
    raised = engine.update([reading(tag, 10.5, T0 + 10_000)], T0 + 10_000)
    assert changes_of(raised) == [(tag, AlarmType.H, True)]
    # A buffered reading from before the crossing arrives after it: no clear.
    assert engine.update([reading(tag, 9.0, T0 + 5_000)], T0 + 11_000) == []
    assert engine.update([reading(tag, 10.4, T0 + 12_000)], T0 + 12_000) == []
    engine.tick(T0 + 12_000)
    assert metrics.value("hazwatch_detector_late_readings_total") == 1
    # The present still clears it.
    cleared = engine.update([reading(tag, 9.0, T0 + 13_000)], T0 + 13_000)
    assert changes_of(cleared) == [(tag, AlarmType.H, False)]


def test_a_gateway_clock_ahead_does_not_blind_the_point() -> None:
    engine = DetectorEngine(registry(), DetectorSettings(), T0)
    tag = "LIMITS_AND_INTERVAL"
    # Stamped four minutes ahead (inside the ingest window), received at T0.
    assert engine.update([reading(tag, 5.0, T0 + 240_000)], T0) == []
    # The gateway's clock is corrected: the next reading, on time, is judged.
    found = engine.update([reading(tag, 10.5, T0 + 5_000)], T0 + 5_000)
    assert changes_of(found) == [(tag, AlarmType.H, True)]


def test_per_point_state_is_slotted_and_shares_what_is_immutable() -> None:
    """Memory per point (bench/memory.py, bench/detectors.py measure the bytes; this
    guards the shape): no __dict__ in any per-point object, one limit set and one window
    size for points with the same columns."""
    a = point("A", h=10.0, hh=11.0, deadband=0.5, interval_s=5.0)
    b = point("B", h=10.0, hh=11.0, deadband=0.5, interval_s=5.0)
    engine = DetectorEngine(registry(a, b), DetectorSettings(), T0)
    ma, mb = engine.monitor("E001", "A"), engine.monitor("E001", "B")
    assert ma is not None
    assert mb is not None
    for m in (ma, mb):
        objects = [m, m.fault, m.limits, m.window, m.trend, m.watch]
        assert all(o is not None and not hasattr(o, "__dict__") for o in objects)
    assert ma.limits is not None
    assert mb.limits is not None
    assert ma.limits._limits is mb.limits._limits
    assert ma.window is not None
    assert mb.window is not None
    assert ma.window._bucket_ms is mb.window._bucket_ms
