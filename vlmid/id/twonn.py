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
GB), on CPU or GPU, and only the upper triangle of the symmetric distance matrix. Candidates come
from float32 matrix products; the chosen neighbours' distances are then recomputed exactly in
float64, so near-duplicates keep an accurate ratio.

Duplicates. A duplicated row gives r1 = 0 (mu = inf), and dropping that point is not enough: a
point whose two nearest neighbours are a duplicated pair gets mu = 1, which biases the estimate
upwards (6-D data, 1,500 points, 300 rows duplicated: 7.3 instead of 6.0). ``TwoNN.fit``
therefore removes duplicate rows *before* the neighbour search (``distinct_rows``):

* two rows are the same point when their Euclidean distance is at most
  ``duplicate_tol * scale``, where ``scale`` is the RMS distance of the distinct rows from their
  mean, ``sqrt(mean_i |x_i - mean(x)|^2)`` (``rms_spread``); groups are the connected components
  of this relation (chains of such pairs), so any two rows that remain are farther apart;
* of each group the first row (in input order) is kept, the others are removed and counted
  (``n_dropped_duplicates_``); the fit is then exactly that of the kept rows in input order
  (the neighbour search is redone when near-duplicates were merged);
* ``duplicate_tol = 0`` removes exact duplicates only (equal in every coordinate).

Exact duplicates are found by sorting the rows. Near-duplicates are found by the neighbour search
itself: a row within the radius of another has r1 <= radius, and all pairs among such rows (and
their nearest neighbours) are measured exactly in float64. (The search misses a row's nearest
neighbour only when more than ``N_CANDIDATES`` rows tie with it within float32 rounding; r1 is
then off too, as without duplicates.) ``fit_distances(r1, r2)``, for when
only the distances are known, cannot see rows: it drops points with r1 == 0, as a fallback.
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
    r1, r2, _ = _nearest_two(X, chunk_size, device, symmetric)
    return r1, r2


def _nearest_two(X, chunk_size, device, symmetric: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nearest_two``'s (r1, r2), and the index of every row's nearest other row."""
    dist, idx = nearest_k(X, 2, chunk_size, device, symmetric)
    return dist[:, 0].copy(), dist[:, 1].copy(), idx[:, 0].copy()


@torch.no_grad()
def nearest_k(X, k: int, chunk_size: int | None = None, device=None,
              symmetric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distances (float64, increasing) and indices of the ``k`` nearest other rows of every row: n x k each.

    The search of ``nearest_two`` (which is ``k = 2``): float32 candidates, ``k + N_CANDIDATES - 2`` per
    row, re-measured exactly as differences in float64.
    """
    Xs = check_points(X)
    n = Xs.shape[0]
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= n - 1):
        raise ValueError(f"k={k!r} must be a whole number in [1, {n - 1}] (the other rows of {n})")
    dev = _resolve_device(device)
    Xs = Xs.to(dev)
    block = int(chunk_size) if chunk_size is not None else default_block_size(n)
    if block < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive number of rows")
    block = min(block, n)
    # Centering changes no distance but shrinks |x|^2, hence the float32 cancellation error.
    X32 = Xs.to(torch.float32)
    X32 = X32 - X32.mean(dim=0, keepdim=True)
    n_cand = min(n - 1, k + N_CANDIDATES - 2)
    # numpy's BLAS gets as many threads as torch is allowed (torch.set_num_threads governs both)
    with _blas_controller().limit(limits=torch.get_num_threads(), user_api="blas"):
        cand = _candidates(X32, n_cand, block, symmetric)
    del X32
    # rows re-measured at once: EXACT_ROWS with the usual candidates, fewer when there are more of them
    rows = EXACT_ROWS if n_cand <= N_CANDIDATES else max(1, EXACT_ROWS * N_CANDIDATES // n_cand)
    dist = torch.empty(n, k, dtype=torch.float64, device=dev)
    idx = torch.empty(n, k, dtype=torch.long, device=dev)
    for s0 in range(0, n, rows):
        s1 = min(n, s0 + rows)
        g = Xs[cand[s0:s1].reshape(-1)].to(torch.float64).view(s1 - s0, n_cand, -1)
        g -= Xs[s0:s1].to(torch.float64).unsqueeze(1)
        exact = g.mul_(g).sum(dim=2).sqrt_()
        top = torch.topk(exact, k, dim=1, largest=False, sorted=True)
        dist[s0:s1] = top.values
        idx[s0:s1] = torch.gather(cand[s0:s1], 1, top.indices)
    return dist.cpu().numpy(), idx.cpu().numpy()


# --- duplicates -------------------------------------------------------------------------------

def first_occurrences(X: torch.Tensor, return_groups: bool = False):
    """Indices (increasing) of the first occurrence of every distinct row of ``X``.

    Rows are equal when equal in every coordinate (-0.0 == 0.0); ``X[first_occurrences(X)]`` are
    the distinct rows in input order. ``return_groups``: also, for every row, the position in those
    indices of the first occurrence of its row.
    """
    n = X.shape[0]
    _, inverse = torch.unique(X, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), n, dtype=torch.long, device=X.device)
    first.scatter_reduce_(0, inverse, torch.arange(n, device=X.device), reduce="amin")
    ordered = torch.sort(first)
    if not return_groups:
        return ordered.values
    rank = torch.empty_like(ordered.indices)
    rank[ordered.indices] = torch.arange(rank.numel(), device=X.device)
    return ordered.values, rank[inverse]


def rms_spread(X: torch.Tensor, block: int = 4096) -> float:
    """RMS Euclidean distance of the rows of ``X`` from their mean, sqrt(mean_i |x_i - mean|^2),
    in float64 (a strip of ``block`` rows at a time): the scale of ``duplicate_tol``."""
    mean = X.mean(dim=0, dtype=torch.float64)
    total = 0.0
    for i0 in range(0, X.shape[0], block):
        c = X[i0:i0 + block].to(torch.float64) - mean
        total += float(c.mul_(c).sum())
    return math.sqrt(total / X.shape[0])


def _exact_distances(X: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|X[a] - X[b]| for index pairs, as differences in float64 (as in ``nearest_two``)."""
    d = X[a].to(torch.float64) - X[b].to(torch.float64)
    return d.mul_(d).sum(dim=1).sqrt_()


def pairs_within(X: torch.Tensor, radius: float, max_block_elems: int = 2**22) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i < j) of rows of ``X`` whose exact Euclidean distance is <= ``radius``.

    Candidates come from float64 products |a|^2 + |b|^2 - 2ab of the centered rows, kept when
    below a bound that no rounding can push a pair within ``radius`` over: (radius + e)^2 +
    4 (D + 2) eps (|a|^2 + |b|^2), with e = eps sqrt(2 (|a|^2 + |b|^2)) for the centering
    (a common shift, rounded per coordinate) and the second term for the products. They are then
    re-measured exactly. Meant for the few rows the neighbour search flags.
    """
    n, dim = X.shape
    Y = X.to(torch.float64)
    Y = Y - Y.mean(dim=0, keepdim=True)
    sq = (Y * Y).sum(dim=1)
    eps = torch.finfo(torch.float64).eps
    block = max(1, min(n, max_block_elems // max(n, 1)))
    ia, ib = [], []
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        d2 = sq[i0:i1, None] + sq[None, :] - 2.0 * (Y[i0:i1] @ Y.T)
        both = sq[i0:i1, None] + sq[None, :]
        bound = (radius + eps * torch.sqrt(2.0 * both)) ** 2 + 4.0 * (dim + 2) * eps * both
        rows = torch.arange(i0, i1, device=X.device)[:, None]
        a, b = torch.nonzero((d2 <= bound) & (torch.arange(n, device=X.device)[None, :] > rows), as_tuple=True)
        ia.append(a + i0)
        ib.append(b)
    a, b = torch.cat(ia), torch.cat(ib)
    close = _exact_distances(X, a, b) <= radius
    return a[close].cpu().numpy(), b[close].cpu().numpy()


def group_leaders(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each node of the graph on ``n`` nodes with edges (a, b), the smallest index of its
    connected component (the row kept in its place)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.full(label.max() + 1, n)
    np.minimum.at(first, label, np.arange(n))
    return first[label]


def first_of_groups(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows to keep: of each connected component of the graph on ``n`` nodes
    with edges (a, b), the smallest index."""
    return group_leaders(n, a, b) == np.arange(n)


def _check_duplicate_tol(duplicate_tol) -> float:
    try:
        tol = float(duplicate_tol)
    except (TypeError, ValueError):
        tol = math.nan
    if not (math.isfinite(tol) and tol >= 0.0):
        raise ValueError(f"duplicate_tol={duplicate_tol!r} must be a finite number >= 0: it is the distance, "
                         "relative to the data's RMS spread, below which rows count as one point "
                         "(0: exact duplicates only; default 1e-6)")
    return tol


def _need_three(n_distinct: int, n_rows: int) -> None:
    if n_distinct < 3:
        raise ValueError(f"only {n_distinct} of {n_rows} rows are distinct points (the others are duplicates, "
                         "within duplicate_tol): TwoNN needs at least 3 distinct points; pass more varied "
                         "data, or lower duplicate_tol if near-identical rows should count as different")


def distinct_rows(X, duplicate_tol: float = 1e-6, chunk_size: int | None = None, device=None,
                  return_groups: bool = False):
    """Remove duplicate rows of ``X`` and measure the neighbours of those that remain.

    Returns ``(kept, r1, r2, radius)``: the increasing indices of the rows kept (the first of each
    group of rows within ``radius = duplicate_tol * rms_spread(distinct rows)`` of each other,
    chains included), their first / second neighbour distances among the kept rows (exactly
    ``nearest_two(X[kept])``), and the radius. Exact duplicates are removed before any distance is
    computed; near-duplicates show up as r1 <= radius, and the search is redone without them.
    ``return_groups``: a fifth item, for every row of ``X`` the position in ``kept`` of the row
    kept in its place (``X[kept[groups]]`` is ``X`` with every duplicate replaced by its group's first row).
    """
    kept, groups, dist, _, radius = distinct_neighbours(X, 2, duplicate_tol, chunk_size, device)
    r1, r2 = dist[:, 0].copy(), dist[:, 1].copy()
    return (kept, r1, r2, radius, groups) if return_groups else (kept, r1, r2, radius)


def distinct_neighbours(X, k: int = 2, duplicate_tol: float = 1e-6, chunk_size: int | None = None, device=None):
    """``distinct_rows`` with the ``k`` nearest neighbours of every kept row among the kept rows:
    ``(kept, groups, dist, idx, radius)``, ``dist`` and ``idx`` as ``nearest_k(X[kept], k)`` gives them."""
    tol = _check_duplicate_tol(duplicate_tol)
    Xs = check_points(X).to(_resolve_device(device))
    n = Xs.shape[0]
    kept, groups = first_occurrences(Xs, return_groups=True)
    _need_three(kept.numel(), n)
    Xu = Xs[kept] if kept.numel() < n else Xs
    radius = tol * rms_spread(Xu) if tol > 0 else 0.0
    dist, idx = nearest_k(Xu, min(k, kept.numel() - 1), chunk_size, device)
    close = np.flatnonzero(dist[:, 0] <= radius) if radius > 0 else np.empty(0, dtype=np.int64)
    kept, groups = kept.cpu().numpy(), groups.cpu().numpy()
    if close.size == 0:
        return kept, groups, dist, idx, radius
    # every row within the radius of another is flagged (or is the nearest of a flagged row)
    flagged = np.union1d(close, idx[close, 0])
    a, b = pairs_within(Xu[torch.as_tensor(flagged, device=Xu.device)], radius)
    leader = np.arange(kept.size)
    leader[flagged] = flagged[group_leaders(flagged.size, a, b)]
    keep = leader == np.arange(kept.size)
    groups = (np.cumsum(keep) - 1)[leader[groups]]
    kept = kept[keep]
    _need_three(kept.size, n)
    dist, idx = nearest_k(Xs[torch.as_tensor(kept, device=Xs.device)], min(k, kept.size - 1), chunk_size, device)
    return kept, groups, dist, idx, radius


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
    duplicate_tol : rows count as the same point when their Euclidean distance is at most
        ``duplicate_tol * scale``, scale = RMS distance of the distinct rows from their mean
        (``rms_spread``); of each group (chains of such pairs) only the first row in input order
        is kept, before the neighbour search. 0: exact duplicates only. Default 1e-6, about
        float32 resolution: rows equal up to float rounding are merged, real neighbours are not.

    Attributes after ``fit``
    ------------------------
    dimension_ : the estimate, that of ``X[kept_]`` (the distinct rows in input order).
    kept_ : indices (increasing) of the input rows the estimate uses.
    mu_ : the ratios r2 / r1 of those rows, in input order.
    r1_, r2_ : their first / second neighbour distances among the kept rows (float64).
    n_points_ : rows given; n_used_ : rows the estimate uses (``mu_.size``);
    n_dropped_duplicates_ : rows removed as duplicates of another row (n_points_ - n_used_).
    duplicate_radius_ : the distance ``duplicate_tol * scale`` (0 with ``duplicate_tol=0``).
    n_fit_ : ratios in the fit after discarding the largest.
    x_, y_ : log(mu) and -log(1 - F) of the fitted points (for plots).
    ci_ : (low, high) bootstrap interval, std_ : bootstrap standard deviation (NaN without bootstrap).

    ``fit_distances(r1, r2)`` fits given distances (no rows, so no duplicate removal): points with
    r1 == 0 are dropped and counted in ``n_dropped_duplicates_``, as a fallback; their copies'
    neighbours still see them, so prefer ``fit(X)`` when the rows are at hand.
    """

    def __init__(self, discard_fraction: float = 0.1, n_bootstrap: int = 0, ci_level: float = 0.95,
                 chunk_size: int | None = None, device=None, random_state: int = 0,
                 duplicate_tol: float = 1e-6):
        self.discard_fraction = discard_fraction
        self.n_bootstrap = n_bootstrap
        self.ci_level = ci_level
        self.chunk_size = chunk_size
        self.device = device
        self.random_state = random_state
        self.duplicate_tol = duplicate_tol

    def _check_params(self) -> None:
        _check_discard(self.discard_fraction)
        if not (0.0 < self.ci_level < 1.0):
            raise ValueError(f"ci_level={self.ci_level!r} is out of range: it must lie in (0, 1)")
        if self.n_bootstrap < 0:
            raise ValueError(f"n_bootstrap={self.n_bootstrap!r} must be >= 0")

    def fit(self, X, y=None) -> "TwoNN":
        """Remove duplicate rows (see ``duplicate_tol``), then fit the neighbour ratios of the rest."""
        self._check_params()
        _check_duplicate_tol(self.duplicate_tol)
        X = check_points(X)
        n_rows = int(X.shape[0])
        kept, r1, r2, radius = distinct_rows(X, self.duplicate_tol, self.chunk_size, self.device)
        self.fit_distances(r1, r2)
        if self.n_used_ < r1.size:  # r1 == 0 among distinct rows: only by float64 underflow
            kept = kept[r1 > 0]
        self.kept_ = kept
        self.duplicate_radius_ = float(radius)
        self.n_points_ = n_rows
        self.n_dropped_duplicates_ = n_rows - self.n_used_
        return self

    def fit_distances(self, r1, r2) -> "TwoNN":
        """Fit from precomputed first / second neighbour distances (same checks and attributes).

        The fallback when only distances are known: points with r1 == 0 (duplicates) are dropped
        and counted; ``kept_`` indexes the points used.
        """
        self._check_params()
        r1 = np.asarray(r1, dtype=np.float64)
        r2 = np.asarray(r2, dtype=np.float64)
        if r1.shape != r2.shape or r1.ndim != 1:
            raise ValueError(f"r1 and r2 must be 1-D of equal length, got {r1.shape} and {r2.shape}")
        if not (np.all(np.isfinite(r1)) and np.all(np.isfinite(r2))):
            raise ValueError("r1 / r2 contain NaN or inf")
        if np.any(r2 < r1):
            raise ValueError("r2 < r1 for some points: pass first-neighbour distances as r1")
        usable = r1 > 0  # r1 == 0: a duplicate row, mu would be inf
        self.n_points_ = int(r1.size)
        self.n_dropped_duplicates_ = int((~usable).sum())
        if usable.sum() < 3:
            raise ValueError(f"only {int(usable.sum())} of {r1.size} points have a nonzero nearest-neighbour "
                             f"distance ({self.n_dropped_duplicates_} duplicates): TwoNN needs at least 3; "
                             "with the rows at hand, fit(X) removes duplicates properly")
        self.kept_ = np.flatnonzero(usable)
        self.duplicate_radius_ = 0.0
        self.r1_, self.r2_ = r1[usable], r2[usable]
        self.mu_ = self.r2_ / self.r1_
        self.n_used_ = int(self.mu_.size)
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
                f"ci_level={self.ci_level}, chunk_size={self.chunk_size}, device={self.device!r}, "
                f"duplicate_tol={self.duplicate_tol})")


def twonn(X, discard_fraction: float = 0.1, **kwargs) -> float:
    """The TwoNN estimate of ``X`` (points x features) as a float."""
    return TwoNN(discard_fraction=discard_fraction, **kwargs).fit(X).dimension_


def twonn_scaling(X, discard_fraction: float = 0.1, min_points: int = 32, max_subsets: int = 16,
                  random_state: int = 0, **kwargs):
    """TwoNN at decreasing sample sizes N, N/2, N/4, ... (DADApy's ``return_id_scaling_2NN``).

    Fewer points mean larger neighbour distances, so each level probes a coarser scale. At level
    k the points are split at random into 2^k disjoint subsets (at most ``max_subsets`` are used)
    and the estimates averaged. A plateau across levels is the scale-robust ID; noise inflates
    the estimate at the finest scales, curvature lowers it at the coarsest. Exact duplicate rows
    are removed first, so the sizes count distinct points (each subset's fit also removes
    near-duplicates, as ``TwoNN.fit`` does).
    Returns a DataFrame: n_points, id, id_std, n_subsets, r2_mean (typical scale probed).
    """
    import pandas as pd

    X64 = check_points(X)
    first = first_occurrences(X64)
    if first.numel() < X64.shape[0]:
        X64 = X64[first]
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
