"""Controls for the ID prior: what would any per-layer multiplier, or any shift between towers, do?

Multiplying every weight's score by its Linear's ID moves sparsity between towers (the language tower,
with the lowest IDs, loses more) and between layers within a tower. The controls separate the two, at
the same global sparsity and with the same base score:

    control_ids(ids, "shuffled", seed)   # the same ID values, permuted over the Linears: ID's spread, no ID order
    control_ids(ids, "inverse")          # 1 / ID (rescaled to the same mean): the prior's order reversed
    control_ids(ids, "random", seed)     # log-normal multipliers with the spread of log ID: any spread at all
    tower_matched_masks(scores, ids, s)  # per tower, as many weights as the ID prior removes there, chosen
                                         # inside the tower by the base score alone: the tower shift, no more

The first three are IDs for the prior (``PruneJob(ids=...)`` with ``id_prior=True``); the fourth is a mask
rule (``PruneConfig(id_prior=True, tower_matched=True)``), recomputed at every mask update so that it
follows the prior's split as the scores change. What the ID prior adds beyond moving sparsity between
towers is its gain over ``tower_matched``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..models.anatomy import module_group
from .masks import global_masks
from .scores import apply_id_prior

CONTROLS = ("shuffled", "inverse", "random")


def control_ids(ids: Mapping[str, float], kind: str, seed: int = 0) -> dict[str, float]:
    """Per-Linear multipliers of the control ``kind`` (one of :data:`CONTROLS`) for the IDs ``ids``."""
    names = list(ids)
    values = np.array([float(ids[n]) for n in names])
    if values.size == 0 or not np.all(values > 0):
        raise ValueError("control_ids needs positive IDs for every Linear (notebook 01's per-Linear table)")
    rng = np.random.default_rng(seed)
    if kind == "shuffled":
        out = rng.permutation(values)
    elif kind == "inverse":
        out = (1.0 / values) * values.mean() / (1.0 / values).mean()
    elif kind == "random":
        logs = np.log(values)
        out = np.exp(rng.normal(logs.mean(), logs.std(), size=values.size))
    else:
        raise ValueError(f"kind={kind!r} is unknown: use one of {CONTROLS} (the tower control is tower_matched_masks)")
    return {n: float(v) for n, v in zip(names, out)}


def tower_split(masks: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Weights pruned per tower (``vision`` / ``language`` / ``fusion``) by keep-masks."""
    out: dict[str, int] = {}
    for n, m in masks.items():
        out[module_group(n)] = out.get(module_group(n), 0) + int((~m).sum())
    return out


def tower_matched_masks(scores: Mapping[str, torch.Tensor], ids: Mapping[str, float], sparsity: float,
                        min_keep: int = 4) -> dict[str, torch.Tensor]:
    """Keep-masks that prune, in each tower, as many weights as the ID prior's global threshold does, chosen
    inside the tower by one threshold on the base ``scores``: the prior's shift between towers without its
    order of layers inside a tower."""
    prior = global_masks(apply_id_prior(scores, ids), sparsity, min_keep)
    counts = tower_split(prior)
    out = {}
    for tower in counts:
        part = {n: s for n, s in scores.items() if module_group(n) == tower}
        size = sum(s.numel() for s in part.values())
        out.update(global_masks(part, counts[tower] / size, min_keep))
    return {n: out[n] for n in scores}
