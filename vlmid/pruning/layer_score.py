"""The seeds' layer-level score and the "asymmetric" per-layer sparsities it implies.

    Score_l = ID_l / Comp_l + lambda * Utility_l

A *layer* here is one transformer block's Linears of one kind (a "unit"):
``vision.i`` = ViT block i (qkv, projection, fc1, fc2); ``language.i`` = text decoder block
i's causal self-attention and MLP; ``fusion.i`` = its cross-attention to the image. So a text
block splits into its language part and its fusion part, which the study treats apart.

- ID_l: mean intrinsic dimension of the unit's Linears (notebook 01).
- Comp_l: number of weights in the unit's Linears.
- Utility_l: drop in CIDEr on a small validation set when all the unit's Linear weights are
  set to zero (biases, norms and the residual path stay, so the block is "removed" as
  pruning at 100 % would remove it).

The two terms live on different scales (ID/Comp ~ 1e-4, a CIDEr drop ~ 0.1), so each is
divided by its largest value over the units before adding; ``lam`` then says how much a
unit's measured utility counts relative to its ID per weight (lam = 1: equally).
A high score means "keep": its sparsity is lowered, a low score raises it, and the
parameter-weighted mean stays at the target.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ..data.base import images_of

from ..models.anatomy import module_block, module_group


def layer_units(names) -> dict[str, list[str]]:
    """``{unit: [module names]}`` with units named ``<group>.<block>`` (e.g. ``fusion.3``)."""
    units: dict[str, list[str]] = {}
    for n in names:
        block = module_block(n)
        units.setdefault(f"{module_group(n)}.{block if block is not None else 'x'}", []).append(n)
    return units


def layer_utility(linears: Mapping[str, nn.Linear], units: Mapping[str, list[str]],
                  evaluate: Callable[[], float], progress: bool = True) -> tuple[float, dict[str, float]]:
    """(score of the intact model, {unit: score drop when the unit's Linear weights are zero}).

    ``evaluate()`` returns e.g. CIDEr on a small validation set; weights are restored after each unit.
    The prunability of :mod:`vlmid.pruning.prunability` at sparsity 1.0.
    """
    from .prunability import unit_prunability

    table = unit_prunability(linears, units, lambda: {"score": float(evaluate())}, sparsities=(1.0,),
                             progress=progress)
    return table.attrs["intact"]["score"], dict(zip(table.unit, table.drop_score))


def fast_cider(refs: Mapping, preds: Mapping) -> float:
    """CIDEr-D of ``preds`` against ``refs`` ({id: [captions]} / {id: caption}) without Java.

    pycocoevalcap's own CIDEr-D code, but captions are split by a regex (lower case, words and
    hyphens kept, punctuation dropped) instead of Stanford's PTB tokenizer, whose Java start-up
    dominates the cost of the many small evaluations a utility sweep needs. Only *differences*
    of this score between layers are used; report final numbers with ``vlmid.metrics``.
    """
    import re

    from pycocoevalcap.cider.cider import Cider

    def tok(c: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", c.lower())) or "emptycaption"

    ids = list(refs)
    gts = {i: [tok(c) for c in refs[k]] for i, k in enumerate(ids)}
    res = {i: [tok(preds[k])] for i, k in enumerate(ids)}
    return float(Cider().compute_score(gts, res)[0])


def captioner_cider(cap, examples) -> float:
    """:func:`fast_cider` of ``cap.generate`` on ``examples`` (for :func:`layer_utility`)."""
    preds = cap.generate(images_of(examples))
    return fast_cider({e.image_id: list(e.captions) for e in examples},
                      {e.image_id: p for e, p in zip(examples, preds)})


def layer_scores(units: Mapping[str, list[str]], ids: Mapping[str, float], sizes: Mapping[str, int],
                 utility: Mapping[str, float], lam: float = 1.0) -> dict[str, float]:
    """Score_l = ID_l/Comp_l / max(ID/Comp) + lam * max(Utility_l, 0) / max(Utility).

    ``ids`` and ``sizes`` are per module (ID, number of weights); ``utility`` per unit.
    A negative utility (removing the unit helped) counts as zero.
    """
    if lam < 0:
        raise ValueError(f"lam={lam!r} is out of range: it must be >= 0")
    id_per_weight = {}
    for u, names in units.items():
        id_l = sum(float(ids[n]) for n in names) / len(names)
        comp_l = sum(int(sizes[n]) for n in names)
        id_per_weight[u] = id_l / comp_l
    a_max = max(id_per_weight.values()) or 1.0
    util = {u: max(float(utility[u]), 0.0) for u in units}
    b_max = max(util.values()) or 1.0  # all utilities zero: the ID term decides alone
    return {u: id_per_weight[u] / a_max + lam * util[u] / b_max for u in units}


def allocate_sparsity(scores: Mapping[str, float], sizes: Mapping[str, int], target: float,
                      spread: float = 0.5, max_sparsity: float = 0.98) -> dict[str, float]:
    """Per-unit sparsities whose parameter-weighted mean is ``target``.

    The unit with the highest score gets ``target - d``, the lowest ``target + d``, linearly in
    between (min-max normalised score), with d = spread * min(target, 1 - target) so that
    extreme targets stay feasible; then one common shift (bisection) restores the weighted
    mean after clipping to [0, max_sparsity].
    """
    if not 0.0 <= target <= max_sparsity:
        raise ValueError(f"target={target!r} is out of range: it must lie in [0, {max_sparsity}]")
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread={spread!r} is out of range: it must lie in [0, 1]")
    units = list(scores)
    lo, hi = min(scores.values()), max(scores.values())
    z = {u: (scores[u] - lo) / (hi - lo) if hi > lo else 0.5 for u in units}
    d = spread * min(target, 1.0 - target)
    raw = {u: target + d * (1.0 - 2.0 * z[u]) for u in units}
    total = sum(sizes[u] for u in units)

    def mean_at(shift: float) -> float:
        return sum(sizes[u] * min(max(raw[u] + shift, 0.0), max_sparsity) for u in units) / total

    a, b = -1.0, 1.0
    for _ in range(60):  # mean_at is non-decreasing in the shift
        mid = (a + b) / 2
        a, b = (mid, b) if mean_at(mid) < target else (a, mid)
    shift = (a + b) / 2
    return {u: min(max(raw[u] + shift, 0.0), max_sparsity) for u in units}


def module_sparsities(units: Mapping[str, list[str]], unit_sparsity: Mapping[str, float]) -> dict[str, float]:
    """Expand ``{unit: sparsity}`` to ``{module name: sparsity}``."""
    return {n: float(unit_sparsity[u]) for u, names in units.items() for n in names}


def unit_sizes(units: Mapping[str, list[str]], linears: Mapping[str, nn.Linear]) -> dict[str, int]:
    """Comp_l: the number of weights in each unit's Linears."""
    return {u: sum(linears[n].weight.numel() for n in names) for u, names in units.items()}


def layer_allocation(units: Mapping[str, list[str]], scores: Mapping[str, float], sizes: Mapping[str, int],
                     spread: float = 0.5, max_sparsity: float = 0.98) -> Callable[[float], dict[str, float]]:
    """``target sparsity -> {module name: sparsity}`` for :func:`vlmid.pruning.prune_finetune`."""
    return lambda target: module_sparsities(units, allocate_sparsity(scores, sizes, target, spread, max_sparsity))
