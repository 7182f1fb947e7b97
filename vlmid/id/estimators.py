"""Three more intrinsic-dimension estimators beside TwoNN, so that no ID claim rests on one estimator.

Each is an estimator object with ``fit(X)`` and ``dimension_`` (scikit-learn style, as :class:`TwoNN`):

    GRIDE(n1=4).fit(X).dimension_            # ratios of the n1-th and 2*n1-th neighbour distances (multi-scale)
    LevinaBickel(k=20).fit(X).dimension_     # maximum likelihood on the k nearest neighbours
    ParticipationRatio().fit(X).dimension_   # (sum of variances)^2 / sum of squared variances, bias-corrected

* **GRIDE** (Denti, Doimo, Laio and Mira, "The generalized ratios intrinsic dimension estimator",
  Scientific Reports 2022; implemented in ``dadapy``): on a manifold of dimension d with locally uniform
  density, the ratio mu = r_{n2} / r_{n1} of a point's n2-th and n1-th neighbour distances has the density

      f(mu) = d (mu^d - 1)^(n2 - n1 - 1) / (B(n2 - n1, n1) mu^((n2 - 1) d + 1)),   mu > 1,

  and d is its maximum-likelihood estimate, with a standard error from the curvature of the
  log-likelihood. ``n1 = 1, n2 = 2`` is TwoNN's likelihood; larger ``n1`` probes a larger neighbourhood
  and averages out noise at the finest scale (:func:`gride_scaling` walks n1 = 1, 2, 4, ...).
* **Levina-Bickel MLE** (Levina and Bickel, NeurIPS 2004, with MacKay and Ghahramani's correction of
  averaging inverse estimates): from the log ratios of the k-th to the j-th neighbour distance.
  ``skdim.id.MLE`` implements a variant of it.
* **Participation ratio** (PR; e.g. Gao, Trautmann et al. 2017; Recanatesi et al. 2022): a *linear*
  dimension, not a manifold's: a d-dimensional isotropic Gaussian has PR d, a curved 2-D sheet in 3-D
  has PR up to 3. From n samples the plain ratio is biased low when the dimension is large against n
  (Chun et al., 2025, argue for a corrected one); ``bias_corrected=True`` replaces the two traces by
  their unbiased estimates under Gaussian fourth moments.

All three remove duplicate rows first, as TwoNN does (:func:`vlmid.id.twonn.distinct_neighbours`), and
:mod:`vlmid.id.validation` checks them on manifolds of known dimension.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .twonn import check_points, distinct_neighbours, distinct_rows


def _neighbour_distances(X, k: int, duplicate_tol: float, chunk_size=None, device=None):
    """Distances to the ``k`` nearest distinct neighbours of each distinct row (n x k) and how many rows
    were duplicates."""
    X = check_points(X)
    kept, _, dist, _, _ = distinct_neighbours(X, k, duplicate_tol, chunk_size, device)
    if dist.shape[1] < k:
        raise ValueError(f"{kept.size} distinct points: need more than k={k} for the {k}-th neighbour")
    if not np.all(dist[:, 0] > 0):
        raise ValueError("a zero nearest-neighbour distance remains after removing duplicates")
    return dist, int(X.shape[0]) - int(kept.size)


# --- GRIDE ---------------------------------------------------------------------------------------------------
def gride_loglik(d: float, mu: np.ndarray, n1: int, n2: int) -> float:
    """The log-likelihood of dimension ``d`` for the ratios ``mu`` (all > 1) of the ``n2``-th to the ``n1``-th
    neighbour distance (the constant log B(n2 - n1, n1) left out)."""
    log_mu = np.log(mu)
    out = mu.size * math.log(d) - ((n2 - 1) * d + 1) * log_mu.sum()
    if n2 - n1 - 1 > 0:
        out += (n2 - n1 - 1) * np.log(np.expm1(d * log_mu)).sum()
    return float(out)


def gride_fit(mu, n1: int, n2: int, bounds=(1e-3, 1e3)) -> tuple[float, float]:
    """``(d, standard error)``: the maximum-likelihood dimension of the ratios ``mu`` and the inverse square
    root of the observed information (the log-likelihood's curvature at the maximum)."""
    from scipy.optimize import minimize_scalar

    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 1 or mu.size < 3 or not np.all(mu > 1):
        raise ValueError(f"need at least 3 ratios mu > 1 (distinct neighbour distances), got {mu.size}")
    if not (isinstance(n1, (int, np.integer)) and isinstance(n2, (int, np.integer)) and 1 <= n1 < n2):
        raise ValueError(f"n1={n1!r}, n2={n2!r}: need whole numbers 1 <= n1 < n2")
    if n2 == n1 + 1:   # closed form: d = N / sum(log mu)
        d = mu.size / float(np.log(mu).sum())
    else:
        found = minimize_scalar(lambda x: -gride_loglik(math.exp(x), mu, n1, n2), method="bounded",
                                bounds=tuple(math.log(b) for b in bounds), options={"xatol": 1e-9})
        d = math.exp(found.x)
    h = 1e-4 * d
    curvature = (gride_loglik(d + h, mu, n1, n2) - 2 * gride_loglik(d, mu, n1, n2) + gride_loglik(d - h, mu, n1, n2)) / h**2
    return d, (1.0 / math.sqrt(-curvature) if curvature < 0 else math.nan)


class GRIDE:
    """The GRIDE estimator at one scale: ratios of each point's ``n2``-th to ``n1``-th neighbour distance
    (``n2`` defaults to ``2 * n1``). After ``fit``: ``dimension_``, ``stderr_``, ``n_used_``,
    ``n_dropped_duplicates_``."""

    def __init__(self, n1: int = 4, n2: int | None = None, duplicate_tol: float = 1e-6, chunk_size=None, device=None):
        self.n1, self.n2 = n1, n2
        self.duplicate_tol, self.chunk_size, self.device = duplicate_tol, chunk_size, device

    def fit(self, X, y=None) -> "GRIDE":
        n2 = self.n2 if self.n2 is not None else 2 * self.n1
        dist, dropped = _neighbour_distances(X, n2, self.duplicate_tol, self.chunk_size, self.device)
        mu = dist[:, n2 - 1] / dist[:, self.n1 - 1]
        mu = mu[mu > 1]   # equal distances (ties) carry no scale information
        self.dimension_, self.stderr_ = gride_fit(mu, self.n1, n2)
        self.n_used_, self.n_dropped_duplicates_ = int(mu.size), dropped
        return self

    def __repr__(self) -> str:
        return f"GRIDE(n1={self.n1}, n2={self.n2}, duplicate_tol={self.duplicate_tol})"


def gride_scaling(X, max_n1: int = 32, duplicate_tol: float = 1e-6, chunk_size=None, device=None):
    """GRIDE at n1 = 1, 2, 4, ... up to ``max_n1`` (n2 = 2 n1) from one neighbour search: a DataFrame of
    n1, n2, id, stderr. A plateau over scales is the estimate to trust; noise raises the finest scale,
    curvature lowers the coarsest."""
    import pandas as pd

    dist, _ = _neighbour_distances(X, 2 * max_n1, duplicate_tol, chunk_size, device)
    rows, n1 = [], 1
    while n1 <= max_n1:
        mu = dist[:, 2 * n1 - 1] / dist[:, n1 - 1]
        d, se = gride_fit(mu[mu > 1], n1, 2 * n1)
        rows.append(dict(n1=n1, n2=2 * n1, id=d, stderr=se))
        n1 *= 2
    return pd.DataFrame(rows)


# --- Levina-Bickel -------------------------------------------------------------------------------------------
class LevinaBickel:
    """Levina and Bickel's maximum-likelihood ID on the ``k`` nearest neighbours, averaged as MacKay and
    Ghahramani propose: the inverse of the mean over points of (1 / (k - 1)) sum_j log(T_k / T_j), j < k.
    After ``fit``: ``dimension_``, ``local_`` (each point's own estimate), ``n_dropped_duplicates_``."""

    def __init__(self, k: int = 20, duplicate_tol: float = 1e-6, chunk_size=None, device=None):
        self.k, self.duplicate_tol, self.chunk_size, self.device = k, duplicate_tol, chunk_size, device

    def fit(self, X, y=None) -> "LevinaBickel":
        if not (isinstance(self.k, (int, np.integer)) and self.k >= 2):
            raise ValueError(f"k={self.k!r} must be a whole number >= 2")
        dist, dropped = _neighbour_distances(X, self.k, self.duplicate_tol, self.chunk_size, self.device)
        inverse = np.log(dist[:, -1:] / dist[:, :-1]).mean(axis=1)   # per point: 1 / its own estimate
        self.local_ = 1.0 / inverse
        self.dimension_ = float(1.0 / inverse.mean())
        self.n_dropped_duplicates_ = dropped
        return self

    def __repr__(self) -> str:
        return f"LevinaBickel(k={self.k}, duplicate_tol={self.duplicate_tol})"


# --- participation ratio -------------------------------------------------------------------------------------
def participation_ratio(X, bias_corrected: bool = True) -> float:
    """(tr C)^2 / tr(C^2) of the covariance C of ``X`` (rows are points). With ``bias_corrected``, both traces
    are replaced by their unbiased estimates from the sample covariance S with m = n - 1 degrees of freedom,
    under Gaussian fourth moments: E[tr(S^2)] = tr(C^2)(1 + 1/m) + (tr C)^2 / m and
    E[(tr S)^2] = (tr C)^2 + 2 tr(C^2) / m, solved for tr(C^2) and (tr C)^2."""
    X = check_points(X).to(dtype=torch.float64).cpu().numpy()
    n = X.shape[0]
    Xc = X - X.mean(axis=0)
    small = Xc @ Xc.T if n < X.shape[1] else Xc.T @ Xc   # the same nonzero eigenvalues, the smaller matrix
    S = small / (n - 1)
    tr, tr_sq = float(np.trace(S)), float(np.sum(S * S))
    if tr <= 0:
        raise ValueError("X has no variance: every row is the same point")
    if not bias_corrected:
        return tr**2 / tr_sq
    m = n - 1
    t2 = (tr_sq - tr**2 / m) / (1 + 1 / m - 2 / m**2)
    t1_sq = tr**2 - 2 * t2 / m
    if t2 <= 0 or t1_sq <= 0:
        raise ValueError(f"{n} points are too few for a bias-corrected participation ratio of {X.shape[1]} features")
    return t1_sq / t2


class ParticipationRatio:
    """The participation ratio as an estimator object (duplicate rows removed first, as for the others).
    After ``fit``: ``dimension_``, ``n_dropped_duplicates_``."""

    def __init__(self, bias_corrected: bool = True, duplicate_tol: float = 1e-6):
        self.bias_corrected, self.duplicate_tol = bias_corrected, duplicate_tol

    def fit(self, X, y=None) -> "ParticipationRatio":
        X = check_points(X)
        kept = distinct_rows(X, self.duplicate_tol)[0]
        self.dimension_ = participation_ratio(X[kept], self.bias_corrected)
        self.n_dropped_duplicates_ = int(X.shape[0]) - int(len(kept))
        return self

    def __repr__(self) -> str:
        return f"ParticipationRatio(bias_corrected={self.bias_corrected})"
