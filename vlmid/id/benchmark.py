"""Time and value of our TwoNN against scikit-dimension's, in the same run.

Variants are timed round-robin (each repeat runs every variant once, in a rotated order), so
a burst of load on a shared machine slows all of them alike; the median over repeats is
reported. Both libraries get the same number of BLAS threads. The distance matrix alone
(float32 matrix products over the same chunks, no neighbour search) is the floor any exact
TwoNN pays; ours computes only its upper triangle, so it can come in under it.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

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
    ``vlmid_seconds, skdim_seconds, distance_seconds, vlmid_id, skdim_id, rel_diff, speedup``.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    if repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be >= 1")
    variants = {
        "vlmid": lambda X: TwoNN(discard_fraction=0.1, device="cpu").fit(X).dimension_,
        "skdim": _skdim_twonn,
        "distance matrix": lambda X: (distance_matrix_only(X), float("nan"))[1],
    }
    names = list(variants)
    old_threads = torch.get_num_threads()
    rows = []
    try:
        torch.set_num_threads(n_threads)
        with threadpool_limits(limits=n_threads):
            for n in sizes:
                X = subspace_gaussian(n, dim, intrinsic, seed=seed)
                for name in names:  # warm-up: first calls pay for imports and allocations
                    variants[name](X[: min(n, 500)])
                for rep in tqdm(range(repeats), desc=f"TwoNN benchmark, {n} x {dim}", disable=not progress):
                    order = names[rep % len(names):] + names[: rep % len(names)]
                    for name in order:
                        t0 = time.perf_counter()
                        value = variants[name](X)
                        rows.append(dict(n_points=n, dim=dim, method=name, repeat=rep,
                                         seconds=time.perf_counter() - t0, id=value))
    finally:
        torch.set_num_threads(old_threads)
    runs = pd.DataFrame(rows)
    med = runs.groupby(["n_points", "method"]).agg(seconds=("seconds", "median"), id=("id", "median"))
    summary = []
    for n in sizes:
        m = med.loc[n]
        ours, ref = m.loc["vlmid"], m.loc["skdim"]
        summary.append(dict(
            n_points=n, dim=dim, intrinsic=intrinsic, n_threads=n_threads, repeats=repeats,
            vlmid_seconds=ours.seconds, skdim_seconds=ref.seconds,
            distance_seconds=m.loc["distance matrix"].seconds,
            vlmid_id=ours.id, skdim_id=ref.id,
            rel_diff=abs(ours.id - ref.id) / abs(ref.id),
            speedup=ref.seconds / ours.seconds,
            overhead_vs_distance=ours.seconds / m.loc["distance matrix"].seconds,
        ))
    return runs, pd.DataFrame(summary)
