"""The PCA model against a known answer: data made with numpy from a known structure.

Five points driven by two hidden causes through known loadings ``W``, plus independent
noise of known size: the covariance is ``Σ = W·Wᵀ + diag(σ²)``, so the correlation
matrix the model works on — and its eigenvalues and principal subspace — are known
exactly, before any fit.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.pca import FitError, PcaModel, control_limit, fit_pca, split_holdout

TAGS = ("A", "B", "C", "D", "E")
W = np.array([[2.0, 0.0], [1.5, 0.5], [0.0, 1.0], [-1.0, 1.0], [0.5, -0.5]])
NOISE = np.array([0.1, 0.2, 0.1, 0.15, 0.05])
MEAN = np.array([70.0, 0.45, 30.0, 720.0, 36.0])
SCALE = np.array([1.0, 0.01, 2.0, 50.0, 1.0])  # units differ wildly, as in a plant


def samples(n: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    causes = rng.normal(size=(n, 2))
    centred = causes @ W.T + rng.normal(size=(n, 5)) * NOISE
    found: np.ndarray = MEAN + centred * SCALE
    return found


def known_correlation() -> np.ndarray:
    covariance = W @ W.T + np.diag(NOISE**2)
    d = np.sqrt(np.diag(covariance))
    found: np.ndarray = covariance / np.outer(d, d)
    return found


@pytest.fixture(scope="module")
def model() -> PcaModel:
    return fit_pca(samples(20_000), TAGS, variance=0.9, confidence=0.999)


def test_the_fit_finds_the_known_structure(model: PcaModel) -> None:
    truth = np.linalg.eigvalsh(known_correlation())[::-1]
    assert model.components == 2  # two causes explain > 90 %
    assert model.eigenvalues == pytest.approx(truth[:2], rel=0.03)
    assert model.explained.sum() == pytest.approx(truth[:2].sum() / 5, rel=0.01)
    assert np.all(np.abs(model.mean - MEAN) < 0.05 * SCALE)
    # the principal subspace is that of the two causes, in the scaled coordinates
    scaled_w = W / np.sqrt(np.diag(W @ W.T + np.diag(NOISE**2)))[:, None]
    q, _ = np.linalg.qr(scaled_w)
    assert np.linalg.norm(q @ q.T - model.loadings @ model.loadings.T) < 0.02
    # signs are fixed: each component's largest loading is positive
    for column in model.loadings.T:
        assert column[np.argmax(np.abs(column))] > 0
    # 15,000 samples fitted, 5,000 held out (every fourth block of the range)
    assert (model.train_samples, model.holdout_samples) == (15_000, 5_000)


def test_the_limits_are_where_normal_data_stays(model: PcaModel) -> None:
    # T² of Gaussian data with 2 components is about χ²₂: its 99.9 % point is 13.8
    assert model.t2_limit == pytest.approx(13.8, rel=0.25)
    fresh = samples(5_000, seed=99)  # normal data the model never saw
    stats = np.array([model.statistics(x) for x in fresh])
    assert np.mean(stats[:, 0] > model.t2_limit) < 0.004
    assert np.mean(stats[:, 1] > model.spe_limit) < 0.004
    # along the patterns, far out (6 standard deviations of a cause): T² says so, SPE not
    along = MEAN + (W @ np.array([6.0, 0.0])) * SCALE
    t2, spe = model.statistics(along)
    assert t2 > 2 * model.t2_limit
    assert spe < model.spe_limit
    # off the patterns: C alone moves, by 5 of its noise's standard deviations
    off = MEAN.copy()
    off[2] += 5 * NOISE[2] * SCALE[2] * 10
    t2, spe = model.statistics(off)
    assert spe > 3 * model.spe_limit


def test_contributions_rank_the_point_that_went_its_own_way_first(model: PcaModel) -> None:
    x = MEAN + (W @ np.array([0.5, -0.3])) * SCALE
    x[3] += 1.5 * SCALE[3]  # D drifts away from what B and C say it should be
    found = model.contributions(x)
    assert found[0].tag == "D"
    assert found[0].deviation == pytest.approx((x[3] - model.mean[3]) / model.scale[3])
    t2, spe = model.statistics(x)
    assert sum(c.spe for c in found) == pytest.approx(spe)
    assert sum(c.t2 for c in found) == pytest.approx(t2)
    assert [c.weight for c in found] == sorted((c.weight for c in found), reverse=True)


def test_the_same_samples_give_the_same_model_to_the_bit() -> None:
    a = fit_pca(samples(2_000), TAGS, variance=0.9, confidence=0.99)
    b = fit_pca(samples(2_000), TAGS, variance=0.9, confidence=0.99)
    for field in ("mean", "scale", "loadings", "eigenvalues"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert (a.t2_limit, a.spe_limit) == (b.t2_limit, b.spe_limit)


def test_what_cannot_make_a_model_is_refused_naming_the_point() -> None:
    data = samples(1_000)
    data[:, 2] = 30.0
    with pytest.raises(FitError, match="point C is constant") as info:
        fit_pca(data, TAGS, variance=0.9, confidence=0.99)
    assert info.value.point == "C"
    with pytest.raises(FitError, match="150 complete samples, at least 200 needed"):
        fit_pca(samples(150), TAGS, variance=0.9, confidence=0.99)
    with pytest.raises(FitError, match="at least 2 points"):
        fit_pca(samples(500)[:, :1], ("A",), variance=0.9, confidence=0.99)
    with pytest.raises(FitError, match="confidence"):
        fit_pca(samples(500), TAGS, variance=0.9, confidence=1.0)


def test_the_holdout_is_every_fourth_block_and_the_limit_at_least_the_quantile() -> None:
    train, holdout = split_holdout(np.arange(200.0).reshape(200, 1))
    assert (len(train), len(holdout)) == (150, 50)
    assert holdout[:10, 0].tolist() == list(range(30, 40))
    values = np.concatenate([np.ones(990), np.full(10, 100.0)])  # 1 % far out
    assert control_limit(values, 0.995) == 100.0  # the quantile wins over the fit
