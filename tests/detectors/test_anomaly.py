"""ANOMALY at run time: sampling, persistence and hysteresis, blind periods, the engine,
and a restart with a loaded model — on a fake clock (the readings' times and a
:class:`~hazwatch.clock.ManualClock`).

The model here is made by hand so that its statistics are known exactly: three points
A, B, C in their own units (mean 0, scale 1), one component along A (``λ = 1``), so a
sample ``(a, b, c)`` has ``T² = a²`` and ``SPE = b² + c²``; limits T² 9, SPE 4. A
sample of ``(0, 2.2, 0)`` is over the SPE limit (4.84 > 4); ``(0, 1.9, 0)`` is between
the clearing fraction (0.8 × 4 = 3.2) and the limit; ``(0, 0.5, 0)`` is normal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alerting.journal import Journal
from alerting.lifecycle import ACTIVE
from alerting.service import AlarmService
from detectors.anomaly import AnomalyDetector
from detectors.engine import DetectorEngine
from detectors.normal_model import (
    InstallationModel,
    ModelFile,
    ModelPoint,
    encode,
    registry_sha256,
)
from detectors.pca import PcaModel
from hazwatch.clock import ManualClock
from hazwatch.detection import DetectorFeed
from hazwatch.metrics import Metrics
from hazwatch.models import (
    AlarmType,
    Condition,
    Enterprise,
    Installation,
    Point,
    PointKind,
    Priority,
    Quality,
    Reading,
    Registry,
)
from hazwatch.settings import AnomalySettings, DetectorSettings

T0 = 1_767_571_200_000  # on a period boundary
PERIOD_MS = 10_000
TAGS = ("A", "B", "C")
OVER = (0.0, 2.2, 0.0)
BETWEEN = (0.0, 1.9, 0.0)
NORMAL = (0.0, 0.5, 0.0)


def hand_model(period_s: float = 10.0) -> InstallationModel:
    pca = PcaModel(
        tags=TAGS,
        mean=np.zeros(3),
        scale=np.ones(3),
        loadings=np.array([[1.0], [0.0], [0.0]]),
        eigenvalues=np.array([1.0]),
        explained=np.array([0.5]),
        t2_limit=9.0,
        spe_limit=4.0,
        variance=0.9,
        confidence=0.999,
        train_samples=300,
        holdout_samples=100,
    )
    points = tuple(ModelPoint(t, "other", "", -100.0, 100.0, 10.0) for t in TAGS)
    return InstallationModel("E1", "U1", "U1.normal", period_s, points, pca, T0, T0)


def registry() -> Registry:
    points = tuple(
        Point(
            enterprise="E1",
            installation="U1",
            tag=tag,
            name=tag,
            kind=PointKind.OTHER,
            min=-100,
            max=100,
            interval_s=10,
        )
        for tag in TAGS
    )
    unit = Installation(id="U1", name="Unit 1", grade=2, points=points)
    return Registry(
        enterprises={"E1": Enterprise(id="E1", name="E", grid="G", installations=(unit,))}
    )


def period(detector: AnomalyDetector, k: int, values: tuple[float, ...]) -> list[Condition]:
    """Period ``k``'s readings (at ``T0 + k·10 s + 1 ms``); they are judged by the sample
    the first reading of period ``k + 1`` takes."""
    ts = T0 + k * PERIOD_MS + 1
    found: list[Condition] = []
    for index, value in enumerate(values):
        found += detector.observe(index, value, ts, sound=True)
    return found


def run(detector: AnomalyDetector, plan: Sequence[tuple[float, ...]]) -> list[tuple[int, bool]]:
    """``(period whose values raised or cleared it, active)`` for each change."""
    changes = []
    for k, values in enumerate([*plan, NORMAL]):
        changes += [(k - 1, c.active) for c in period(detector, k, values)]
    return changes


def detector(**settings: Any) -> AnomalyDetector:
    return AnomalyDetector(hand_model(), "Unit 1", AnomalySettings(**settings), stale_factor=3)


def test_three_of_five_raise_and_five_under_the_clearing_fraction_clear() -> None:
    plan = [NORMAL] * 3 + [OVER, NORMAL, NORMAL, NORMAL, OVER]  # never 3 within 5
    plan += [NORMAL, OVER, OVER]  # periods 6..10 hold 3 over the limit: raised at 10
    plan += [BETWEEN] * 6  # under the limit, not under 0.8 of it: stays (hysteresis)
    plan += [NORMAL] * 4 + [BETWEEN] + [NORMAL] * 5  # 4 normal are not 5; then 5 clear it
    assert run(detector(), plan) == [(10, True), (26, False)]


def test_persistence_and_clearing_fraction_come_from_the_settings() -> None:
    assert run(detector(persistence=(1, 1)), [NORMAL, OVER, NORMAL]) == [(1, True), (2, False)]
    # with clear_fraction 0.95, BETWEEN (1.9² = 3.61 < 3.8) counts as back to normal
    plan = [OVER] * 3 + [BETWEEN] * 5
    assert run(detector(clear_fraction=0.95), plan) == [(2, True), (7, False)]


def test_a_stale_a_bad_or_an_unseen_point_makes_the_period_blind_never_a_zero() -> None:
    # C never reports: every period is blind, however far off A and B are
    anomaly = detector()
    changes: list[Condition] = []
    for k in range(6):
        ts = T0 + k * PERIOD_MS + 1
        changes += anomaly.observe(0, 50.0, ts, sound=True) + anomaly.observe(
            1, 50.0, ts, sound=True
        )
    assert (changes, anomaly.judged, anomaly.blind) == ([], 0, 5)

    # B's reading in period 2 is bad (FAULT): that sample is blind, and the window is
    # as it was — raised one period later than with every reading sound
    assert run(detector(), [OVER] * 3) == [(2, True)]
    anomaly = detector()
    found = period(anomaly, 0, OVER) + period(anomaly, 1, OVER)
    ts = T0 + 2 * PERIOD_MS + 1
    found += anomaly.observe(0, 0.0, ts, sound=True) + anomaly.observe(1, 2.2, ts, sound=False)
    found += anomaly.observe(2, 0.0, ts, sound=True)
    found += period(anomaly, 3, OVER) + period(anomaly, 4, NORMAL)
    assert [(c.active, c.ts_ms) for c in found] == [(True, T0 + 4 * PERIOD_MS)]
    assert (anomaly.judged, anomaly.blind) == (3, 1)

    # C falls silent for longer than stale_factor × its 10 s: blind, though A and B go
    # on reporting values over the limit; its latest value never stands in
    anomaly = AnomalyDetector(hand_model(), "Unit 1", AnomalySettings(), stale_factor=1)
    found = period(anomaly, 0, OVER) + period(anomaly, 1, OVER)
    for k in range(2, 7):
        ts = T0 + k * PERIOD_MS + 1
        found += anomaly.observe(0, 0.0, ts, sound=True) + anomaly.observe(1, 2.2, ts, sound=True)
    assert (found, anomaly.judged, anomaly.blind) == ([], 2, 4)
    found += period(anomaly, 7, OVER) + period(anomaly, 8, OVER)
    assert [(c.active, c.ts_ms) for c in found] == [(True, T0 + 8 * PERIOD_MS)]


def test_the_condition_names_the_model_the_points_and_carries_every_contribution() -> None:
    anomaly = detector(priority=Priority.HIGH)
    values = (1.0, 0.0, -2.5)  # SPE 6.25 from C, T² 1 from A
    raised = run(anomaly, [values] * 3)
    assert raised == [(2, True)]
    anomaly = detector(priority=Priority.HIGH)
    found = [c for k in range(4) for c in period(anomaly, k, values if k < 3 else NORMAL)]
    [condition] = found
    assert (condition.tag, condition.installation, condition.type) == (
        "U1.normal",
        "U1",
        AlarmType.ANOMALY,
    )
    assert condition.ts_ms == T0 + 3 * PERIOD_MS  # the sample's time: the period's end
    assert condition.message == "Unit 1: abnormal operation — C −2.5σ, A +1.0σ, B +0.0σ"
    assert condition.value == pytest.approx(6.25 / 4)
    assert condition.limit == 1.0
    assert condition.priority is Priority.HIGH
    details = condition.details
    assert details is not None
    assert (details["t2"], details["t2_limit"], details["spe"], details["spe_limit"]) == (
        1.0,
        9.0,
        6.25,
        4.0,
    )
    assert [c["tag"] for c in details["contributions"]] == ["C", "A", "B"]
    assert details["contributions"][0] == {
        "tag": "C",
        "deviation_sigma": -2.5,
        "t2": 0.0,
        "spe": 6.25,
        "weight": 1.5625,
    }


def engine_readings(
    values: tuple[float, ...], ts: int, quality: Quality = Quality.GOOD
) -> list[Reading]:
    return [Reading("E1", "gw", tag, v, ts, quality) for tag, v in zip(TAGS, values, strict=True)]


def test_the_engine_feeds_modelled_points_and_counts_periods() -> None:
    metrics = Metrics()
    engine = DetectorEngine(registry(), DetectorSettings(), T0, metrics, models=[hand_model()])
    assert [type(d).__name__ for d in engine.detectors("E1", "A")][-1] == "AnomalyDetector"
    raised: list[Condition] = []
    for k in range(5):
        ts = T0 + k * PERIOD_MS + 1
        raised += engine.update(engine_readings(OVER, ts), ts)
    assert [(c.type, c.active, c.ts_ms) for c in raised] == [
        (AlarmType.ANOMALY, True, T0 + 3 * PERIOD_MS)
    ]
    # a late reading (older than the point's newest) is not judged, as everywhere
    late = T0 + 2 * PERIOD_MS
    assert engine.update(engine_readings(NORMAL, late), T0 + 5 * PERIOD_MS) == []
    assert engine.late.count == 3
    engine.tick(T0 + 5 * PERIOD_MS)
    assert metrics.value("hazwatch_anomaly_periods_total", {"result": "judged"}) == 4
    # ANOMALY disabled: the model still judges, no condition comes out
    quiet = DetectorEngine(
        registry(), DetectorSettings(disabled=(AlarmType.ANOMALY,)), T0, models=[hand_model()]
    )
    out = [
        c for k in range(5) for c in quiet.update(engine_readings(OVER, T0 + k * PERIOD_MS + 1), T0)
    ]
    assert out == []


def test_after_a_restart_a_loaded_model_does_not_raise_again_and_clears(tmp_path: Path) -> None:
    """Two lives of the service on one journal: the first raises ANOMALY; the second
    starts from the journal's open alarms (as hazwatch.app does), says nothing new while
    the plant is still abnormal, and clears the alarm once it is normal again."""
    model_file = tmp_path / "unit1.json"
    model_file.write_bytes(encode(ModelFile((hand_model(),), registry_sha256(registry()))))
    model_settings = DetectorSettings(models=(model_file,))
    clock = ManualClock(T0)
    metrics = Metrics()

    def life(journal: Journal) -> DetectorFeed:  # loads the model file, as at start
        alarms = AlarmService(journal, [], metrics, clock)
        return DetectorFeed(registry(), model_settings, alarms, clock, metrics)

    def feed_periods(
        feed: DetectorFeed, first: int, count: int, values: tuple[float, ...]
    ) -> list[Condition]:
        found: list[Condition] = []
        for k in range(first, first + count):
            ts = T0 + k * PERIOD_MS + 1
            clock.set(ts)
            found += feed.readings(engine_readings(values, ts))
        return found

    with Journal(tmp_path / "journal.db", []) as journal:
        first = life(journal)
        assert [c.active for c in feed_periods(first, 0, 5, OVER)] == [True]
        [alarm] = journal.list_alarms(active=True)
        assert (alarm.tag, alarm.type, alarm.priority) == (
            "U1.normal",
            AlarmType.ANOMALY,
            Priority.MEDIUM,
        )
        assert alarm.details is not None
        assert alarm.details["contributions"][0]["tag"] == "B"
    with Journal(tmp_path / "journal.db", []) as journal:
        second = life(journal)
        second.engine.restore(
            (a.enterprise, a.tag, a.type, a.installation)
            for a in journal.list_alarms(active=True)
            if a.state in ACTIVE
        )
        assert feed_periods(second, 10, 5, OVER) == []  # still abnormal: nothing new
        cleared = feed_periods(second, 15, 7, NORMAL)
        assert [c.active for c in cleared] == [False]
        [alarm] = journal.list_alarms()
        assert alarm.cleared_at is not None
        assert alarm.details is not None  # the raise's contributions stay with it
        assert alarm.details["contributions"][0]["tag"] == "B"
