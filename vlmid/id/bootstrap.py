"""Intervals that resample images, paired across layers.

Every site (layer) of a model is measured on the same N images. Resampling the ratios mu of one
layer (``TwoNN(n_bootstrap=...)``) says how precise that layer's estimate is, not whether two layers
differ: their estimates share the images, so their errors are correlated. Here the images are
resampled instead, once for all sites. Resample b draws N images with replacement; each site keeps
the distinct images drawn (a point cannot be its own neighbour) and fits TwoNN on them. Every
function of the per-site IDs (a tower's mean, a difference of two layers) then has B values, whose
percentiles give its interval, and differences between sites are paired.

    boot = ImageBootstrap(n_bootstrap=200, random_state=0).fit(features)   # {site: images x features}
    boot.samples_                                       # B x sites: the IDs of every resample
    boot.interval(lambda ids: ids["b"] - ids["a"])      # Effect: point, low, high

A resample holds about 1 - 1/e = 63 % of the images, so its IDs are those of fewer points than the
full estimate (``dimension_``, which is ``TwoNN.fit``'s): the interval measures the spread, and a
difference between sites, measured on the same points, carries little of that offset.

How a resample is fitted. The two smallest off-diagonal entries of each drawn row of the drawn
sub-matrix of distances are a drawn point's r1 and r2. They are read from each site's neighbour
lists, computed once: the ``n_neighbours`` nearest other points of every point, with exact float64
distances (the search of ``TwoNN.fit``). A drawn point's first two drawn entries are its r1 and r2;
when its list holds fewer than two drawn points (a chance of about 3e-6 per point with 16
neighbours), they are measured against every drawn point. Rows within ``duplicate_tol`` of each
other are one point, as in ``TwoNN.fit``: an image stands for the first row of its group.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from ..uncertainty import LEVEL, Effect
from .twonn import _check_discard, _check_duplicate_tol, check_points, distinct_neighbours, twonn_fit


def draw_images(n_images: int, n_bootstrap: int, random_state: int = 0) -> np.ndarray:
    """B x N image indices, drawn with replacement: resample b is row b (shared by every site)."""
    rng = np.random.default_rng(random_state)
    return rng.integers(0, n_images, size=(int(n_bootstrap), int(n_images)))


def percentile_effect(point: float, samples, level: float = LEVEL) -> Effect:
    """``point`` with the percentile interval of its resampled values ``samples`` (non-finite ones
    make the interval NaN: a resample that could not be fitted is not silently left out)."""
    samples = np.asarray(samples, dtype=float).ravel()
    if samples.size == 0 or not np.isfinite(samples).all():
        low = high = float("nan")
    else:
        low, high = (float(q) for q in np.quantile(samples, [(1 - level) / 2, (1 + level) / 2]))
    return Effect(float(point), low, high, n_items=int(samples.size), n_seeds=1, level=level)


@dataclass
class Neighbours:
    """One site's neighbour lists: what every resample of its images needs."""
    X: torch.Tensor       # the distinct rows (float, as given)
    group: np.ndarray     # image -> row of X that stands for it
    idx: np.ndarray       # rows x k: the k nearest other rows, nearest first
    dist: np.ndarray      # rows x k: their distances (float64)

    @classmethod
    def of(cls, X, n_neighbours: int = 16, duplicate_tol: float = 1e-6, device=None) -> "Neighbours":
        Xs = check_points(X)
        kept, group, dist, idx, _ = distinct_neighbours(Xs, n_neighbours, duplicate_tol, device=device)
        return cls(Xs[torch.as_tensor(kept)] if kept.size < Xs.shape[0] else Xs, group, idx, dist)

    def two_nearest(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(r1, r2) of every distinct point among ``images``, measured among those points only."""
        drawn = np.zeros(self.idx.shape[0], dtype=bool)
        drawn[self.group[images]] = True
        rows = np.flatnonzero(drawn)
        count = np.cumsum(drawn[self.idx[rows]], axis=1)
        first, second = np.argmax(count >= 1, axis=1), np.argmax(count >= 2, axis=1)
        r1, r2 = self.dist[rows, first], self.dist[rows, second]
        short = np.flatnonzero(count[:, -1] < 2)
        if short.size:  # the list ran out: measure against every drawn point
            r1[short], r2[short] = self._brute_two(rows[short], rows)
        return r1, r2

    def _brute_two(self, which: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = torch.cdist(self.X[torch.as_tensor(which)].to(torch.float64), self.X[torch.as_tensor(among)].to(
            torch.float64), compute_mode="donot_use_mm_for_euclid_dist").numpy()  # differences: exact
        d[which[:, None] == among[None, :]] = np.inf  # not its own neighbour
        two = np.sort(d, axis=1)[:, :2]
        return two[:, 0], two[:, 1]

    def dimension(self, images: np.ndarray, discard_fraction: float = 0.1) -> float:
        """TwoNN on the distinct points among ``images`` (r1 == 0, float underflow only, is dropped)."""
        r1, r2 = self.two_nearest(images)
        usable = r1 > 0
        return twonn_fit(r2[usable] / r1[usable], discard_fraction)


class ImageBootstrap:
    """TwoNN of every site on B resamples of the images, one draw of images shared by all sites.

    Parameters
    ----------
    n_bootstrap : resamples B.
    discard_fraction : as in ``TwoNN`` (0.1).
    ci_level : coverage of the percentile intervals (0.95).
    random_state : seed of the draws (the same seed gives the same images to every call).
    n_neighbours : length of the neighbour lists (longer lists: fewer fallbacks, more memory).
    duplicate_tol, device : as in ``TwoNN``.

    Attributes after ``fit``
    ------------------------
    sites_ : the site names, in the order given.
    draws_ : B x N image indices.
    n_distinct_ : the distinct images of each resample (B,).
    dimension_ : pandas Series, site -> TwoNN on all images (equal to ``TwoNN.fit``'s).
    samples_ : pandas DataFrame, B x sites: TwoNN of every site on every resample.
    """

    def __init__(self, n_bootstrap: int = 200, discard_fraction: float = 0.1, ci_level: float = LEVEL,
                 random_state: int = 0, n_neighbours: int = 16, duplicate_tol: float = 1e-6, device=None):
        self.n_bootstrap = n_bootstrap
        self.discard_fraction = discard_fraction
        self.ci_level = ci_level
        self.random_state = random_state
        self.n_neighbours = n_neighbours
        self.duplicate_tol = duplicate_tol
        self.device = device

    def _check_params(self) -> None:
        _check_discard(self.discard_fraction)
        _check_duplicate_tol(self.duplicate_tol)
        if not (isinstance(self.n_bootstrap, (int, np.integer)) and self.n_bootstrap >= 1):
            raise ValueError(f"n_bootstrap={self.n_bootstrap!r} must be a whole number >= 1")
        if not (0.0 < self.ci_level < 1.0):
            raise ValueError(f"ci_level={self.ci_level!r} is out of range: it must lie in (0, 1)")
        if not (isinstance(self.n_neighbours, (int, np.integer)) and self.n_neighbours >= 2):
            raise ValueError(f"n_neighbours={self.n_neighbours!r} must be a whole number >= 2")

    def fit(self, features: Mapping[str, object], progress: bool = False) -> "ImageBootstrap":
        """``features``: site -> images x features, the same images in the same order at every site."""
        import pandas as pd
        from tqdm.auto import tqdm

        self._check_params()
        sizes = {name: int(np.shape(X)[0]) for name, X in features.items()}
        if not sizes or len(set(sizes.values())) != 1:
            raise ValueError(f"every site must hold the same images (one row each), got rows {sizes}")
        n = next(iter(sizes.values()))
        self.sites_ = list(features)
        self.draws_ = draw_images(n, self.n_bootstrap, self.random_state)
        self.n_distinct_ = np.array([np.unique(d).size for d in self.draws_])
        everyone = np.arange(n)
        full, samples = {}, {}
        for name in tqdm(self.sites_, desc="image resamples per site", disable=not progress, leave=False):
            nb = Neighbours.of(features[name], self.n_neighbours, self.duplicate_tol, self.device)
            full[name] = nb.dimension(everyone, self.discard_fraction)
            samples[name] = [nb.dimension(d, self.discard_fraction) for d in self.draws_]
        self.dimension_ = pd.Series(full, dtype=float)
        self.samples_ = pd.DataFrame(samples, columns=self.sites_)
        return self

    def interval(self, statistic: Callable) -> Effect:
        """``statistic`` of the per-site IDs (a function of a DataFrame with one column per site and one
        row per resample, returning one value per row) on all images, with its percentile interval."""
        point = np.asarray(statistic(self.dimension_.to_frame().T), dtype=float).ravel()[0]
        return percentile_effect(point, statistic(self.samples_), self.ci_level)


def image_bootstrap(features: Mapping[str, object], n_bootstrap: int = 200, random_state: int = 0, **kwargs):
    """``ImageBootstrap(...).fit(features).samples_``: B x sites IDs of B shared image resamples."""
    return ImageBootstrap(n_bootstrap=n_bootstrap, random_state=random_state, **kwargs).fit(features).samples_
