"""How prunable each unit is, measured directly: the quality lost when only that unit is pruned.

The study's central claim is that a layer's intrinsic dimension says how prunable it is (low-ID layers
redundant, high-ID layers critical). Its test needs each unit's prunability on its own:

    table = unit_prunability(linears, units, evaluate, sparsities=(0.5, 0.7, 0.9))

For every unit (one block's Linears of one kind, :func:`vlmid.pruning.layer_score.layer_units`) and
sparsity, the unit's Linears alone are pruned by weight magnitude, each matrix to that sparsity (one shot,
no fine-tuning), ``evaluate()`` scores the model (a dict of metrics, e.g. CIDEr-D and garment F1 on
validation scenes), and the weights are restored. ``drop_<metric>`` is the intact score minus the pruned
one: a large drop, a unit that cannot be pruned. Sparsity 1.0 zeroes the unit, the layer score's utility.
Where ``evaluate()`` also returns per-item arrays (e.g. ``per_image_cider``), they are kept in the table's
``attrs["per_item"]`` ({(unit, sparsity): {name: array}}, the intact model's under ``attrs["intact_per_item"]``),
so that a statistic of the table can be resampled over the evaluation items.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..models.anatomy import module_group
from .masks import layerwise_masks
from .scores import magnitude_score


@torch.no_grad()
def unit_prunability(linears: Mapping[str, nn.Linear], units: Mapping[str, list[str]],
                     evaluate: Callable[[], Mapping[str, float]], sparsities: Sequence[float] = (0.5, 0.7, 0.9),
                     progress: bool = True):
    """A DataFrame with a row per (unit, sparsity): unit, group, sparsity, each metric of ``evaluate()`` and its
    drop from the intact model (``drop_<metric>``), with the intact scores in ``attrs["intact"]``. The weights
    are restored after each evaluation, also when it fails."""
    import pandas as pd

    bad = [s for s in sparsities if not 0.0 < float(s) <= 1.0]
    if bad or not sparsities:
        raise ValueError(f"sparsities={list(sparsities)!r}: each must lie in (0, 1]")
    missing = [n for names in units.values() for n in names if n not in linears]
    if missing:
        raise KeyError(f"units name Linears the model does not have, e.g. {missing[:3]}")
    intact, intact_items = _split(evaluate())
    jobs = [(u, float(s)) for u in units for s in sparsities]
    if progress:
        from tqdm.auto import tqdm
        jobs = tqdm(jobs, desc="prunability per unit")
    rows, per_item = [], {}
    for unit, sparsity in jobs:
        names = units[unit]
        saved = {n: linears[n].weight.detach().clone() for n in names}
        try:
            masks = layerwise_masks({n: magnitude_score(saved[n]) for n in names}, dict.fromkeys(names, sparsity),
                                    min_keep=0)
            for n in names:
                linears[n].weight.mul_(masks[n])
            scores, per_item[(unit, sparsity)] = _split(evaluate())
        finally:
            for n in names:
                linears[n].weight.copy_(saved[n])
        rows.append(dict(unit=unit, group=module_group(names[0]), sparsity=sparsity, **scores,
                         **{f"drop_{k}": intact[k] - v for k, v in scores.items() if k in intact}))
    table = pd.DataFrame(rows)
    table.attrs.update(intact=intact, per_item=per_item, intact_per_item=intact_items)
    return table


def _split(scores: Mapping) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """An evaluation's numbers and its per-item arrays, apart (None values are dropped)."""
    numbers, arrays = {}, {}
    for k, v in scores.items():
        if isinstance(v, np.ndarray):
            arrays[k] = v
        elif v is not None:
            numbers[k] = float(v)
    return numbers, arrays
