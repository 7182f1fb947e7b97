"""Effects with a 95 % interval: the paired bootstrap every comparison verdict of the study uses.

Two models scored on the same test items (per-image CIDEr-D, per-image correctness) give a
paired difference per item. Where the models were also fine-tuned with several random seeds,
the seeds are a second source of noise: the bootstrap below resamples both, the seeds and the
items (one draw of items shared by every seed, so the pairing is kept), and takes the
percentile interval of the mean difference. With one seed it is the ordinary paired bootstrap
over items.

    eff = paired_effect(a, b)            # a, b: (n_items,) or (n_seeds, n_items)
    eff.diff, eff.low, eff.high          # mean of a - b and its 95 % interval
    eff.verdict                          # +1 ahead, -1 behind, 0 undecided (the interval holds 0)

A model trained again with another random seed is a third source, the largest this study has:
:func:`across_builds` takes each build's own estimate (items and seeds already in it) and gives
their mean with a t interval over the builds, and says how many builds agree with the verdict's sign.

    eff = across_builds([0.03, -0.01, 0.02, 0.04, 0.01])   # one estimate per model build
    eff.diff, eff.low, eff.high, eff.stability               # mean, 95 % interval, builds that agree

A verdict is only as good as its interval: "undecided" is the honest answer when the interval
includes zero. :func:`items_needed` turns a measured interval into the number of items that
would narrow it to a target half-width (items' share of the noise only).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

LEVEL = 0.95
N_BOOT = 2000


@dataclass(frozen=True)
class Effect:
    """Mean paired difference with its bootstrap interval."""
    diff: float
    low: float
    high: float
    n_items: int
    n_seeds: int
    level: float = LEVEL

    @property
    def verdict(self) -> int:
        """+1 when the whole interval is above zero, -1 when below, 0 (undecided) otherwise."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self, prefix: str = "") -> dict:
        """``{prefix: diff, prefix_ci_low: ..., prefix_ci_high: ...}`` for metrics.json (no prefix: plain names)."""
        if not prefix:
            return {**asdict(self), "verdict": self.verdict}
        return {prefix: self.diff, f"{prefix}_ci_low": self.low, f"{prefix}_ci_high": self.high}

    def __str__(self) -> str:
        return f"{self.diff:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _as_seeds_items(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim < 2:
        raise ValueError(f"{name} must hold per-item scores: shape (n_items,) or (..., n_seeds, n_items)")
    if arr.shape[-1] < 2:
        raise ValueError(f"{name} has {arr.shape[-1]} item(s): a paired bootstrap needs at least 2")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or inf: score every item before comparing")
    return arr


def bootstrap_mean(d, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Effect:
    """Mean of per-item differences ``d`` of shape (n_items,), (n_seeds, n_items) or
    (n_groups, n_seeds, n_items) (leading groups are averaged, e.g. the three base scores of an
    averaged ID-prior gain), with a percentile interval from resampling seeds and items."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must lie in (0, 1), e.g. 0.95")
    if n_boot < 100:
        raise ValueError(f"n_boot={n_boot}: use at least 100 resamples (2000 by default)")
    d = _as_seeds_items(d, "d")
    d = d.reshape(-1, *d.shape[-2:])           # (groups, seeds, items)
    n_seeds, n_items = d.shape[-2:]
    rng = np.random.default_rng([seed, 7])
    means = np.empty(n_boot)
    per_seed_item = d.mean(axis=0)             # groups share the resampling of seeds and items
    for i in range(n_boot):
        items = rng.integers(0, n_items, size=n_items)
        seeds = rng.integers(0, n_seeds, size=n_seeds) if n_seeds > 1 else np.zeros(1, dtype=int)
        means[i] = per_seed_item[np.ix_(seeds, items)].mean()
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Effect(float(per_seed_item.mean()), float(low), float(high), int(n_items), int(n_seeds), level)


def paired_effect(a, b, scale_b: float = 1.0, **kwargs) -> Effect:
    """Mean of ``a - scale_b * b`` over paired items (and seeds), with its interval.

    ``scale_b`` states a margin claim: ``paired_effect(pruned, dense, 0.98)`` is above zero when
    the pruned model keeps more than 98 % of the dense score beyond the noise. ``b`` of shape
    (n_items,) is shared by every seed of ``a`` (e.g. one dense model against pruned seeds).
    """
    a, b = _as_seeds_items(a, "a"), _as_seeds_items(b, "b")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"a and b score different items ({a.shape[-1]} vs {b.shape[-1]}): pair them on the same test set")
    return bootstrap_mean(a - scale_b * b, **kwargs)


def paired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, level: float = LEVEL,
                      seed: int = 0) -> dict[str, float]:
    """:func:`paired_effect` of two 1-D score lists as a dict ``{"diff", "low", "high", "verdict"}``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"need two equally long sequences of at least 2 paired scores, got {len(a)} and {len(b)}")
    e = paired_effect(a, b, n_boot=n_boot, level=level, seed=seed)
    return {"diff": e.diff, "low": e.low, "high": e.high, "verdict": float(e.verdict)}


def items_needed(effect: Effect, target_half_width: float) -> int:
    """Test items for a half-width of ``target_half_width``, if the interval shrinks as 1/sqrt(items).

    The power estimate a notebook states when its interval is wider than its target: it holds
    for the items' share of the noise; the seeds' share does not shrink with more items.
    """
    if target_half_width <= 0:
        raise ValueError(f"target_half_width={target_half_width!r} must be > 0")
    return int(math.ceil(round(effect.n_items * (effect.half_width / target_half_width) ** 2, 6)))


def median_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """``(low, high, coverage)``: the distribution-free interval of the median of ``values`` from their
    order statistics, the narrowest ``[x_(k), x_(n+1-k)]`` whose coverage ``1 - 2 P(Bin(n, 1/2) < k)`` is at
    least ``level`` (no bootstrap: timing rounds are few). With too few values for ``level`` (fewer than 6
    for 95 %) it is ``[min, max]`` and its coverage is below ``level``: the caller should say so."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n < 2:
        raise ValueError(f"need at least 2 values for an interval, got {n}")
    coverage = lambda k: 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n  # noqa: E731
    k = 1
    while k + 1 <= n // 2 and coverage(k + 1) >= level:
        k += 1
    return float(x[k - 1]), float(x[n - k]), float(coverage(k))


# -- across model builds -------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildEffect:
    """An effect measured on several model builds, the builds as the unit of analysis.

    ``per_build`` holds each build's own estimate (its items and fine-tuning seeds already averaged
    in, as its notebook wrote it); ``diff`` is their mean and ``[low, high]`` its t interval;
    ``stability`` counts the builds whose own estimate has the sign of the verdict."""
    diff: float
    low: float
    high: float
    per_build: tuple[float, ...]
    level: float = LEVEL

    @property
    def n_builds(self) -> int:
        return len(self.per_build)

    @property
    def verdict(self) -> int:
        """+1 when the whole interval is above zero, -1 when below, 0 otherwise (also with one build:
        one build says nothing about the next)."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def stability(self) -> int:
        """How many builds' own estimate has the sign of the verdict (of the mean, when undecided)."""
        sign = self.verdict or int(np.sign(self.diff))
        return sum(1 for e in self.per_build if sign and np.sign(e) == sign)

    def as_dict(self, prefix: str) -> dict:
        """``{prefix, prefix_ci_low, prefix_ci_high, prefix_n_builds, prefix_stability}`` for metrics.json."""
        return {prefix: self.diff, f"{prefix}_ci_low": self.low, f"{prefix}_ci_high": self.high,
                f"{prefix}_n_builds": self.n_builds, f"{prefix}_stability": self.stability}

    def __str__(self) -> str:
        return f"{self.diff:+.3f} [{self.low:+.3f}, {self.high:+.3f}], {self.stability}/{self.n_builds} builds agree"


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, dof))


def across_builds(per_build: Sequence[float], level: float = LEVEL) -> BuildEffect:
    """The mean of the builds' own estimates with its t interval, ``mean +- t(K-1) s / sqrt(K)``.

    Each build's estimate already carries its own item and seed noise (its notebook averaged its
    test items and fine-tuning seeds), so the spread of the K estimates holds every source of
    variance at once: the build, the seeds and the items. Resampling the top level only is what
    Ren et al. (2010, "Nonparametric bootstrapping for hierarchical data") found right for nested
    data; with five builds a bootstrap of five values gives an interval about 30 % too narrow
    (its variance is (K-1)/K of the unbiased one and its quantiles are the normal's, not Student's),
    so the interval is Student's, exact when the build estimates are normal. With one build the
    interval is NaN and the verdict undecided: one build says nothing about the next.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must lie in (0, 1), e.g. 0.95")
    x = np.asarray(per_build, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"per_build must be one estimate per model build, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"per_build holds NaN or inf ({x.tolist()}): leave out the builds that measured nothing")
    mean = float(x.mean())
    if x.size == 1:
        return BuildEffect(mean, math.nan, math.nan, (mean,), level)
    half = _t_quantile(level, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return BuildEffect(mean, mean - half, mean + half, tuple(float(v) for v in x), level)


def builds_needed(effect: BuildEffect, target_half_width: float, most: int = 100) -> int | None:
    """Builds for a half-width of ``target_half_width`` if the builds' spread stays as measured
    (Student's quantile shrinks too); None when more than ``most`` would be needed or the spread is
    unknown (one build). The power estimate of a verdict decided across builds."""
    if target_half_width <= 0:
        raise ValueError(f"target_half_width={target_half_width!r} must be > 0")
    if effect.n_builds < 2:
        return None
    sd = float(np.std(effect.per_build, ddof=1))
    for k in range(2, most + 1):
        if _t_quantile(effect.level, k - 1) * sd / math.sqrt(k) <= target_half_width:
            return k
    return None
