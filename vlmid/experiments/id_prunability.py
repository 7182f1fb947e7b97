"""Does a unit's intrinsic dimension predict how prunable it is? The statistics of the study's central claim.

A *unit* is one block's Linears of one kind (``vision.2``, ``language.1``, ``fusion.1``). For each unit
the notebook measures its ID (several estimators, on training images, never the test scenes) and its
prunability (the quality lost when that unit alone is pruned, :func:`vlmid.pruning.unit_prunability`,
on validation scenes). The claim "low-ID layers are redundant, high-ID layers critical" says the two rank
alike: Spearman's rho between ID and loss above zero.

    table = unit_table(prunability, ids)                  # one row per unit: group, ID per estimator, loss
    rhos = rank_correlations(table, "id_TwoNN", "loss")   # overall, within each tower, and the towers alone

Across two or three towers, any quantity that differs between towers correlates with ID, so the claim
is decided *within* towers too, and beside the overall rho stands the rho that the towers' mean IDs
alone reach (each unit given its tower's mean ID): what the ordering of towers explains by itself.
Each build gives one rho per comparison; :func:`pooled` pools them across builds
(:func:`vlmid.uncertainty.across_builds`: mean and Student's interval).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..uncertainty import across_builds

TOWERS = ("vision", "language", "fusion")
OVERALL, TOWERS_ONLY = "all units", "tower means only"


def unit_table(prunability, ids: Mapping[str, Mapping[str, float]], metric: str = "CIDEr"):
    """One row per unit: ``unit``, ``group``, ``id_<estimator>`` for each estimator in ``ids``
    ({estimator: {unit: ID}}) and ``loss``: the mean over sparsities of ``drop_<metric>`` in ``prunability``
    (:func:`vlmid.pruning.unit_prunability`), the area under the unit's loss curve."""
    column = f"drop_{metric}"
    if column not in prunability:
        raise KeyError(f"the prunability table has no {column!r} (its metrics: "
                       f"{[c[5:] for c in prunability.columns if c.startswith('drop_')]})")
    t = prunability.groupby(["unit", "group"], sort=False)[column].mean().rename("loss").reset_index()
    for name, per_unit in ids.items():
        missing = sorted(set(t.unit) - set(per_unit))
        if missing:
            raise KeyError(f"estimator {name!r} has no ID for units {missing}")
        t[f"id_{name}"] = t.unit.map(per_unit).astype(float)
    return t


def spearman(x, y) -> float:
    """Spearman's rho of two equally long sequences (NaN when either is constant or shorter than 3)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def rank_correlations(table, x: str, y: str = "loss") -> dict[str, float]:
    """rho(``x``, ``y``) over all units, within each tower present, and with every unit given its tower's mean
    ``x`` (:data:`TOWERS_ONLY`: what the contrast between towers alone gives)."""
    out = {OVERALL: spearman(table[x], table[y])}
    for tower in TOWERS:
        part = table[table.group == tower]
        if len(part):
            out[tower] = spearman(part[x], part[y])
    out[TOWERS_ONLY] = spearman(table.groupby("group")[x].transform("mean"), table[y])
    return out


def pooled(per_build: list[Mapping[str, float]]) -> dict[str, dict]:
    """Each comparison's rho across builds: {comparison: {"rho", "ci_low", "ci_high", "stability", "n_builds"}}
    (builds where rho is undefined, a constant tower, are left out and counted)."""
    out = {}
    for key in per_build[0]:
        values = [float(b[key]) for b in per_build if b.get(key) is not None and math.isfinite(b[key])]
        if not values:
            out[key] = dict(rho=math.nan, ci_low=math.nan, ci_high=math.nan, stability=0, n_builds=0)
            continue
        e = across_builds(values)
        out[key] = dict(rho=e.diff, ci_low=max(e.low, -1.0) if math.isfinite(e.low) else e.low,
                        ci_high=min(e.high, 1.0) if math.isfinite(e.high) else e.high, stability=e.stability,
                        n_builds=e.n_builds)
    return out
