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
:func:`hierarchical_effect` resamples builds, then seeds, then items, and says how many builds agree
with the verdict's sign (``BuildEffect.stability``).

    eff = paired_effect_across_builds(a, b)   # a[k], b[k]: build k's scores
    eff.per_build, eff.stability              # each build's own effect; builds that agree

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
class BuildEffect(Effect):
    """An effect measured on several model builds: its interval resamples the builds too, and
    ``per_build`` / ``stability`` say how many builds agree with the verdict's sign."""
    n_builds: int = 1
    per_build: tuple[float, ...] = ()

    @property
    def stability(self) -> int:
        """How many builds' own effect has the sign of the pooled effect (of the verdict, when decided)."""
        sign = self.verdict or (1 if self.diff > 0 else -1 if self.diff < 0 else 0)
        return sum(1 for e in self.per_build if sign and np.sign(e) == sign)

    def as_dict(self, prefix: str = "") -> dict:
        """:meth:`Effect.as_dict` plus ``prefix_n_builds`` and ``prefix_stability`` (builds that agree)."""
        out = super().as_dict(prefix)
        if prefix:
            out.update({f"{prefix}_n_builds": self.n_builds, f"{prefix}_stability": self.stability})
        return out

    def __str__(self) -> str:
        return f"{super().__str__()}, {self.stability}/{self.n_builds} builds agree"


def hierarchical_effect(per_build: Sequence, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                        small_sample: bool = True) -> BuildEffect:
    """Mean per-item difference over model builds, with the hierarchical bootstrap's interval.

    ``per_build``: one array of per-item differences per build, each (n_items,) or (n_seeds, n_items)
    (builds may score different items, e.g. test scenes drawn with the build's own random seed). One
    resample draws builds with replacement, then within each drawn build its fine-tuning seeds, then
    its items (one draw of items shared by that build's seeds, keeping the pairing), and averages
    (Saravanan, Berman and Sober 2020, "Application of the hierarchical bootstrap to multi-level data
    in neuroscience"). The effect is the mean of the builds' means: every build weighs the same.

    With few builds the percentile interval of the top level is too narrow: the bootstrap's variance
    of a mean of K values is (K-1)/K of the unbiased one. ``small_sample`` widens the interval about
    the effect by sqrt(K / (K-1)) (K > 1), the usual correction; with one build it is the paired
    bootstrap of :func:`bootstrap_mean` and says nothing about build-to-build variance. Where the builds
    do not really differ, resampling them re-counts the item noise of each build's mean, so the interval
    is then up to about sqrt(2) wider than the item bootstrap's: conservative, never easier to decide.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must lie in (0, 1), e.g. 0.95")
    if n_boot < 100:
        raise ValueError(f"n_boot={n_boot}: use at least 100 resamples (2000 by default)")
    builds = [_as_seeds_items(d, f"per_build[{k}]") for k, d in enumerate(per_build)]
    if not builds:
        raise ValueError("per_build is empty: pass one array of per-item differences per model build")
    builds = [b.reshape(-1, b.shape[-1]) for b in builds]      # (seeds, items) each
    means = np.array([b.mean() for b in builds])
    k = len(builds)
    rng = np.random.default_rng([seed, 11])
    boot = np.empty(n_boot)
    for i in range(n_boot):
        total = 0.0
        for j in rng.integers(0, k, size=k):
            b = builds[j]
            s = rng.integers(0, b.shape[0], size=b.shape[0]) if b.shape[0] > 1 else np.zeros(1, dtype=int)
            items = rng.integers(0, b.shape[1], size=b.shape[1])
            total += b[np.ix_(s, items)].mean()
        boot[i] = total / k
    diff = float(means.mean())
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    if small_sample and k > 1:
        c = math.sqrt(k / (k - 1))
        low, high = diff - c * (diff - low), diff + c * (high - diff)
    n_seeds = max(b.shape[0] for b in builds)
    n_items = int(sum(b.shape[1] for b in builds))
    return BuildEffect(diff, float(low), float(high), n_items, n_seeds, level, n_builds=k,
                       per_build=tuple(float(m) for m in means))


def paired_effect_across_builds(a: Sequence, b: Sequence, scale_b: float = 1.0, **kwargs) -> BuildEffect:
    """:func:`paired_effect` on each build's scores, pooled across builds: ``a[k]`` and ``b[k]`` are
    build k's per-item scores ((n_items,) or (n_seeds, n_items); ``b[k]`` of shape (n_items,) is shared
    by every seed of ``a[k]``)."""
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} builds and b {len(b)}: pass one entry per build to each")
    diffs = []
    for k, (x, y) in enumerate(zip(a, b)):
        x, y = _as_seeds_items(x, f"a[{k}]"), _as_seeds_items(y, f"b[{k}]")
        if x.shape[-1] != y.shape[-1]:
            raise ValueError(f"build {k}: a and b score different items ({x.shape[-1]} vs {y.shape[-1]})")
        diffs.append(x - scale_b * y)
    return hierarchical_effect(diffs, **kwargs)
