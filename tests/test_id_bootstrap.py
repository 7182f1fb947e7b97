"""Intervals that resample images, paired across layers (vlmid.id.bootstrap): each resample is the TwoNN
of the distinct images drawn, the draw is shared by every site, and the intervals cover known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from vlmid.id import ImageBootstrap, Neighbours, TwoNN, draw_images, image_bootstrap, percentile_effect, twonn_fit
from vlmid.id.twonn import distinct_rows


def gaussian(n, d, dim, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, dim))


def brute_force_id(X, images, discard_fraction=0.1):
    """The definition: the sub-matrix of distances of the distinct drawn images, each row's two smallest
    off-diagonal entries, TwoNN on their ratio."""
    sub = np.unique(images)
    D = cdist(X[sub], X[sub])
    np.fill_diagonal(D, np.inf)
    two = np.sort(D, axis=1)[:, :2]
    return twonn_fit(two[:, 1] / two[:, 0], discard_fraction)


def test_each_resample_is_twonn_on_the_distinct_images_drawn():
    X = gaussian(300, 5, 20, seed=0)
    boot = ImageBootstrap(n_bootstrap=15, random_state=3).fit({"a": X})
    assert np.array_equal(boot.draws_, draw_images(300, 15, random_state=3))
    for b, images in enumerate(boot.draws_):
        assert boot.samples_["a"][b] == pytest.approx(brute_force_id(X, images), rel=1e-9)
        assert boot.samples_["a"][b] == pytest.approx(TwoNN().fit(X[np.unique(images)]).dimension_, rel=1e-9)
    assert np.array_equal(boot.n_distinct_, [np.unique(d).size for d in boot.draws_])
    assert 0.55 < boot.n_distinct_.mean() / 300 < 0.70  # about 1 - 1/e of the images
    assert boot.dimension_["a"] == pytest.approx(TwoNN().fit(X).dimension_, rel=1e-12)


def test_short_neighbour_lists_fall_back_to_every_drawn_point():
    X = gaussian(200, 4, 12, seed=1)
    nb = Neighbours.of(X, n_neighbours=2)  # two neighbours: most drawn points lose one of them
    images = draw_images(200, 1, random_state=0)[0]
    r1, r2 = nb.two_nearest(images)
    sub = np.unique(images)
    D = cdist(X[sub], X[sub])
    np.fill_diagonal(D, np.inf)
    two = np.sort(D, axis=1)[:, :2]
    np.testing.assert_allclose(r1, two[:, 0], rtol=1e-12)
    np.testing.assert_allclose(r2, two[:, 1], rtol=1e-12)


def test_duplicate_images_are_one_point_as_in_twonn():
    X = gaussian(240, 5, 16, seed=2)
    X = np.vstack([X, X[:40]])  # 40 images repeat another one (identical captions, say)
    kept, *_, groups = distinct_rows(X, return_groups=True)
    assert np.array_equal(X[kept[groups]], X)
    boot = ImageBootstrap(n_bootstrap=10, random_state=0).fit({"a": X})
    assert boot.dimension_["a"] == pytest.approx(TwoNN().fit(X).dimension_, rel=1e-12)
    for b, images in enumerate(boot.draws_):
        assert boot.samples_["a"][b] == pytest.approx(TwoNN().fit(X[np.unique(images)]).dimension_, rel=1e-9)


def test_one_draw_is_shared_by_every_site():
    X, Y = gaussian(200, 3, 10, seed=3), gaussian(200, 6, 10, seed=4)
    both = image_bootstrap({"x": X, "y": Y}, n_bootstrap=12, random_state=5)
    alone = image_bootstrap({"y": Y}, n_bootstrap=12, random_state=5)
    np.testing.assert_array_equal(both["y"], alone["y"])
    assert list(both.columns) == ["x", "y"] and len(both) == 12
    with pytest.raises(ValueError, match="same images"):
        ImageBootstrap(n_bootstrap=5).fit({"x": X, "y": Y[:100]})


@pytest.mark.parametrize("d", [3, 6])
def test_interval_covers_a_known_dimension(d):
    X = gaussian(1000, d, 40, seed=d)
    boot = ImageBootstrap(n_bootstrap=100, random_state=0).fit({"x": X})
    e = boot.interval(lambda ids: ids["x"])
    assert e.low < d < e.high, e
    assert e.high - e.low < 0.3 * d  # and is informative
    assert e.diff == pytest.approx(TwoNN().fit(X).dimension_)


def test_paired_differences_between_layers():
    """Two "layers" of the same images: a rotated, rescaled copy has the same ID in every resample (the
    difference is exactly 0, though each layer's own interval is wide); adding four independent directions to
    a 4-D layer adds about four dimensions, and the paired interval finds it."""
    rng = np.random.default_rng(7)
    base = gaussian(800, 4, 4, seed=7)
    Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    copy = 3.0 * np.hstack([base, np.zeros((800, 12))]) @ Q
    wider = np.hstack([base, rng.standard_normal((800, 4))])
    boot = ImageBootstrap(n_bootstrap=100, random_state=1).fit({"base": base, "copy": copy, "wider": wider})
    same = boot.interval(lambda ids: ids["copy"] - ids["base"])
    assert abs(same.low) < 1e-6 and abs(same.high) < 1e-6
    own = boot.interval(lambda ids: ids["base"])
    assert own.high - own.low > 0.3
    more = boot.interval(lambda ids: ids["wider"] - ids["base"])
    assert more.low > 0 and more.low < 4 < more.high + 0.5, more  # TwoNN runs a little low at 8-D
    less = boot.interval(lambda ids: ids["base"] - ids["wider"])  # the other way round: below zero
    assert less.high < 0 and less.verdict == -1 and more.verdict == 1


def test_percentile_effect():
    e = percentile_effect(1.0, np.arange(101, dtype=float))
    assert (e.diff, e.n_items) == (1.0, 101) and (e.low, e.high) == pytest.approx((2.5, 97.5))
    assert np.isnan(percentile_effect(1.0, [1.0, np.nan]).low)


def test_bad_parameters():
    X = gaussian(50, 2, 4, seed=0)
    for bad in (dict(n_bootstrap=0), dict(discard_fraction=1.0), dict(n_neighbours=1), dict(ci_level=1.0)):
        with pytest.raises(ValueError):
            ImageBootstrap(**bad).fit({"x": X})


def test_torch_float32_features():
    X = torch.as_tensor(gaussian(200, 4, 16, seed=9), dtype=torch.float32)
    boot = ImageBootstrap(n_bootstrap=5).fit({"x": X})
    assert boot.dimension_["x"] == pytest.approx(TwoNN().fit(X).dimension_, rel=1e-12)
