"""Learned normal behaviour (``ANOMALY``): an installation no longer moving as it normally does.

Each installation with a model (:mod:`detectors.normal_model`) is judged once per
*sample period* (the model's ``period_s``, periods aligned to the epoch, in reading
time): the first reading of one of its points at or past a period's end takes the
*sample* — the latest value of every modelled point as of that instant — and scores it
against the model (:mod:`detectors.pca`): Hotelling's T² and SPE, each against its
control limit. :class:`PeriodSampler` takes samples the same way for ``hazwatch learn``,
so the model is learned from what it will judge.

A sample is only judged when every point's latest value is sound: a point whose latest
reading is older than ``stale_factor × interval_s`` at the sample's time, bad (quality
``bad``, outside its instrument range), or never seen makes the period *blind* — never
a zero or an old value standing in. Blind periods are counted (:attr:`AnomalyDetector.blind`)
and leave the persistence window as it was; STALE and FAULT tell the operator why.

**Persistence and hysteresis.** ``ANOMALY`` is raised when ``k`` of the last ``n``
judged periods had a statistic over its limit (``[detectors.anomaly] persistence``,
default 3 of 5: one odd sample is not an abnormal plant), and cleared when each of the
last ``n`` judged periods was under ``clear_fraction`` (0.8) of both limits.

The condition's ``tag`` is the model's name (``<installation>.normal``), its ``value``
the larger of T²/limit and SPE/limit (1.0 = at the limit), its ``limit`` 1.0; the
message names the three points contributing most, with their deviation in normal
standard deviations; ``details`` holds both statistics, their limits and every point's
contribution (the alarm JSON's ``details``).

>>> import numpy as np
>>> from detectors.normal_model import InstallationModel, ModelPoint
>>> from detectors.pca import fit_pca
>>> rng = np.random.default_rng(3)
>>> cause = rng.normal(size=(1000, 1))
>>> normal = np.hstack([cause, 2 * cause]) + rng.normal(scale=0.05, size=(1000, 2))
>>> pca = fit_pca(normal, ("FT1", "TT1"), variance=0.9, confidence=0.99)
>>> points = tuple(ModelPoint(t, "other", "", None, None, 10.0) for t in ("FT1", "TT1"))
>>> model = InstallationModel("E1", "U1", "U1.normal", 10.0, points, pca, 0, 0)
>>> anomaly = AnomalyDetector(model, "Unit 1", AnomalySettings(), stale_factor=3)
>>> changes = []
>>> for k in range(12):              # FT1 and TT1 stop moving together at 30 s
...     ft, tt = (0.5, 1.0) if k < 3 else (0.5, -1.0)
...     changes += anomaly.observe(0, ft, k * 10_000, sound=True)
...     changes += anomaly.observe(1, tt, k * 10_000, sound=True)
>>> [(c.active, c.ts_ms) for c in changes]       # the 3rd abnormal sample of 5
[(True, 60000)]
>>> changes[0].message
'Unit 1: abnormal operation — TT1 −0.5σ, FT1 +0.5σ'
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.normal_model import InstallationModel, ModelPoint
from detectors.pca import PcaModel
from hazwatch.models import AlarmType, Condition
from hazwatch.settings import AnomalySettings

NAMED = 3
"""Points named in the message."""
_NEVER = -(2**62)


@dataclass(frozen=True, slots=True)
class Sample:
    """What :meth:`PeriodSampler.observe` took at a period's end."""

    ts_ms: int
    values: list[float] | None
    """The latest value of every point, in the model's order; ``None``: blind."""
    missing: tuple[int, ...] = ()
    """The points that made it blind (indices into the model's points)."""


class PeriodSampler:
    """The latest value of each of an installation's points, taken at each period end."""

    __slots__ = ("_max_age_ms", "_next_ms", "_period_ms", "_seen_ms", "_sound", "_values")

    def __init__(self, points: Sequence[ModelPoint], period_s: float, stale_factor: float) -> None:
        self._period_ms = max(1, round(period_s * 1000))
        self._next_ms = _NEVER
        self._max_age_ms = [round(stale_factor * (p.interval_s or period_s) * 1000) for p in points]
        self._values = [0.0] * len(points)
        self._seen_ms = [_NEVER] * len(points)
        self._sound = [False] * len(points)

    def observe(self, index: int, value: float, ts_ms: int, *, sound: bool) -> Sample | None:
        """Note point ``index``'s reading (not older than its last one); returns the
        sample when this reading is the first at or past a period's end (the sample is
        taken before the reading counts: it belongs to the next period)."""
        taken = None
        if ts_ms >= self._next_ms:
            boundary = ts_ms - ts_ms % self._period_ms
            if self._next_ms != _NEVER:
                taken = self.take(boundary)
            self._next_ms = boundary + self._period_ms
        self._values[index] = value
        self._seen_ms[index] = ts_ms
        self._sound[index] = sound
        return taken

    def take(self, ts_ms: int) -> Sample:
        missing = tuple(
            i
            for i, (seen, sound, age) in enumerate(
                zip(self._seen_ms, self._sound, self._max_age_ms, strict=True)
            )
            if not sound or ts_ms - seen > age
        )
        return Sample(ts_ms, None if missing else list(self._values), missing)


class AnomalyDetector:
    """One installation's model at run time: fed its points' readings, returns changes."""

    __slots__ = (
        "_name",
        "_pca",
        "_recent",
        "_settings",
        "active",
        "blind",
        "judged",
        "model",
        "sampler",
    )

    def __init__(
        self,
        model: InstallationModel,
        installation_name: str,
        settings: AnomalySettings,
        stale_factor: float,
    ) -> None:
        self.model = model
        self._name = installation_name
        self._pca: PcaModel = model.pca
        self._settings = settings
        self.sampler = PeriodSampler(model.points, model.period_s, stale_factor)
        self._recent: deque[float] = deque(maxlen=settings.persistence[1])
        """max(T²/limit, SPE/limit) of the last judged periods."""
        self.active = False
        self.judged = 0
        self.blind = 0

    def observe(self, index: int, value: float, ts_ms: int, *, sound: bool) -> list[Condition]:
        """A reading of modelled point ``index`` (sound: good quality, inside its range)."""
        sample = self.sampler.observe(index, value, ts_ms, sound=sound)
        return [] if sample is None else self.judge(sample)

    def assume_active(self) -> None:
        """After a restart, the journal's open ANOMALY: cleared by normal samples."""
        self.active = True

    def judge(self, sample: Sample) -> list[Condition]:
        if sample.values is None:
            self.blind += 1
            return []
        self.judged += 1
        x = np.asarray(sample.values, dtype=np.float64)
        pca = self._pca
        t2, spe = pca.statistics(x)
        ratio = max(t2 / pca.t2_limit, spe / pca.spe_limit)
        recent = self._recent
        recent.append(ratio)
        s = self._settings
        k, n = s.persistence
        if not self.active:
            if sum(r > 1.0 for r in recent) < k:
                return []
            self.active = True
            named = pca.contributions(x)[:NAMED]
            listed = ", ".join(f"{c.tag} {_sigma(c.deviation)}" for c in named)
            message = f"{self._name}: abnormal operation — {listed}"
        else:
            if len(recent) < n or any(r >= s.clear_fraction for r in recent):
                return []
            self.active = False
            message = f"{self._name}: back to normal operation"
        model = self.model
        return [
            Condition(
                enterprise=model.enterprise,
                installation=model.installation,
                tag=model.name,
                type=AlarmType.ANOMALY,
                active=self.active,
                value=round(ratio, 6),
                limit=1.0,
                ts_ms=sample.ts_ms,
                message=message,
                details=self.details(x, t2, spe),
                priority=s.priority,
            )
        ]

    def details(
        self, x: np.ndarray[Any, np.dtype[np.float64]], t2: float, spe: float
    ) -> dict[str, Any]:
        """The alarm's ``details``: both statistics, their limits, every contribution."""
        pca = self._pca
        return {
            "model": self.model.name,
            "t2": round(t2, 6),
            "t2_limit": round(pca.t2_limit, 6),
            "spe": round(spe, 6),
            "spe_limit": round(pca.spe_limit, 6),
            "contributions": [
                {
                    "tag": c.tag,
                    "deviation_sigma": round(c.deviation, 3),
                    "t2": round(c.t2, 6),
                    "spe": round(c.spe, 6),
                    "weight": round(c.weight, 6),
                }
                for c in pca.contributions(x)
            ],
        }


def _sigma(deviation: float) -> str:
    """``-4.08`` → ``−4.1σ`` (a true minus sign, as operators read it)."""
    return f"{deviation:+.1f}σ".replace("-", "−")
