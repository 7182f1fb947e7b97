"""The ID estimators beside TwoNN (GRIDE, Levina-Bickel MLE, participation ratio), on data whose answer is known."""
import math

import numpy as np
import pytest

from vlmid.id.estimators import (GRIDE, LevinaBickel, ParticipationRatio, gride_fit, gride_loglik, gride_scaling,
                                 participation_ratio)
from vlmid.id.validation import LINEAR, MANIFOLDS, Manifold, estimators, validate


def gaussian(n, d, ambient=30, seed=0):
    return Manifold("g", d, d, lambda k, rng: rng.normal(size=(k, d))).points(n, ambient, seed)


# -- GRIDE's likelihood, on ratios drawn from its own law -----------------------------------------------------
def ratios(d, n1, n2, n, seed=0):
    """mu = r_n2 / r_n1 of a d-dimensional Poisson process: mu^-d follows Beta(n1, n2 - n1)."""
    return np.random.default_rng(seed).beta(n1, n2 - n1, size=n) ** (-1.0 / d)


@pytest.mark.parametrize("n1,n2", [(1, 2), (2, 4), (4, 8), (3, 10)])
def test_gride_recovers_the_dimension_of_its_own_law_with_an_honest_standard_error(n1, n2):
    fits = [gride_fit(ratios(6.0, n1, n2, 400, seed), n1, n2) for seed in range(150)]
    d, se = np.array(fits).T
    assert abs(d.mean() - 6.0) < 3 * d.std() / math.sqrt(len(d)) + 0.05   # unbiased to within its noise
    assert se.mean() == pytest.approx(d.std(ddof=1), rel=0.2)              # the curvature's error is the spread


def test_gride_at_the_first_two_neighbours_is_twonns_likelihood_and_the_optimiser_finds_the_maximum():
    mu = ratios(4.0, 1, 2, 500)
    assert gride_fit(mu, 1, 2)[0] == pytest.approx(mu.size / np.log(mu).sum())
    mu = ratios(4.0, 2, 5, 500)
    d = gride_fit(mu, 2, 5)[0]
    grid = np.linspace(d - 0.5, d + 0.5, 2001)
    assert grid[np.argmax([gride_loglik(x, mu, 2, 5) for x in grid])] == pytest.approx(d, abs=1e-3)


def test_gride_rejects_what_it_cannot_fit():
    with pytest.raises(ValueError, match="ratios mu > 1"):
        gride_fit(np.array([1.0, 2.0, 3.0]), 1, 2)
    with pytest.raises(ValueError, match="1 <= n1 < n2"):
        gride_fit(ratios(3, 1, 2, 10), 2, 2)
    with pytest.raises(ValueError, match="need more than k=8"):
        GRIDE(n1=4).fit(gaussian(6, 2))


# -- on points ------------------------------------------------------------------------------------------------
def test_the_estimators_on_a_5_d_gaussian_and_duplicates_removed_first():
    X = gaussian(1000, 5)
    for est in (GRIDE(n1=2), LevinaBickel(k=10), ParticipationRatio()):
        assert est.fit(X).dimension_ == pytest.approx(5, rel=0.1), est
    doubled = np.vstack([X, X[:200]])
    g = GRIDE(n1=2).fit(doubled)
    assert g.n_dropped_duplicates_ == 200 and g.dimension_ == pytest.approx(GRIDE(n1=2).fit(X).dimension_)
    assert ParticipationRatio().fit(doubled).dimension_ == pytest.approx(ParticipationRatio().fit(X).dimension_)


def test_levina_bickel_agrees_with_skdim():
    skdim = pytest.importorskip("skdim")
    X = Manifold("cube", 4, 4, lambda k, rng: rng.uniform(size=(k, 4))).points(800, 20, 1)
    assert LevinaBickel(k=20).fit(X).dimension_ == pytest.approx(skdim.id.MLE(K=20).fit(X).dimension_, rel=1e-6)


def test_participation_ratio_by_hand_and_its_bias_correction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200_000, 3)) * np.sqrt([1.0, 1.0, 4.0])          # (1 + 1 + 4)^2 / (1 + 1 + 16) = 2
    assert participation_ratio(X) == pytest.approx(2.0, rel=0.01)
    few = gaussian(60, 20, ambient=40, seed=3)                             # 60 points of a 20-D isotropic cloud
    plain = [participation_ratio(gaussian(60, 20, 40, s), bias_corrected=False) for s in range(20)]
    fixed = [participation_ratio(gaussian(60, 20, 40, s)) for s in range(20)]
    assert np.mean(plain) < 16 and abs(np.mean(fixed) - 20) < 2           # the plain ratio is biased low
    assert participation_ratio(few) != participation_ratio(few, bias_corrected=False)
    with pytest.raises(ValueError, match="no variance"):
        participation_ratio(np.ones((5, 3)))


def test_gride_scaling_walks_the_scales_from_one_search():
    t = gride_scaling(gaussian(800, 3), max_n1=8)
    assert t.n1.tolist() == [1, 2, 4, 8] and (t.n2 == 2 * t.n1).all()
    assert t.id.between(2.5, 3.5).all() and (t.stderr.diff().dropna() < 0).all()   # more neighbours, less noise


# -- the validation table -------------------------------------------------------------------------------------
def test_validation_table_checks_each_estimator_against_its_own_truth():
    cases = [m for m in MANIFOLDS if m.name.startswith(("gaussian 5", "swiss"))]
    t = validate(estimators(), cases, n=600, seeds=(0, 1))
    assert set(t.estimator) == set(estimators()) and len(t) == 2 * len(estimators())
    truth = t.set_index(["estimator", "manifold"]).truth
    assert truth["participation ratio", cases[1].name] == 3 and truth["TwoNN", cases[1].name] == 2
    g5 = t[t.manifold == cases[0].name]
    assert (g5.rel_error.abs() < 0.1).all(), g5                            # every estimator on a flat 5-D cloud
    roll = t[t.manifold == cases[1].name].set_index("estimator")["mean"]
    assert all(abs(roll[e] - 2) < 0.3 for e in roll.index if e not in LINEAR)  # the manifold estimators see 2
    assert 2 < roll["participation ratio"] <= 3                            # the linear one sees the curl
