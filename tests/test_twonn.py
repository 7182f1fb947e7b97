"""TwoNN: known dimensions, agreement with skdim, duplicates, errors, chunking."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from vlmid.id import TwoNN, bootstrap_dimension, nearest_k, nearest_two, twonn, twonn_fit, twonn_scaling
from vlmid.id.benchmark import distance_matrix_only, subspace_gaussian
from vlmid.id.twonn import distinct_rows

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


def test_k_nearest_exact_against_brute_force():
    X = subspace_gaussian(300, dim=40, intrinsic=6, seed=4) + 1000.0
    dist, idx = nearest_k(X, 7, chunk_size=64)  # several strips
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :7], rtol=1e-9)
    np.testing.assert_array_equal(idx, np.argsort(D, axis=1)[:, :7])
    r1, r2 = nearest_two(X)  # the same search with k = 2
    assert np.array_equal(r1, nearest_k(X, 2)[0][:, 0]) and np.array_equal(r2, nearest_k(X, 2)[0][:, 1])
    with pytest.raises(ValueError, match="k=300"):
        nearest_k(X, 300)


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
    # (this test asserted the old behaviour, where every copy and its original had r1 == 0 and
    # were dropped from mu: 17 rows; now the 10 extra copies are removed before the search)
    X = subspace_gaussian(400, dim=20, intrinsic=4, seed=6)
    X = np.vstack([X, X[:7], X[:3]])  # rows 0-2 three times, 3-6 twice
    est = TwoNN().fit(X)
    assert est.n_points_ == 410
    assert est.n_dropped_duplicates_ == 3 * 2 + 4 * 1
    assert est.n_used_ == 400 and np.array_equal(est.kept_, np.arange(400))
    assert est.mu_.size == 400 and np.all(np.isfinite(est.mu_)) and np.all(est.mu_ > 1)
    assert est.dimension_ == TwoNN().fit(X[:400]).dimension_


def _with_copies(X, n_copies, seed):
    """``X`` with ``n_copies`` exact copies of random rows (some several times), all shuffled."""
    rng = np.random.default_rng(seed)
    Xd = np.vstack([X, X[rng.integers(0, len(X), n_copies)]])
    return Xd[rng.permutation(len(Xd))]


def _distinct_in_order(X):
    _, first = np.unique(X, axis=0, return_index=True)
    return X[np.sort(first)]


def test_exact_duplicates_give_the_estimate_of_the_distinct_rows():
    X = subspace_gaussian(1000, dim=32, intrinsic=5, seed=20)
    Xd = _with_copies(X, 250, seed=21)  # 250 of 1250 rows (20 %) are injected copies
    U = _distinct_in_order(Xd)
    assert len(U) == 1000
    for data, ref in ((Xd, U), (torch.from_numpy(Xd).float(), torch.from_numpy(U).float())):
        est, plain = TwoNN(n_bootstrap=20).fit(data), TwoNN(n_bootstrap=20).fit(ref)
        assert abs(est.dimension_ - plain.dimension_) / plain.dimension_ < 1e-9
        assert est.n_dropped_duplicates_ == 250 and est.n_points_ == 1250 and est.n_used_ == 1000
        assert est.ci_ == plain.ci_
        np.testing.assert_array_equal(np.asarray(data)[est.kept_], np.asarray(ref))
    # the old way (drop r1 == 0 after the search) is biased upwards on the same data
    biased = TwoNN().fit_distances(*nearest_two(Xd))
    assert biased.n_dropped_duplicates_ > 250 and biased.dimension_ > 1.05 * TwoNN().fit(U).dimension_


def test_six_dimensional_data_with_300_duplicated_rows():
    # the reported case: 1,500 points of a 6-D Gaussian in 64-D, 300 rows duplicated
    X = subspace_gaussian(1500, dim=64, intrinsic=6, seed=0)
    rng = np.random.default_rng(1)
    Xd = np.vstack([X, X[rng.choice(1500, 300, replace=False)]])
    Xd = Xd[rng.permutation(len(Xd))]
    est = TwoNN().fit(Xd)
    clean = TwoNN().fit(_distinct_in_order(Xd)).dimension_
    assert est.n_dropped_duplicates_ == 300
    assert abs(est.dimension_ - clean) / clean < 1e-9
    assert est.dimension_ == pytest.approx(6, rel=0.10)
    assert TwoNN().fit_distances(*nearest_two(Xd)).dimension_ > 7.0  # what it was before


def test_near_duplicates_within_the_tolerance_are_merged():
    X = subspace_gaussian(600, dim=32, intrinsic=5, seed=22)
    rng = np.random.default_rng(23)
    radius = 1e-6 * np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1).mean())
    src = rng.choice(600, 40, replace=False)
    src = np.concatenate([src, src[:10]])  # 10 rows get two perturbed copies: groups of three
    direction = rng.standard_normal((src.size, 32))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    for scale, merged in ((1e-3, True), (1e3, False)):
        order = rng.permutation(600 + src.size)
        Xn = np.vstack([X, X[src] + scale * radius * direction])[order]
        est = TwoNN().fit(Xn)
        assert est.duplicate_radius_ == pytest.approx(radius, rel=0.05)
        if merged:
            assert est.n_dropped_duplicates_ == src.size and est.n_used_ == 600
            # of each group the first row in input order is kept, and the fit is that of the kept rows
            assert np.all(np.diff(est.kept_) > 0)
            group = np.concatenate([np.arange(600), src])[order]  # source row of every input row
            assert np.array_equal(est.kept_, np.sort(np.unique(group, return_index=True)[1]))
            ref = TwoNN().fit(Xn[est.kept_]).dimension_
            assert abs(est.dimension_ - ref) / ref < 1e-9
            assert TwoNN(duplicate_tol=0).fit(Xn).n_dropped_duplicates_ == 0  # exact duplicates only
            # every row maps to the row kept in its place: its group's first row in input order
            kept, *_, groups = distinct_rows(Xn, return_groups=True)
            first = {g: i for i, g in reversed(list(enumerate(group)))}
            assert np.array_equal(kept[groups], [first[g] for g in group])
        else:
            assert est.n_dropped_duplicates_ == 0 and est.n_used_ == 600 + src.size


def test_pairs_within_matches_brute_force():
    from vlmid.id.twonn import first_of_groups, group_leaders, pairs_within

    rng = np.random.default_rng(24)
    X = 1000.0 + rng.standard_normal((120, 16))  # large offset: rounding of the expanded formula
    X[60:90] = X[:30] + 1e-7 * rng.standard_normal((30, 16))
    X[90:100] = X[60:70] + 1e-7 * rng.standard_normal((10, 16))
    D = cdist(X, X)
    small = np.sort(D[np.triu(D < 1e-5, k=1)])
    radius = float(small[small.size // 2] + small[small.size // 2 + 1]) / 2  # about half the close pairs
    a, b = pairs_within(torch.from_numpy(X), radius, max_block_elems=500)  # several strips
    ba, bb = np.nonzero(np.triu(D <= radius, k=1))
    assert set(zip(a.tolist(), b.tolist())) == set(zip(ba.tolist(), bb.tolist()))
    keep = first_of_groups(4, np.array([3, 1]), np.array([1, 2]))  # chain 1-3, 1-2: keep 0 and 1
    assert keep.tolist() == [True, True, False, False]
    assert group_leaders(4, np.array([3, 1]), np.array([1, 2])).tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize("tol", [-1e-6, math.nan, math.inf, "small"])
def test_duplicate_tol_is_checked(tol):
    X = subspace_gaussian(50, dim=5, intrinsic=2)
    with pytest.raises(ValueError, match="duplicate_tol=.* must be a finite number >= 0.*exact duplicates only"):
        TwoNN(duplicate_tol=tol).fit(X)


def test_all_rows_identical_is_a_clear_error():
    for X in (np.ones((50, 4)), np.vstack([np.ones((5, 3)), np.zeros((5, 3))])):
        with pytest.raises(ValueError, match=rf"only {len(np.unique(X, axis=0))} of {len(X)} rows are distinct"
                                             ".*at least 3 distinct"):
            TwoNN().fit(X)


def test_fit_distances_still_drops_zero_r1():
    # the fallback when only distances are known: r1 == 0 are dropped (and the error says what to do)
    X = subspace_gaussian(300, dim=10, intrinsic=3, seed=25)
    with pytest.raises(ValueError, match="only 0 of 600 .*fit\\(X\\) removes duplicates"):
        TwoNN().fit_distances(*nearest_two(np.vstack([X, X])))
    r1, r2 = nearest_two(np.vstack([X, X[:5]]))
    est = TwoNN().fit_distances(r1, r2)
    assert est.n_dropped_duplicates_ == 10 and est.n_used_ == 295
    assert np.array_equal(est.kept_, np.arange(5, 300))


@pytest.mark.parametrize("bad, match", [
    (np.zeros(10), "2-D"),
    (np.zeros((4, 3, 2)), "2-D"),
    (np.ones((2, 5)), "at least 3"),
    (np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 3.0], [1.0, 1.0]]), "NaN or inf"),
    (np.array([[0.0, 1.0], [np.inf, 1.0], [2.0, 3.0], [1.0, 1.0]]), "NaN or inf"),
    (np.vstack([np.ones((5, 3)), np.zeros((5, 3)), np.ones((1, 3))]), "only 2 of 11"),
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


@pytest.mark.gpu
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
