"""The comparisons notebook 02 decides, each an effect with its 95 % interval.

Every pruning run is scored on the same test scenes, so two runs give a paired difference per
scene; the fine-tuning seeds are resampled too (:func:`vlmid.uncertainty.paired_effect`). The
scores are ``{(method, seed, sparsity): per-scene CIDEr-D}``, as notebook 02 collects them.

    gains = prior_gains(scores, ["magnitude", "gradient", "platon"], seeds, 0.4)
    table = method_effects(scores, dense_per_scene, seeds, 0.4)
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..uncertainty import Effect, bootstrap_mean, paired_effect
from .finetune import method_label

Scores = Mapping[tuple, np.ndarray]


def seeds_by_items(scores: Scores, method: str, seeds: Sequence[int], sparsity: float) -> np.ndarray:
    """Per-scene scores of ``method`` at ``sparsity`` for every seed: shape (n_seeds, n_scenes)."""
    missing = [s for s in seeds if (method, s, sparsity) not in scores]
    if missing:
        raise KeyError(f"no per-scene scores for {method!r} at sparsity {sparsity} with seed(s) {missing}: "
                       f"run every method with the same seeds before comparing")
    return np.stack([np.asarray(scores[(method, s, sparsity)], dtype=float) for s in seeds])


def prior_gains(scores: Scores, base_methods: Sequence[str], seeds: Sequence[int], sparsity: float,
                mean_of: Sequence[str] | None = None,
                prior_label: Callable[[str], str] = partial(method_label, id_prior=True),
                seed: int = 0) -> pd.DataFrame:
    """The ID prior's effect on each base score (``<m> + ID`` minus ``<m>``), and their mean over
    ``mean_of`` (default: all ``base_methods``) as the row ``mean``: one row each with the effect,
    its interval and the verdict (+1 helps, -1 hurts, 0 undecided)."""
    rows, diffs = [], {}
    for m in base_methods:
        d = seeds_by_items(scores, prior_label(m), seeds, sparsity) - seeds_by_items(scores, m, seeds, sparsity)
        diffs[m] = d
        rows.append(_row(m, bootstrap_mean(d, seed=seed)))
    mean_of = list(mean_of or base_methods)
    rows.append(_row("mean of " + ", ".join(mean_of), bootstrap_mean(np.stack([diffs[m] for m in mean_of]), seed=seed)))
    return pd.DataFrame(rows)


def method_effects(scores: Scores, dense: np.ndarray, seeds: Sequence[int], sparsity: float,
                   methods: Sequence[str] | None = None, keep_fraction: float = 0.98, seed: int = 0) -> pd.DataFrame:
    """Every method at ``sparsity`` against the dense model and against the best method, sorted best first.

    Columns: ``method``, ``CIDEr`` (mean over seeds and scenes), ``vs_dense`` (+ ``_ci_low``/``_ci_high``),
    ``vs_<keep_fraction>_dense`` (CIDEr-D minus ``keep_fraction`` of dense: above zero beyond the noise
    means the method keeps more than that fraction), ``vs_best`` (the method minus the best one; the
    best's row holds its margin over the runner-up instead).
    """
    methods = list(methods or sorted({k[0] for k in scores if k[2] == sparsity and k[1] in seeds}))
    per = {m: seeds_by_items(scores, m, seeds, sparsity) for m in methods}
    order = sorted(methods, key=lambda m: -per[m].mean())
    tag = f"vs_{keep_fraction:g}_dense"
    rows = []
    for rank, m in enumerate(order):
        vs_dense = paired_effect(per[m], dense, seed=seed)
        vs_frac = paired_effect(per[m], dense, keep_fraction, seed=seed)
        other = order[1] if rank == 0 else order[0]
        if len(order) > 1:
            vs_best = bootstrap_mean(per[m] - per[other], seed=seed)
        else:
            vs_best = Effect(0.0, 0.0, 0.0, per[m].shape[1], per[m].shape[0])
        rows.append({"method": m, "CIDEr": float(per[m].mean()), "seeds": per[m].shape[0],
                     **_triple("vs_dense", vs_dense), **_triple(tag, vs_frac), **_triple("vs_best", vs_best),
                     "compared_with": other if len(order) > 1 else ""})
    return pd.DataFrame(rows)


def _triple(name: str, e: Effect) -> dict:
    return {name: e.diff, f"{name}_ci_low": e.low, f"{name}_ci_high": e.high}


def _row(label: str, e: Effect) -> dict:
    return {"base score": label, "gain": e.diff, "ci_low": e.low, "ci_high": e.high, "verdict": e.verdict,
            "n_scenes": e.n_items, "n_seeds": e.n_seeds}
