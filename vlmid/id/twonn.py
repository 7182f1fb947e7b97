"""TwoNN intrinsic dimension (Facco et al. 2017), in torch, scikit-learn style.

For each point, r1 and r2 are the distances to its first and second nearest neighbours.
On a manifold of dimension d with locally uniform density, mu = r2 / r1 follows a Pareto
law, P(mu <= x) = 1 - x^(-d), so

    -log(1 - F(mu)) = d * log(mu),

a line through the origin. The fit is the reference one (Ansuini et al. 2019, and
``skdim.id.TwoNN``): sort mu, take the empirical CDF F_i = i / N, drop the largest 10 %
of mu (the tail, where neighbours are far and the density is not uniform), and fit the
slope by least squares through the origin.

    >>> TwoNN(discard_fraction=0.1).fit(X).dimension_

The distances are computed block by block (bounded memory: 20,000 x 768 needs well under a
GB), on CPU or GPU, and only the upper triangle of the symmetric distance matrix. Candidates come from float32 matrix products; the chosen
neighbours' distances are then recomputed exactly in float64, so duplicates give exactly
r1 = 0 (dropped and counted) and near-duplicates keep an accurate ratio.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

# How many float32 candidates per row are re-ranked exactly in float64. Rounding of the
# expanded formula |a|^2 + |b|^2 - 2ab can swap neighbours whose distances agree to ~1e-7
# of the data's squared norm; a few spare candidates make the exact pair almost surely present.
N_CANDIDATES = 4
# Rows whose candidates are re-measured exactly at once: small enough to stay in cache
# (64 rows ran 3x faster than 512).
EXACT_ROWS = 64


def check_points(X, name: str = "X") -> torch.Tensor:
    """``X`` as a 2-D floating tensor of finite values with at least 3 rows, or a ValueError.

    Floating tensors and arrays keep their dtype (float64 input is not copied); others become float64.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            arr = np.asarray(X)
            t = torch.as_tensor(arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a numeric 2-D array (points x features): {err}") from None
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (points x features), got shape {tuple(t.shape)}")
    if t.is_complex():
        raise ValueError(f"{name} must be real-valued, got {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.shape[0] < 3:
        raise ValueError(f"{name} has {t.shape[0]} points: TwoNN needs at least 3")
    if t.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {tuple(t.shape)})")
    # one sum first: NaN and inf propagate into it, so the full check runs only when needed
    if not torch.isfinite(t.sum(dtype=torch.float64)) and not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        raise ValueError(f"{name} contains NaN or inf in {bad} row(s): clean or drop them first")
    return t


def default_block_size(n_points: int) -> int:
    """Rows per strip: about 8 strips (the upper triangle is then ~56 % of the matrix), at
    least 256 rows, and at most 32 MB of float32 distances per strip."""
    return int(min(n_points, max(256, math.ceil(n_points / 8)), max(1, 2**23 // n_points)))


@functools.lru_cache(maxsize=1)
def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _resolve_device(device) -> torch.device:
    return _default_device() if device is None else torch.device(device)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    # built once: each ThreadpoolController() scans the loaded libraries (~10 ms)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _gram(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """a @ b.T into ``out``. On CPU through numpy's BLAS (OpenBLAS), whose sgemm was twice as
    fast as torch's MKL on this machine's AMD CPU (``_candidates`` sets its thread count)."""
    if out.device.type != "cpu":
        return torch.mm(a, b.T, out=out)
    np.matmul(a.numpy(), b.numpy().T, out=out.numpy())
    return out


def _candidates(X32: torch.Tensor, k: int, block: int, symmetric: bool = True) -> torch.Tensor:
    """Indices of the k nearest other rows of every row, by float32 squared distance.

    Rows are taken in strips of ``block``. The distance matrix is symmetric, so a strip is
    compared only with itself and the rows after it (the upper triangle, about half the
    products): the strip's own rows pick candidates along its rows, the later rows pick theirs
    down its columns. Each row's candidates from all strips are merged once at the end.
    """
    n, dev = X32.shape[0], X32.device
    sq = (X32 * X32).sum(dim=1)
    strips = range(0, n, block)
    # slot s of a row holds its k best among strip s's rows (inf where nothing was offered)
    n_slots = len(strips) if symmetric else 1
    val = torch.full((n, n_slots, k), math.inf, device=dev)
    idx = torch.zeros((n, n_slots, k), dtype=torch.long, device=dev)
    buf = torch.empty(block * n, device=dev)  # reused: fresh large allocations cost page faults
    for s, i0 in enumerate(strips):
        i1 = min(n, i0 + block)
        c0 = i0 if symmetric else 0
        # |a|^2 + |b|^2 - 2 a.b for the strip against rows c0..n, in one matrix product
        d2 = _gram(-2.0 * X32[i0:i1], X32[c0:], out=buf[: (i1 - i0) * (n - c0)].view(i1 - i0, n - c0))
        d2.add_(sq[c0:].unsqueeze(0)).add_(sq[i0:i1].unsqueeze(1))
        d2[:, i0 - c0:i1 - c0].fill_diagonal_(math.inf)  # not its own neighbour (by index: duplicates stay)
        kk = min(k, n - c0)
        v, i = torch.topk(d2, kk, dim=1, largest=False, sorted=False)
        slot = s if symmetric else 0
        val[i0:i1, slot, :kk], idx[i0:i1, slot, :kk] = v, i + c0
        if symmetric and i1 < n:
            kk = min(k, i1 - i0)
            v, i = torch.topk(d2[:, i1 - c0:], kk, dim=0, largest=False, sorted=False)
            val[i1:, s, :kk], idx[i1:, s, :kk] = v.T, i.T + i0
    best = torch.topk(val.view(n, -1), k, dim=1, largest=False, sorted=False).indices
    return torch.gather(idx.view(n, -1), 1, best)


@torch.no_grad()
def nearest_two(X, chunk_size: int | None = None, device=None,
                symmetric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distances (r1, r2) from every row of ``X`` to its first and second nearest other rows.

    Candidates come from float32 distances; the chosen ones are re-measured exactly, as
    differences in float64, so a duplicate row gives r1 = 0 exactly. Memory: ``X``, a float32
    copy, and one ``chunk_size x N`` strip of distances (default: ``default_block_size``).
    ``symmetric=False`` computes the whole matrix instead of its upper triangle (a check).
    """
    Xs = check_points(X)
    n = Xs.shape[0]
    dev = _resolve_device(device)
    Xs = Xs.to(dev)
    block = int(chunk_size) if chunk_size is not None else default_block_size(n)
    if block < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive number of rows")
    block = min(block, n)
    # Centering changes no distance but shrinks |x|^2, hence the float32 cancellation error.
    X32 = Xs.to(torch.float32)
    X32 = X32 - X32.mean(dim=0, keepdim=True)
    k = min(n - 1, N_CANDIDATES)
    # numpy's BLAS gets as many threads as torch is allowed (torch.set_num_threads governs both)
    with _blas_controller().limit(limits=torch.get_num_threads(), user_api="blas"):
        cand = _candidates(X32, k, block, symmetric)
    del X32
    r = torch.empty(n, 2, dtype=torch.float64, device=dev)
    for s0 in range(0, n, EXACT_ROWS):
        s1 = min(n, s0 + EXACT_ROWS)
        g = Xs[cand[s0:s1].reshape(-1)].to(torch.float64).view(s1 - s0, k, -1)
        g -= Xs[s0:s1].to(torch.float64).unsqueeze(1)
        exact = g.mul_(g).sum(dim=2).sqrt_()
        r[s0:s1] = torch.topk(exact, 2, dim=1, largest=False, sorted=True).values
    r = r.cpu().numpy()
    return r[:, 0].copy(), r[:, 1].copy()


def twonn_fit(mu, discard_fraction: float = 0.1) -> float:
    """Slope of -log(1 - F_i) on log(mu_(i)) through the origin, after dropping the largest mu.

    ``mu`` are ratios r2 / r1 >= 1 of usable points (finite). Same arithmetic as
    ``skdim.id.TwoNN`` (F_i = i / N for i = 1..n_keep, n_keep = int(N * (1 - discard))).
    """
    _check_discard(discard_fraction)
    mu = np.sort(np.asarray(mu, dtype=np.float64).ravel())
    n = mu.size
    if n < 3:
        raise ValueError(f"only {n} usable point(s) (r1 > 0): TwoNN needs at least 3")
    if not np.all(np.isfinite(mu)):
        raise ValueError("mu contains NaN or inf: drop points with r1 == 0 first")
    n_keep = int(n * (1 - discard_fraction))
    if n_keep < 2:
        raise ValueError(f"discard_fraction={discard_fraction} leaves {n_keep} of {n} points for the fit: need 2")
    x = np.log(mu[:n_keep])
    y = -np.log(1.0 - np.arange(1, n_keep + 1) / n)
    sxx = float(np.dot(x, x))
    if sxx == 0.0:
        raise ValueError("every kept ratio r2/r1 is exactly 1 (r1 == r2, e.g. points on a regular grid): "
                         "TwoNN is undefined")
    return float(np.dot(x, y) / sxx)


def _check_discard(discard_fraction: float) -> None:
    if not (0.0 <= discard_fraction < 1.0):
        raise ValueError(f"discard_fraction={discard_fraction!r} is out of range: it must lie in [0, 1)")


def bootstrap_dimension(mu, discard_fraction: float = 0.1, n_bootstrap: int = 200,
                        random_state: int = 0) -> np.ndarray:
    """TwoNN estimates refitted on ``n_bootstrap`` resamples (with replacement) of the ratios mu.

    Resampling mu, not points: resampled points would duplicate rows and give r1 = 0. Under the
    model the mu are independent Pareto draws; neighbouring points share neighbours, so the
    interval is somewhat optimistic.
    """
    mu = np.asarray(mu, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    return np.array([twonn_fit(mu[rng.integers(0, mu.size, mu.size)], discard_fraction)
                     for _ in range(int(n_bootstrap))])


class TwoNN:
    """TwoNN intrinsic-dimension estimator.

    Parameters
    ----------
    discard_fraction : fraction of the largest ratios mu left out of the fit (0.1 in the paper).
    n_bootstrap : resamples of mu for a confidence interval (0: none).
    ci_level : coverage of that percentile interval.
    chunk_size : rows per block of the distance matrix (None: ``default_block_size``).
    device : "cpu", "cuda", ... (None: CUDA when available).
    random_state : seed of the bootstrap.

    Attributes after ``fit``
    ------------------------
    dimension_ : the estimate.
    mu_ : the usable ratios r2 / r1 (rows with r1 == 0 left out), in input order.
    r1_, r2_ : neighbour distances of every input row (float64).
    n_points_ : rows given; n_dropped_duplicates_ : rows with r1 == 0, left out;
    n_fit_ : ratios in the fit after discarding the largest.
    x_, y_ : log(mu) and -log(1 - F) of the fitted points (for plots).
    ci_ : (low, high) bootstrap interval, std_ : bootstrap standard deviation (NaN without bootstrap).
    """

    def __init__(self, discard_fraction: float = 0.1, n_bootstrap: int = 0, ci_level: float = 0.95,
                 chunk_size: int | None = None, device=None, random_state: int = 0):
        self.discard_fraction = discard_fraction
        self.n_bootstrap = n_bootstrap
        self.ci_level = ci_level
        self.chunk_size = chunk_size
        self.device = device
        self.random_state = random_state

    def fit(self, X, y=None) -> "TwoNN":
        _check_discard(self.discard_fraction)
        if not (0.0 < self.ci_level < 1.0):
            raise ValueError(f"ci_level={self.ci_level!r} is out of range: it must lie in (0, 1)")
        if self.n_bootstrap < 0:
            raise ValueError(f"n_bootstrap={self.n_bootstrap!r} must be >= 0")
        r1, r2 = nearest_two(X, chunk_size=self.chunk_size, device=self.device)
        return self.fit_distances(r1, r2)

    def fit_distances(self, r1, r2) -> "TwoNN":
        """Fit from precomputed first / second neighbour distances (same checks and attributes)."""
        r1 = np.asarray(r1, dtype=np.float64)
        r2 = np.asarray(r2, dtype=np.float64)
        if r1.shape != r2.shape or r1.ndim != 1:
            raise ValueError(f"r1 and r2 must be 1-D of equal length, got {r1.shape} and {r2.shape}")
        if not (np.all(np.isfinite(r1)) and np.all(np.isfinite(r2))):
            raise ValueError("r1 / r2 contain NaN or inf")
        if np.any(r2 < r1):
            raise ValueError("r2 < r1 for some points: pass first-neighbour distances as r1")
        usable = r1 > 0  # r1 == 0: a duplicate row, mu would be inf
        self.r1_, self.r2_ = r1, r2
        self.n_points_ = int(r1.size)
        self.n_dropped_duplicates_ = int((~usable).sum())
        if usable.sum() < 3:
            raise ValueError(f"only {int(usable.sum())} of {r1.size} points have a nonzero nearest-neighbour "
                             f"distance ({self.n_dropped_duplicates_} duplicates): TwoNN needs at least 3")
        self.mu_ = r2[usable] / r1[usable]
        self.dimension_ = twonn_fit(self.mu_, self.discard_fraction)
        n = self.mu_.size
        self.n_fit_ = int(n * (1 - self.discard_fraction))
        self.x_ = np.log(np.sort(self.mu_)[: self.n_fit_])
        self.y_ = -np.log(1.0 - np.arange(1, self.n_fit_ + 1) / n)
        self.ci_, self.std_ = (math.nan, math.nan), math.nan
        if self.n_bootstrap:
            boot = bootstrap_dimension(self.mu_, self.discard_fraction, self.n_bootstrap, self.random_state)
            alpha = (1.0 - self.ci_level) / 2
            self.ci_ = (float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)))
            self.std_ = float(boot.std(ddof=1))
        return self

    def fit_transform(self, X, y=None) -> float:
        return self.fit(X).dimension_

    def __repr__(self) -> str:
        return (f"TwoNN(discard_fraction={self.discard_fraction}, n_bootstrap={self.n_bootstrap}, "
                f"ci_level={self.ci_level}, chunk_size={self.chunk_size}, device={self.device!r})")


def twonn(X, discard_fraction: float = 0.1, **kwargs) -> float:
    """The TwoNN estimate of ``X`` (points x features) as a float."""
    return TwoNN(discard_fraction=discard_fraction, **kwargs).fit(X).dimension_


def twonn_scaling(X, discard_fraction: float = 0.1, min_points: int = 32, max_subsets: int = 16,
                  random_state: int = 0, **kwargs):
    """TwoNN at decreasing sample sizes N, N/2, N/4, ... (DADApy's ``return_id_scaling_2NN``).

    Fewer points mean larger neighbour distances, so each level probes a coarser scale. At level
    k the points are split at random into 2^k disjoint subsets (at most ``max_subsets`` are used)
    and the estimates averaged. A plateau across levels is the scale-robust ID; noise inflates
    the estimate at the finest scales, curvature lowers it at the coarsest.
    Returns a DataFrame: n_points, id, id_std, n_subsets, r2_mean (typical scale probed).
    """
    import pandas as pd

    X64 = check_points(X)
    n = X64.shape[0]
    if min_points < 3:
        raise ValueError(f"min_points={min_points!r} must be >= 3")
    rng = np.random.default_rng(random_state)
    rows, level = [], 0
    while n // 2**level >= min_points:
        size = n // 2**level
        perm = torch.as_tensor(rng.permutation(n))
        ids, r2s = [], []
        for s in range(min(2**level, max_subsets)):
            est = TwoNN(discard_fraction=discard_fraction, **kwargs).fit(X64[perm[s * size:(s + 1) * size]])
            ids.append(est.dimension_)
            r2s.append(float(np.mean(est.r2_)))
        rows.append(dict(n_points=size, id=float(np.mean(ids)),
                         id_std=float(np.std(ids, ddof=1)) if len(ids) > 1 else math.nan,
                         n_subsets=len(ids), r2_mean=float(np.mean(r2s))))
        level += 1
    return pd.DataFrame(rows)
