"""The model of normal operation behind ``ANOMALY``: PCA with Hotelling's T² and SPE.

An installation's points move together in normal operation — the cooling-water flow
follows the reactor's heat, a tank's temperature its level and its inflow. A *principal
component analysis* of samples of normal operation (each sample: the latest value of
every point at one instant) finds those patterns: the samples are centred and scaled
(each point's mean and standard deviation), and the few directions (*components*) that
carry most of the variance are kept — enough to explain :attr:`variance` of it.

A new sample ``x`` is judged by two statistics, each against a control limit:

- **T²** (Hotelling): how far the sample lies *along* the normal patterns, compared with
  their normal spread — the plant doing what it normally does, but further than usual
  (``T² = Σ t_a² / λ_a``, ``t = Pᵀz`` the scores of the scaled sample ``z``).
- **SPE** (squared prediction error, Q): how far the sample lies *off* the patterns —
  the points no longer move together as they do (``SPE = ‖z − P·t‖²``). A transmitter
  drifting away from its neighbours, a correlation that breaks.

Control limits come from samples the fit did not see (the *holdout*, every fourth block
of the training range): a scaled chi-square ``g·χ²_h`` matched to the holdout
statistics' mean and variance (Box's approximation, as Nomikos and MacGregor use for
SPE), at the chosen confidence — or the holdout's own quantile at that confidence if
higher. Statistics over their limit on a new sample mean: this is not how the plant
normally behaves.

Contributions say which points make a sample abnormal: point ``i``'s share of SPE is
``r_i²`` (``r = z − P·t``), of T² it is ``z_i · Σ_a p_ia·t_a/λ_a`` (both sum to their
statistic); :meth:`PcaModel.contributions` ranks the points by the two, each relative
to its limit, and gives each point's deviation in normal standard deviations (``z_i``).

Pure numpy, deterministic: the same samples give the same model, to the bit, with the
same numpy build (eigenvectors' signs are fixed: largest loading positive).

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> common = rng.normal(size=(2000, 1))               # one hidden cause, three points
>>> samples = common @ np.array([[1.0, 2.0, -1.0]]) + rng.normal(scale=0.1, size=(2000, 3))
>>> model = fit_pca(samples, ("A", "B", "C"), variance=0.9, confidence=0.99)
>>> model.components, round(float(model.explained[0]), 3)
(1, 0.995)
>>> t2, spe = model.statistics(np.array([1.0, 2.0, -1.0]))   # along the pattern
>>> bool(spe < model.spe_limit)
True
>>> t2, spe = model.statistics(np.array([1.0, 2.0, 1.0]))    # C went its own way
>>> bool(spe > model.spe_limit), model.contributions(np.array([1.0, 2.0, 1.0]))[0].tag
(True, 'C')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]
Matrix = NDArray[np.float64]

HOLDOUT_BLOCKS = 20
"""The training range is cut into this many blocks; every fourth is held out."""
HOLDOUT_EVERY = 4
MIN_SAMPLES = 200
"""Fewer complete samples than this (or than 10 per point) is refused: the holdout would
hold too few to set a limit at 99 %."""
SAMPLES_PER_POINT = 10
CONSTANT_SCALE = 1e-9
"""A point whose standard deviation is below this × max(1, |mean|) is constant."""


class FitError(ValueError):
    """The samples cannot make a model; ``point`` names the point at fault, if one is."""

    def __init__(self, message: str, point: str | None = None) -> None:
        self.point = point
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Contribution:
    tag: str
    deviation: float
    """The point's deviation from its normal mean, in normal standard deviations."""
    t2: float
    """Its part of T² (may be negative)."""
    spe: float
    """Its part of SPE (≥ 0)."""
    weight: float
    """``t2 / T²-limit + spe / SPE-limit``: what the points are ranked by."""


@dataclass(frozen=True, eq=False)
class PcaModel:
    """A fitted model: scaling, loadings, and the control limits."""

    tags: tuple[str, ...]
    mean: Vector
    scale: Vector
    loadings: Matrix
    """``P``: one column per component, one row per point."""
    eigenvalues: Vector
    """``λ``: the variance of each component's scores."""
    explained: Vector
    """The fraction of the total variance each component explains."""
    t2_limit: float
    spe_limit: float
    variance: float
    """The fraction of variance the components were chosen to explain."""
    confidence: float
    train_samples: int
    holdout_samples: int

    @property
    def components(self) -> int:
        return int(self.loadings.shape[1])

    def scaled(self, x: Vector) -> Vector:
        """``z``: each point's deviation in its normal standard deviations."""
        z: Vector = (x - self.mean) / self.scale
        return z

    def statistics(self, x: Vector) -> tuple[float, float]:
        """``(T², SPE)`` of one sample (values in the order of :attr:`tags`)."""
        z = self.scaled(x)
        t = self.loadings.T @ z
        residual = z - self.loadings @ t
        return float(t @ (t / self.eigenvalues)), float(residual @ residual)

    def contributions(self, x: Vector) -> list[Contribution]:
        """Every point's part in the statistics of ``x``, the largest weight first."""
        z = self.scaled(x)
        t = self.loadings.T @ z
        residual = z - self.loadings @ t
        t2_parts = z * (self.loadings @ (t / self.eigenvalues))
        spe_parts = residual * residual
        weights = t2_parts / self.t2_limit + spe_parts / self.spe_limit
        found = [
            Contribution(tag, float(d), float(a), float(b), float(w))
            for tag, d, a, b, w in zip(self.tags, z, t2_parts, spe_parts, weights, strict=True)
        ]
        return sorted(found, key=lambda c: (-c.weight, c.tag))


def fit_pca(
    samples: Matrix, tags: Sequence[str], *, variance: float, confidence: float
) -> PcaModel:
    """Fit a model to ``samples`` (one row per sample, one column per point of ``tags``,
    in time order). Raises :class:`FitError` naming the point when it cannot."""
    if not 0 < variance < 1:
        raise FitError(f"variance: expected a fraction between 0 and 1, got {variance}")
    if not 0.5 <= confidence < 1:
        raise FitError(f"confidence: expected a fraction in [0.5, 1), got {confidence}")
    n, m = samples.shape
    if m != len(tags):
        raise FitError(f"{m} columns for {len(tags)} points")
    if m < 2:
        raise FitError(f"a model needs at least 2 points, got {m}: {', '.join(tags) or 'none'}")
    needed = max(MIN_SAMPLES, SAMPLES_PER_POINT * m)
    if n < needed:
        raise FitError(f"{n} complete samples, at least {needed} needed ({m} points)")
    train, holdout = split_holdout(samples)
    mean = train.mean(axis=0)
    scale = train.std(axis=0, ddof=1)
    for tag, mu, sigma, column in zip(tags, mean, scale, train.T, strict=True):
        if not sigma > CONSTANT_SCALE * max(1.0, abs(mu)):
            raise FitError(
                f"point {tag} is constant in the training data ({float(column[0]):g} in all "
                f"{len(column)} samples): it carries no pattern; leave it out",
                point=tag,
            )
    z = (train - mean) / scale
    covariance = (z.T @ z) / (len(z) - 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    values = np.maximum(values, 0.0)
    explained = values / values.sum()
    k = int(np.searchsorted(np.cumsum(explained), variance) + 1)
    k = min(k, m - 1)  # at least one direction off the patterns, or SPE says nothing
    loadings = vectors[:, :k]
    signs = np.sign(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(k)])
    loadings = loadings * signs
    eigenvalues = values[:k]
    if not np.all(eigenvalues > 0):
        raise FitError("the kept components have no variance: the points do not move")
    model = PcaModel(
        tags=tuple(tags),
        mean=mean,
        scale=scale,
        loadings=loadings,
        eigenvalues=eigenvalues,
        explained=explained[:k],
        t2_limit=1.0,
        spe_limit=1.0,
        variance=variance,
        confidence=confidence,
        train_samples=len(train),
        holdout_samples=len(holdout),
    )
    stats = np.array([model.statistics(x) for x in holdout])
    return dataclasses.replace(
        model,
        t2_limit=control_limit(stats[:, 0], confidence),
        spe_limit=control_limit(stats[:, 1], confidence),
    )


def split_holdout(samples: Matrix) -> tuple[Matrix, Matrix]:
    """The samples to fit and those held out: the range cut into :data:`HOLDOUT_BLOCKS`
    blocks of consecutive samples, every :data:`HOLDOUT_EVERY`-th held out — so the
    limits are set on stretches of time the fit never saw (neighbouring samples are
    alike), from all over the range.

    >>> train, holdout = split_holdout(np.arange(40.0).reshape(40, 1))
    >>> holdout.ravel().tolist()
    [6.0, 7.0, 14.0, 15.0, 22.0, 23.0, 30.0, 31.0, 38.0, 39.0]
    """
    block = np.arange(len(samples)) * HOLDOUT_BLOCKS // len(samples)
    held = block % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    return samples[~held], samples[held]


def control_limit(values: Vector, confidence: float) -> float:
    """The limit a statistic of normal samples stays under with ``confidence``: the
    larger of a scaled chi-square matched to their mean and variance (``g·χ²_h``,
    ``g = var/2·mean``, ``h = 2·mean²/var``; the quantile by Wilson and Hilferty) and
    their own quantile.

    >>> rng = np.random.default_rng(7)
    >>> limit = control_limit(rng.chisquare(3, size=20000), 0.99)
    >>> abs(limit - 11.34) < 0.2    # χ²₃ at 99 %: 11.34
    True
    """
    mean = float(values.mean())
    var = float(values.var(ddof=1))
    empirical = float(np.quantile(values, confidence))
    if not mean > 0 or not var > 0:
        return max(empirical, mean)
    g = var / (2 * mean)
    h = 2 * mean * mean / var
    z = NormalDist().inv_cdf(confidence)
    a = 2 / (9 * h)
    chi2 = h * max(0.0, 1 - a + z * math.sqrt(a)) ** 3
    return max(g * chi2, empirical)
