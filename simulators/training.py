"""``hazwatch learn``: models of normal operation from recordings of it.

The recordings (docs/recording.md: ``hazwatch record`` or ``hazwatch export`` of a time
the plant ran normally) are read in the order given, through the service's own decoder
and validator, each message received at its recorded time. For each installation
learned, its points' readings go through the very :class:`~detectors.anomaly.PeriodSampler`
the ANOMALY detector uses at run time — the same periods, the same latest values, the
same rule that a stale, bad or unseen point makes a period blind — and every complete
sample becomes a row; late readings (older than a point's newest) are left out, as the
detectors leave them out. :func:`~detectors.pca.fit_pca` fits the rows.

Which points: an installation's points of every kind but ``state`` (a valve or an ESD
does not move with the process) and the gas detectors (``gas_lel``, ``gas_toxic``: in
normal operation they read nothing, and their alarm limits already say what matters);
``--exclude TAG`` leaves more out. The sample period is the slowest point's
``interval_s``, at least :data:`MIN_PERIOD_S` (``--period``).

Bad input stops with one line naming the installation and the point: too few complete
samples (and which point cost the most of them, and how many were found), a constant
point, fewer than two points. Values past a point's alarm limits in the training data
are not an error but are reported: a model learns as normal whatever it is shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detectors.anomaly import PeriodSampler
from detectors.fault import FaultDetector
from detectors.normal_model import (
    InstallationModel,
    ModelFile,
    ModelPoint,
    file_sha256,
    model_name,
    registry_sha256,
)
from detectors.pca import MIN_SAMPLES, SAMPLES_PER_POINT, FitError, Matrix, fit_pca
from hazwatch.errors import ModelError
from hazwatch.metrics import Metrics
from hazwatch.models import (
    Installation,
    Point,
    PointKind,
    Reading,
    Registry,
    ms_to_iso,
)
from hazwatch.settings import Settings
from ingest.codecs import build_routes
from ingest.validation import ReadingValidator
from simulators.recording import RecordingReader

MIN_PERIOD_S = 30.0
LEFT_OUT_KINDS = frozenset({PointKind.STATE, PointKind.GAS_LEL, PointKind.GAS_TOXIC})


@dataclass(frozen=True)
class LearnOptions:
    installations: tuple[str, ...] = ()
    """``E001/MH02`` each; empty: every installation with two or more points to model."""
    exclude: tuple[str, ...] = ()
    """Tags left out of every model."""
    period_s: float | None = None
    variance: float = 0.9
    confidence: float = 0.999


@dataclass
class _Rows:
    """One installation's samples as they come."""

    enterprise: str
    installation: Installation
    points: tuple[Point, ...]
    sampler: PeriodSampler
    period_s: float
    rows: list[list[float]] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    periods: int = 0
    missing: Counter[int] = field(default_factory=Counter)
    """Periods each point (by index) made blind."""
    newest: list[int] = field(default_factory=list)
    faults: list[FaultDetector] = field(default_factory=list)
    """FAULT's own rule decides what is sound (quality, instrument range)."""


@dataclass(frozen=True)
class LearnedInstallation:
    model: InstallationModel
    periods: int
    """Sample periods seen; ``model.pca`` says how many were complete (train + holdout)."""
    beyond_limits: tuple[tuple[str, int], ...]
    """Points with training samples past an alarm limit, and how many."""


@dataclass(frozen=True)
class LearnResult:
    model_file: ModelFile
    installations: tuple[LearnedInstallation, ...]
    messages: int


def learn(
    settings: Settings,
    registry: Registry,
    recordings: Sequence[Path],
    options: LearnOptions,
    on_progress: Callable[[int], None] | None = None,
) -> LearnResult:
    """Learn a model per installation from ``recordings``; ``ModelError`` when one cannot
    be learned. ``on_progress`` is told the bytes read so far (all files)."""
    collecting = _installations(registry, options, settings.detectors.stale_factor)
    by_point: dict[tuple[str, str], tuple[_Rows, int]] = {
        (r.enterprise, p.tag): (r, i) for r in collecting for i, p in enumerate(r.points)
    }
    routes = build_routes(settings.ingest)  # the configured codecs, as the service has them
    validator = ReadingValidator(registry, settings.ingest, Metrics())
    messages = 0
    done_bytes = 0
    sources: list[tuple[str, str]] = []
    for path in recordings:
        with RecordingReader(path) as reader:
            for message in reader:
                messages += 1
                codec = routes.codec(message.topic)
                if codec is None:
                    continue
                checked = validator.check(
                    codec.decode(message.topic, message.payload, message.t), message.t
                )
                for reading in checked.readings:
                    found = by_point.get((reading.enterprise, reading.tag))
                    if found is not None:
                        _observe(*found, reading, message.t)
                if on_progress is not None and messages % 1000 == 0:
                    on_progress(done_bytes + reader.bytes_read)
            done_bytes += reader.size
        sources.append((path.name, file_sha256(path)))
    learned = tuple(_fit(rows, options) for rows in collecting)
    model_file = ModelFile(
        models=tuple(i.model for i in learned),
        registry_sha256=registry_sha256(registry),
        recordings=tuple(sources),
    )
    return LearnResult(model_file, learned, messages)


def _installations(registry: Registry, options: LearnOptions, stale_factor: float) -> list[_Rows]:
    wanted = set(options.installations)
    known = {f"{e.id}/{i.id}" for e in registry.enterprises.values() for i in e.installations}
    for name in sorted(wanted - known):
        raise ModelError(
            f"--installation {name}: not in the registry (known: {', '.join(sorted(known))})"
        )
    found: list[_Rows] = []
    for enterprise in registry.enterprises.values():
        for installation in enterprise.installations:
            name = f"{enterprise.id}/{installation.id}"
            if wanted and name not in wanted:
                continue
            points = tuple(
                p
                for p in installation.points
                if p.kind not in LEFT_OUT_KINDS and p.tag not in options.exclude
            )
            if len(points) < 2:
                if wanted:
                    raise ModelError(
                        f"{name}: {len(points)} point(s) to model, at least 2 needed "
                        f"(states and gas detectors are left out; so is --exclude)"
                    )
                continue
            period = options.period_s or max(MIN_PERIOD_S, *(p.interval_s or 0.0 for p in points))
            model_points = tuple(ModelPoint.of(p) for p in points)
            found.append(
                _Rows(
                    enterprise.id,
                    installation,
                    points,
                    PeriodSampler(model_points, period, stale_factor),
                    period,
                    newest=[-(2**62)] * len(points),
                    faults=[FaultDetector(p) for p in points],
                )
            )
    if not found:
        raise ModelError("no installation has two or more points to model")
    return found


def _observe(rows: _Rows, index: int, reading: Reading, now_ms: int) -> None:
    """As :class:`~detectors.monitor.SampledPointMonitor` does: late readings are left
    out ("newest" capped at the receive time), faulty ones (FAULT's rule) are unsound."""
    ts_ms = reading.ts_ms
    if ts_ms < rows.newest[index]:
        return
    rows.newest[index] = min(ts_ms, now_ms)
    fault = rows.faults[index]
    fault.update(reading, now_ms)
    sample = rows.sampler.observe(index, reading.value, ts_ms, sound=not fault.active)
    if sample is None:
        return
    rows.periods += 1
    if sample.values is None:
        rows.missing.update(sample.missing)
    else:
        rows.rows.append(sample.values)
        rows.times.append(sample.ts_ms)


def _fit(rows: _Rows, options: LearnOptions) -> LearnedInstallation:
    where = f"{rows.enterprise}/{rows.installation.id}"
    tags = tuple(p.tag for p in rows.points)
    needed = max(MIN_SAMPLES, SAMPLES_PER_POINT * len(tags))
    if len(rows.rows) < needed:
        period = f"{rows.period_s:g} s"
        detail = (
            f"{where}: {len(rows.rows)} complete samples in {rows.periods} periods of {period}, "
            f"at least {needed} needed"
        )
        if rows.missing:
            index, count = max(rows.missing.items(), key=lambda item: (item[1], -item[0]))
            detail += (
                f" — point {tags[index]} was stale, bad or not seen in {count} of "
                f"{rows.periods} periods"
            )
        else:
            hours = needed * rows.period_s / 3600
            detail += f" — record at least {hours:.1f} h of normal operation"
        raise ModelError(detail)
    samples = np.asarray(rows.rows, dtype=np.float64)
    try:
        pca = fit_pca(samples, tags, variance=options.variance, confidence=options.confidence)
    except FitError as exc:
        raise ModelError(f"{where}: {exc}") from exc
    model = InstallationModel(
        enterprise=rows.enterprise,
        installation=rows.installation.id,
        name=model_name(rows.installation.id),
        period_s=rows.period_s,
        points=tuple(ModelPoint.of(p) for p in rows.points),
        pca=pca,
        first_ms=rows.times[0],
        last_ms=rows.times[-1],
    )
    return LearnedInstallation(model, rows.periods, _beyond_limits(rows.points, samples))


def _beyond_limits(points: Sequence[Point], samples: Matrix) -> tuple[tuple[str, int], ...]:
    found = []
    for point, column in zip(points, samples.T, strict=True):
        high = min((x for x in (point.h, point.hh) if x is not None), default=None)
        low = max((x for x in (point.l, point.ll) if x is not None), default=None)
        count = int(np.sum(column >= high)) if high is not None else 0
        count += int(np.sum(column <= low)) if low is not None else 0
        if count:
            found.append((point.tag, count))
    return tuple(found)


def summary_lines(result: LearnResult, out: Path) -> list[str]:
    """What ``hazwatch learn`` prints."""
    lines = []
    for learned in result.installations:
        model = learned.model
        pca = model.pca
        explained = float(np.sum(pca.explained))
        name = f"{model.enterprise}/{model.installation} → {model.name}"
        samples = pca.train_samples + pca.holdout_samples
        span = f"{ms_to_iso(model.first_ms)} .. {ms_to_iso(model.last_ms)}"
        lines += [
            f"{name}: {len(model.points)} points ({', '.join(model.tags)})",
            (
                f"  samples: every {model.period_s:g} s, {samples} complete of "
                f"{learned.periods} ({pca.train_samples} to fit, {pca.holdout_samples} held "
                f"out), {span}"
            ),
            (
                f"  model: {pca.components} component(s) explain {explained:.1%} of the "
                f"variance; limits at {pca.confidence:.1%}: T² {pca.t2_limit:.4g}, "
                f"SPE {pca.spe_limit:.4g}"
            ),
        ]
        for tag, count in learned.beyond_limits:
            lines.append(
                f"  warning: {tag} is past an alarm limit in {count} training samples — "
                "the model takes that as normal: was it?"
            )
    lines.append(
        f"wrote {out} ({len(result.installations)} model(s), from {result.messages:,} messages)"
    )
    return lines
