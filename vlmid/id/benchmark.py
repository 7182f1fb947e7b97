"""Time and value of our TwoNN against scikit-dimension's, in the same run.

Variants are timed with the repository's one timing protocol (``vlmid.profiling.time_variants``:
round-robin, each repeat runs every variant once in a rotated order), so a burst of load on a
shared machine slows all of them alike; the median over repeats is reported. Both libraries get
the same number of BLAS threads. The distance matrix alone
(float32 matrix products over the same chunks, no neighbour search) is the floor any exact
TwoNN pays; ours computes only its upper triangle, so it can come in under it.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from ..profiling import Variant, time_variants
from .twonn import TwoNN, _gram


def subspace_gaussian(n_points: int, dim: int = 768, intrinsic: int = 20, noise: float = 0.0,
                      seed: int = 0) -> np.ndarray:
    """A Gaussian cloud in a random ``intrinsic``-dimensional linear subspace of R^dim."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_points, intrinsic)) @ rng.standard_normal((intrinsic, dim))
    if noise:
        X = X + noise * rng.standard_normal((n_points, dim))
    return X


@torch.no_grad()
def distance_matrix_only(X: np.ndarray, chunk_size: int | None = None) -> float:
    """The full float32 squared-distance matrix, in row chunks through the same BLAS call as
    ``nearest_two``, and nothing else (no neighbour search); returns a checksum."""
    X32 = torch.as_tensor(X, dtype=torch.float32)
    X32 = X32 - X32.mean(dim=0, keepdim=True)
    sq = (X32 * X32).sum(dim=1)
    n = X32.shape[0]
    chunk = chunk_size or max(1, min(n, 2**23 // n))  # 32 MB of float32 per chunk
    buf = torch.empty(min(chunk, n) * n)
    total = 0.0
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        d2 = _gram(-2.0 * X32[start:stop], X32, out=buf[: (stop - start) * n].view(stop - start, n))
        d2.add_(sq.unsqueeze(0)).add_(sq[start:stop].unsqueeze(1))
        total += float(d2[:, 0].sum())  # touch the result so nothing is skipped
    return total


def _skdim_twonn(X: np.ndarray) -> float:
    import skdim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(skdim.id.TwoNN(discard_fraction=0.1).fit(X).dimension_)


def benchmark_twonn(sizes=(2000, 5000), dim: int = 768, intrinsic: int = 20, repeats: int = 5,
                    n_threads: int = 1, seed: int = 0, progress: bool = True):
    """Median seconds and estimates of vlmid vs skdim TwoNN (and the distance matrix alone).

    Returns ``(runs, summary)``: every timed call, and one row per size with
    ``vlmid_seconds, skdim_seconds, distance_seconds, vlmid_id, skdim_id, rel_diff, speedup`` (the ratio
    of the medians) and ``speedup_low, speedup_high, speedup_coverage``: the order-statistic interval of the
    median of the per-round ratios (each round times both estimators back to back, so the pair shares
    the machine's state; :func:`vlmid.uncertainty.median_interval`).
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    if repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be >= 1")
    variants = {
        "vlmid": lambda X: TwoNN(discard_fraction=0.1, device="cpu").fit(X).dimension_,
        "skdim": _skdim_twonn,
        "distance matrix": lambda X: (distance_matrix_only(X), float("nan"))[1],
    }
    old_threads = torch.get_num_threads()
    rows = []
    try:
        torch.set_num_threads(n_threads)
        with threadpool_limits(limits=n_threads):
            for n in sizes:
                X = subspace_gaussian(n, dim, intrinsic, seed=seed)
                ids = {name: fn(X) for name, fn in variants.items()}  # deterministic: once each (and a warm-up)
                times = time_variants([Variant(name, run=functools.partial(fn, X)) for name, fn in variants.items()],
                                      repeats=repeats, warmup=0, progress=progress)
                rows += [dict(n_points=n, dim=dim, method=name, repeat=rep, seconds=t, id=ids[name])
                         for name, ts in times.items() for rep, t in enumerate(ts)]
    finally:
        torch.set_num_threads(old_threads)
    from ..uncertainty import median_interval

    runs = pd.DataFrame(rows)
    med = runs.groupby(["n_points", "method"]).agg(seconds=("seconds", "median"), id=("id", "median"))
    summary = []
    for n in sizes:
        m = med.loc[n]
        ours, ref = m.loc["vlmid"], m.loc["skdim"]
        by_round = runs[runs.n_points == n].pivot(index="repeat", columns="method", values="seconds")
        ratios = by_round["skdim"] / by_round["vlmid"]
        low, high, coverage = median_interval(ratios) if repeats > 1 else (np.nan, np.nan, np.nan)
        summary.append(dict(
            n_points=n, dim=dim, intrinsic=intrinsic, n_threads=n_threads, repeats=repeats,
            vlmid_seconds=ours.seconds, skdim_seconds=ref.seconds,
            distance_seconds=m.loc["distance matrix"].seconds,
            vlmid_id=ours.id, skdim_id=ref.id,
            rel_diff=abs(ours.id - ref.id) / abs(ref.id),
            speedup=ref.seconds / ours.seconds, speedup_low=low, speedup_high=high, speedup_coverage=coverage,
            overhead_vs_distance=ours.seconds / m.loc["distance matrix"].seconds,
        ))
    return runs, pd.DataFrame(summary)


def known_dimension_sets(n_points: int, seed: int = 0) -> dict[str, tuple[np.ndarray, int]]:
    """Data sets whose intrinsic dimension is known (skdim.datasets in spirit): name -> (X, d)."""
    import skdim
    from sklearn.datasets import make_swiss_roll

    return {
        "Gaussian, 5-D subspace of 64-D": (subspace_gaussian(n_points, 64, 5, seed=seed), 5),
        "sphere S^4 in R^5": (skdim.datasets.hyperSphere(n_points, 4, random_state=seed), 4),
        "solid 6-ball": (skdim.datasets.hyperBall(n_points, 6, random_state=seed), 6),
        "swiss roll": (make_swiss_roll(n_points, random_state=seed)[0], 2),
        "Gaussian, 20-D subspace of 768-D": (subspace_gaussian(n_points, 768, 20, seed=seed), 20),
    }


def validate_on_known(sets: dict[str, tuple[np.ndarray, int]], n_bootstrap: int = 200, seed: int = 0):
    """Our TwoNN (with its bootstrap interval) and skdim's on each known-dimension set, one row each."""
    import pandas as pd

    rows = []
    for name, (X, d) in sets.items():
        est = TwoNN(n_bootstrap=n_bootstrap, random_state=seed).fit(X)
        ref = _skdim_twonn_default(X)
        rows.append(dict(data=name, true_dimension=d, twonn=est.dimension_, ci_low=est.ci_[0], ci_high=est.ci_[1],
                         skdim=ref, rel_diff_vs_skdim=abs(est.dimension_ - ref) / ref))
    return pd.DataFrame(rows)


def _skdim_twonn_default(X: np.ndarray) -> float:
    import skdim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skdim.id.TwoNN().fit(X).dimension_


def twonn_rate(n_points: int, dims: int, n_bootstrap: int, seed: int = 0) -> float:
    """Seconds of one TwoNN fit (with ``n_bootstrap`` resamples) of ``n_points`` Gaussian points in ``dims``:
    the "twonn fit" unit of notebook 01's plan (:mod:`vlmid.harness.plan`)."""
    from ..harness.plan import seconds_per_item

    points = torch.randn(n_points, dims, generator=torch.Generator().manual_seed(seed)).numpy()
    return seconds_per_item(lambda: TwoNN(n_bootstrap=n_bootstrap, random_state=seed).fit(points), 1, warmup=0)
