"""How much of each layer to prune: the per-layer signal used as current methods use theirs.

The ID prior multiplies every weight's score by its layer's ID and lets one global threshold decide.
Current methods instead *allocate* a sparsity to each layer at a fixed global budget and prune within
the layer by the base score: OWL (Yin et al., ICML 2024) sets a layer's sparsity from its share of
outlier activations, within +-lambda of the target; D-Rank (2025) allocates SVD rank by effective rank;
ECoFLaP (Sung et al., ICLR 2024) by a zeroth-order global importance. Here the signal is the unit's ID:

    alloc = id_allocation(linears, ids, spread=0.2)      # target -> {module name: sparsity}
    alloc(0.4)                                           # high-ID units below 40 %, low-ID above, mean 40 %

A *unit* is one block's Linears of one kind (``vision.3``, ``language.1``, ``fusion.1``:
:func:`vlmid.pruning.layer_score.layer_units`); its ID is the mean ID of its Linears. The sparsities
are spread linearly in the min-max normalised ID, ``target +- spread * min(target, 1 - target)``, then
shifted together so that their parameter-weighted mean is the target
(:func:`vlmid.pruning.layer_score.allocate_sparsity`). The controls: :func:`uniform_allocation` (every
layer at the target, Wanda's default) and the global threshold of the base score (no allocation).
"""
from __future__ import annotations

from typing import Callable, Mapping

from torch import nn

from .layer_score import allocate_sparsity, layer_units, module_sparsities, unit_sizes

ALLOCATIONS = ("uniform", "id")   # PruneConfig.allocation besides None (the method's own rule)


def unit_ids(units: Mapping[str, list[str]], ids: Mapping[str, float]) -> dict[str, float]:
    """The mean ID of each unit's Linears (a Linear without an ID is an error, as for the prior)."""
    missing = [n for names in units.values() for n in names if n not in ids]
    if missing:
        raise KeyError(f"no intrinsic dimension for {len(missing)} Linear(s), e.g. {missing[:3]}: "
                       "are the IDs from the same model?")
    return {u: sum(float(ids[n]) for n in names) / len(names) for u, names in units.items()}


def id_allocation(linears: Mapping[str, nn.Linear], ids: Mapping[str, float], spread: float = 0.2,
                  max_sparsity: float = 0.98) -> Callable[[float], dict[str, float]]:
    """``target -> {module name: sparsity}``: each unit's sparsity from its ID (higher ID, lower sparsity),
    at the parameter-weighted mean ``target``."""
    units = layer_units(linears)
    signal, sizes = unit_ids(units, ids), unit_sizes(units, linears)
    return lambda target: module_sparsities(units, allocate_sparsity(signal, sizes, target, spread, max_sparsity))


def uniform_allocation(linears: Mapping[str, nn.Linear]) -> Callable[[float], dict[str, float]]:
    """``target -> {module name: target}``: every Linear at the same sparsity."""
    names = list(linears)
    return lambda target: {n: float(target) for n in names}


def allocation_for(kind: str, linears: Mapping[str, nn.Linear], ids: Mapping[str, float] | None = None,
                   spread: float = 0.2) -> Callable[[float], dict[str, float]]:
    """The allocation named ``kind`` (one of :data:`ALLOCATIONS`)."""
    if kind == "uniform":
        return uniform_allocation(linears)
    if kind == "id":
        if ids is None:
            raise ValueError("allocation='id' needs ids={module name: ID} (measured on training or validation images)")
        return id_allocation(linears, ids, spread)
    raise ValueError(f"allocation={kind!r} is unknown: use one of {ALLOCATIONS} (or None for the method's own rule)")
