"""TwoNN: known dimensions, agreement with skdim, duplicates, errors, chunking."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from vlmid.id import TwoNN, bootstrap_dimension, nearest_two, twonn, twonn_fit, twonn_scaling
from vlmid.id.benchmark import distance_matrix_only, subspace_gaussian

torch.set_num_threads(1)


def brute_r1_r2(X):
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    D.sort(axis=1)
    return D[:, 0], D[:, 1]


# --- data of known dimension; tolerance: 10 % at d <= 5 with 2000 points (TwoNN's spread
# there is a few %, its known downward bias grows only at higher d) ----------------------
@pytest.mark.parametrize("d", [2, 5])
def test_gaussian_in_linear_subspace(d):
    X = subspace_gaussian(2000, dim=64, intrinsic=d, seed=1)
    assert twonn(X) == pytest.approx(d, rel=0.10)


def test_sphere_and_swiss_roll():
    import skdim
    from sklearn.datasets import make_swiss_roll

    sphere = skdim.datasets.hyperSphere(2000, 4, random_state=0)  # S^4 in R^5: dimension 4
    assert sphere.shape == (2000, 5)
    assert twonn(sphere) == pytest.approx(4, rel=0.10)
    roll, _ = make_swiss_roll(2000, random_state=0)  # a rolled-up sheet: dimension 2
    assert twonn(roll) == pytest.approx(2, rel=0.10)
    ball = skdim.datasets.hyperBall(2000, 6, random_state=0)  # a solid 6-ball
    assert twonn(ball) == pytest.approx(6, rel=0.10)


def test_agrees_with_skdim_to_1e6():
    import skdim

    for X in (subspace_gaussian(600, dim=100, intrinsic=8, seed=3),  # skdim's chunked-matrix path
              skdim.datasets.hyperBall(500, 10, random_state=2)):     # skdim's kNN path (<= 25 dims)
        ours = TwoNN(discard_fraction=0.1).fit(X).dimension_
        ref = skdim.id.TwoNN(discard_fraction=0.1).fit(X).dimension_
        assert abs(ours - ref) / ref < 1e-6


def test_fit_is_the_line_through_the_origin():
    # mu drawn from the exact Pareto law with d = 7: the fit recovers it, and matches by hand
    rng = np.random.default_rng(0)
    mu = (1 - rng.random(20000)) ** (-1 / 7)
    assert twonn_fit(mu) == pytest.approx(7, rel=0.03)
    m = np.sort(mu)[:4]
    x, y = np.log(m), -np.log(1 - np.arange(1, 5) / 5)
    assert twonn_fit(mu[np.argsort(mu)[:5]], 0.1) == pytest.approx((x @ y) / (x @ x), rel=1e-12)


def test_neighbour_distances_exact_against_brute_force():
    X = subspace_gaussian(300, dim=40, intrinsic=6, seed=4) + 1000.0  # large offset: float32 cancellation
    r1, r2 = nearest_two(X)
    b1, b2 = brute_r1_r2(X)
    np.testing.assert_allclose(r1, b1, rtol=1e-9)
    np.testing.assert_allclose(r2, b2, rtol=1e-9)


def test_near_duplicates_keep_an_accurate_ratio():
    # pairs 1e-4 apart on coordinates of size ~1e3: float32 distances alone would be noise
    rng = np.random.default_rng(5)
    X = 1000.0 + rng.standard_normal((200, 30))
    X = np.vstack([X, X[:10] + 1e-4 * rng.standard_normal((10, 30))])
    r1, _ = nearest_two(X)
    b1, _ = brute_r1_r2(X)
    np.testing.assert_allclose(r1[:10], b1[:10], rtol=1e-6)
    assert np.all(r1[:10] < 1e-3)


def test_duplicates_are_dropped_and_counted():
    X = subspace_gaussian(400, dim=20, intrinsic=4, seed=6)
    X = np.vstack([X, X[:7], X[:3]])  # rows 0-2 three times, 3-6 twice
    est = TwoNN().fit(X)
    assert est.n_points_ == 410
    assert est.n_dropped_duplicates_ == 3 * 3 + 4 * 2
    assert est.mu_.size == 410 - 17 and np.all(np.isfinite(est.mu_))
    assert math.isfinite(est.dimension_)


@pytest.mark.parametrize("bad, match", [
    (np.zeros(10), "2-D"),
    (np.zeros((4, 3, 2)), "2-D"),
    (np.ones((2, 5)), "at least 3"),
    (np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 3.0], [1.0, 1.0]]), "NaN or inf"),
    (np.array([[0.0, 1.0], [np.inf, 1.0], [2.0, 3.0], [1.0, 1.0]]), "NaN or inf"),
    (np.vstack([np.ones((5, 3)), np.zeros((5, 3)), [[1.0, 2.0, 3.0]]]), "only 1 of 11"),
    ([["a", "b"], ["c", "d"], ["e", "f"]], "numeric"),
])
def test_bad_input_is_a_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        TwoNN().fit(bad)


def test_bad_parameters():
    X = subspace_gaussian(50, dim=5, intrinsic=2)
    with pytest.raises(ValueError, match="discard_fraction"):
        TwoNN(discard_fraction=1.0).fit(X)
    with pytest.raises(ValueError, match="ci_level"):
        TwoNN(ci_level=1.5).fit(X)
    with pytest.raises(ValueError, match="chunk_size"):
        TwoNN(chunk_size=0).fit(X)


def test_chunking_and_symmetry_give_identical_results():
    X = subspace_gaussian(500, dim=96, intrinsic=10, seed=7)
    ref = nearest_two(X, chunk_size=500, symmetric=False)
    for chunk in (1, 7, 64, 499):
        for sym in (True, False):
            r1, r2 = nearest_two(X, chunk_size=chunk, symmetric=sym)
            assert np.array_equal(r1, ref[0]) and np.array_equal(r2, ref[1]), (chunk, sym)
    assert TwoNN(chunk_size=7).fit(X).dimension_ == TwoNN().fit(X).dimension_


def test_float32_torch_input():
    X = subspace_gaussian(500, dim=64, intrinsic=5, seed=8)
    d64 = twonn(X)
    d32 = twonn(torch.from_numpy(X).float())
    assert d32 == pytest.approx(d64, rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_gpu_matches_cpu():
    X = subspace_gaussian(500, dim=64, intrinsic=5, seed=9)
    assert TwoNN(device="cuda").fit(X).dimension_ == pytest.approx(TwoNN(device="cpu").fit(X).dimension_, rel=1e-9)


def test_bootstrap_interval_brackets_the_estimate():
    X = subspace_gaussian(1000, dim=32, intrinsic=6, seed=10)
    est = TwoNN(n_bootstrap=100, random_state=0).fit(X)
    lo, hi = est.ci_
    assert lo < est.dimension_ < hi and hi - lo < 0.2 * est.dimension_
    again = TwoNN(n_bootstrap=100, random_state=0).fit(X)
    assert again.ci_ == est.ci_  # seeded
    boot = bootstrap_dimension(est.mu_, n_bootstrap=50, random_state=1)
    assert boot.shape == (50,) and np.std(boot) > 0
    assert math.isnan(TwoNN().fit(X).ci_[0])  # no bootstrap asked, no interval


def test_scaling_halves_the_sample_and_finds_the_plateau():
    X = subspace_gaussian(800, dim=32, intrinsic=4, seed=11)
    df = twonn_scaling(X, min_points=50)
    assert list(df.n_points) == [800, 400, 200, 100, 50]
    assert list(df.n_subsets) == [1, 2, 4, 8, 16]
    assert df.r2_mean.is_monotonic_increasing  # fewer points: coarser scale
    assert np.all(np.abs(df.id - 4) < 0.6)  # a linear subspace has no scale: flat at 4


def test_scaling_shows_noise_at_small_scales():
    # a 2-D plane plus small isotropic noise in 30-D: the finest scale sees the noise (ID high),
    # coarse scales see the plane (ID about 2)
    X = subspace_gaussian(2000, dim=30, intrinsic=2, noise=0.01, seed=12) * 10
    df = twonn_scaling(X, min_points=60)
    assert df.id.iloc[0] > df.id.iloc[-1]
    assert df.id.iloc[-1] == pytest.approx(2, abs=0.5)


def test_distance_matrix_only_runs():
    X = subspace_gaussian(100, dim=8, intrinsic=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(distance_matrix_only(X, chunk_size=30))


def test_validation_on_known_dimensions_recovers_them():
    from vlmid.id.benchmark import known_dimension_sets, validate_on_known

    sets = known_dimension_sets(400, seed=0)
    assert [d for _, d in sets.values()] == [5, 4, 6, 2, 20]
    table = validate_on_known(dict(list(sets.items())[:3]), n_bootstrap=10, seed=0)
    assert list(table.data) == list(sets)[:3]
    assert (table.rel_diff_vs_skdim < 1e-9).all()                 # the same fit as skdim's
    assert ((table.twonn - table.true_dimension).abs() < 1.0).all()  # low dimensions come back
