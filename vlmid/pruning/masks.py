"""Which weights may be pruned, one global threshold over their scores, and masks that stay applied.

The study (Wang et al. ICML 2024, following PLATON) prunes *unstructured*: every weight of
every prunable ``nn.Linear`` competes under **one global threshold**, so a matrix whose
weights score low loses more of them. Never pruned: embeddings (patch, position, word),
norms, biases, and BLIP's language-model head (``text_decoder.cls``): its ``decoder`` is the
word-embedding matrix itself (tied weights), so pruning it would prune the embeddings.

Groups: ``vision`` (the ViT encoder), ``fusion`` (the text decoder's cross-attention to the
image), ``language`` (the rest of the text decoder: causal self-attention and MLP).

Wanda (Sun et al. ICLR 2024) compares scores *within each output row* instead:
:func:`rowwise_masks` and :func:`wanda_masks` (which also carries the ID prior, through the
per-matrix budget).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import pandas as pd
import torch
from torch import nn

from ..models.anatomy import LM_HEAD, module_block, module_group
from ..profiling import n_parameters
from .scores import apply_id_prior

Tensor = torch.Tensor
GROUPS = ("vision", "language", "fusion")
# Linear layers under these prefixes are never pruned (BLIP's LM head; its decoder is tied
# to the word embeddings).
EXCLUDED_PREFIXES = (LM_HEAD,)


# -- what is prunable --------------------------------------------------------------------
# which tower a Linear belongs to, and its block: vlmid.models.anatomy (one rule for the ID hooks and the masks)


def prunable_linears(model: nn.Module, groups: Iterable[str] = GROUPS,
                     exclude: Iterable[str] = EXCLUDED_PREFIXES) -> dict[str, nn.Linear]:
    """``{module name: nn.Linear}`` whose weights may be pruned, in model order.

    Only ``nn.Linear`` weights: embeddings and norms are other module types; a Linear whose
    weight is shared with an ``nn.Embedding`` (tied LM head) is skipped too.
    """
    groups = tuple(groups)
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups:
        raise ValueError(f"groups={groups!r}: each must be one of {GROUPS}")
    exclude = tuple(exclude)
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    out = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or name.startswith(exclude):
            continue
        if id(mod.weight) in embedding_weights or module_group(name) not in groups:
            continue
        out[name] = mod
    return out


def prunable_weights(model: nn.Module, groups: Iterable[str] = GROUPS) -> dict[str, nn.Parameter]:
    """``{module name: weight Parameter}`` of :func:`prunable_linears`."""
    return {n: m.weight for n, m in prunable_linears(model, groups).items()}


# -- one global threshold --------------------------------------------------------------
def global_kth_value(tensors: Iterable[Tensor], k: int, bins: int = 1024,
                     gather_limit: int = 1 << 20) -> Tensor:
    """The k-th smallest value (1-based) over all elements of ``tensors``, without concatenating them.

    Memory-aware: histogram the values into ``bins`` buckets one tensor at a time, keep only the
    bucket that holds rank k, and repeat inside it; once at most ``gather_limit`` values remain
    in the window, gather them and take the exact ``kthvalue``. Peak extra memory is one
    tensor's worth, not the whole model's (BLIP-base: ~150 M scores).
    """
    flat = [t.detach().reshape(-1).float() for t in tensors]
    n = sum(t.numel() for t in flat)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is out of range: it must lie in [1, {n}]")
    dev = flat[0].device  # every tensor of the loop lives where the scores do (CPU or CUDA)
    lo = min(t.min() for t in flat if t.numel())
    hi = max(t.max() for t in flat if t.numel())
    rank = k  # rank of the answer among the values inside [lo, hi]
    while True:
        if lo == hi:
            return lo.clone()
        count = sum(int(((t >= lo) & (t <= hi)).sum()) for t in flat)
        if count <= gather_limit:
            vals = torch.cat([t[(t >= lo) & (t <= hi)] for t in flat])
            return vals.kthvalue(rank).values
        edges = torch.linspace(float(lo), float(hi), bins + 1, dtype=torch.float32, device=dev)
        counts = torch.zeros(bins, dtype=torch.long, device=dev)
        for t in flat:
            sel = t[(t >= lo) & (t <= hi)]
            # bucket j holds edges[j] <= x < edges[j+1]; the last bucket also holds x == hi
            idx = torch.bucketize(sel, edges[1:-1], right=True)
            counts += torch.bincount(idx, minlength=bins)
        cum = counts.cumsum(0)
        j = int(torch.searchsorted(cum, torch.tensor(rank, device=dev)))
        if j > 0:
            rank -= int(cum[j - 1])
        new_lo = edges[j] if j > 0 else lo
        new_hi = torch.nextafter(edges[j + 1], torch.tensor(float("-inf"), device=dev)) if j < bins - 1 else hi
        new_hi = torch.maximum(new_hi, new_lo)
        if bool(new_lo == lo) and bool(new_hi == hi):  # cannot narrow (adjacent floats): gather
            vals = torch.cat([t[(t >= lo) & (t <= hi)] for t in flat])
            return vals.kthvalue(rank).values
        lo, hi = new_lo, new_hi


def _keep_top(score: Tensor, keep: int) -> Tensor:
    """Boolean mask keeping the ``keep`` highest scores of one matrix (ties broken by position)."""
    mask = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    if keep > 0:
        mask[torch.topk(score.reshape(-1).float(), keep, sorted=False).indices] = True
    return mask.reshape(score.shape)


def global_masks(scores: Mapping[str, Tensor], sparsity: float, min_keep: int = 4) -> dict[str, Tensor]:
    """Keep-masks (True = keep) pruning the fraction ``sparsity`` of all weights under ONE threshold.

    The number pruned is ``round(sparsity * total)`` exactly: values tied at the threshold are
    shared between matrices in proportion to their ties. Every matrix keeps at least
    ``min_keep`` weights (its highest scores); the weights that saves are taken from the others
    by recomputing the threshold over them, so the global count still holds whenever possible.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity={sparsity!r} is out of range: it must lie in [0, 1]")
    names = list(scores)
    total = sum(scores[n].numel() for n in names)
    k = int(round(sparsity * total))
    floors: dict[str, Tensor] = {}  # matrices fixed at their min_keep floor
    while True:
        pool = [n for n in names if n not in floors]
        k_pool = k - sum(scores[n].numel() - min(min_keep, scores[n].numel()) for n in floors)
        masks = _threshold_masks({n: scores[n] for n in pool}, max(k_pool, 0))
        low = [n for n in pool if int(masks[n].sum()) < min(min_keep, scores[n].numel())]
        if not low or not pool:
            break
        for n in low:
            floors[n] = _keep_top(scores[n], min(min_keep, scores[n].numel()))
    masks.update(floors)
    return {n: masks[n] for n in names}


def _threshold_masks(scores: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Prune exactly the k lowest scores across ``scores`` (ties at the threshold shared fairly)."""
    if k == 0 or not scores:
        return {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    flat = {n: s.detach().float() for n, s in scores.items()}
    thr = global_kth_value(flat.values(), k)
    below = {n: int((s < thr).sum()) for n, s in flat.items()}
    ties = {n: int((s == thr).sum()) for n, s in flat.items()}
    need = k - sum(below.values())  # how many tied values must go too
    total_ties = sum(ties.values())
    share = {n: need * t // total_ties for n, t in ties.items()}
    rest = need - sum(share.values())
    for n in sorted(ties, key=lambda n: -(need * ties[n] % total_ties)):  # largest remainders first
        if rest == 0:
            break
        if share[n] < ties[n]:
            share[n] += 1
            rest -= 1
    masks = {}
    for n, s in flat.items():
        keep = s > thr
        if share[n] < ties[n]:  # some tied weights survive: keep the last ones by position
            tied = (s == thr).reshape(-1).nonzero().squeeze(1)
            keep.view(-1)[tied[share[n]:]] = True
        masks[n] = keep
    return masks


def layerwise_masks(scores: Mapping[str, Tensor], sparsities: Mapping[str, float],
                    min_keep: int = 4) -> dict[str, Tensor]:
    """Keep-masks with each matrix pruned to its own sparsity (the layer-level "asymmetric" strategy)."""
    out = {}
    for n, s in scores.items():
        sp = float(sparsities[n])
        if not 0.0 <= sp <= 1.0:
            raise ValueError(f"sparsity of {n} = {sp!r} is out of range: it must lie in [0, 1]")
        keep = max(s.numel() - int(round(sp * s.numel())), min(min_keep, s.numel()))
        out[n] = _keep_top(s, keep)
    return out


# -- row by row (Wanda) -----------------------------------------------------------------------
def _rowwise_keep(score: Tensor, sparsity: float, min_keep: int) -> Tensor:
    """Keep-mask of one (out x in) matrix pruning the ``round(sparsity * in)`` lowest scores of every row."""
    if score.dim() != 2:
        raise ValueError(f"row-wise masks need (out_features x in_features) matrices, got shape {tuple(score.shape)}")
    n_out, n_in = score.shape
    keep = n_in - int(round(sparsity * n_in))
    floor = min(min_keep, score.numel())
    if keep * n_out < floor and n_out:  # the min_keep floor, spread evenly over the rows
        keep = -(-floor // n_out)
    mask = torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    if keep > 0 and score.numel():
        mask.scatter_(1, torch.topk(score.detach().float(), keep, dim=1, sorted=False).indices, True)
    return mask


def rowwise_masks(scores: Mapping[str, Tensor], sparsities: Mapping[str, float],
                  min_keep: int = 4) -> dict[str, Tensor]:
    """Keep-masks pruning, in every output row of each (out x in) matrix, its ``round(s * in)`` lowest scores.

    ``s`` is that matrix's sparsity (``sparsities[name]``). Every row of a matrix loses the same
    number of weights, so a matrix prunes ``out * round(s * in)`` weights rather than
    ``round(s * out * in)``: within ``out / 2`` weights of it (Python's ``round``, halves to even).
    A matrix keeps at least ``min_keep`` weights: if the rows would keep fewer, each row keeps
    ``ceil(min_keep / out)`` (its highest scores). Ties inside a row are broken by ``torch.topk``.
    """
    out = {}
    for n, s in scores.items():
        sp = float(sparsities[n])
        if not 0.0 <= sp <= 1.0:
            raise ValueError(f"sparsity of {n} = {sp!r} is out of range: it must lie in [0, 1]")
        out[n] = _rowwise_keep(s, sp, min_keep)
    return out


def wanda_masks(scores: Mapping[str, Tensor], sparsity: float, ids: Mapping[str, float] | None = None,
                min_keep: int = 4) -> dict[str, Tensor]:
    """Wanda's keep-masks: every matrix pruned row by row, at the sparsity its layer budget gives.

    Without ``ids``, every matrix gets ``sparsity`` (Wanda's uniform per-layer setting).

    With ``ids`` (the ID prior): multiplying a matrix's scores by its one ID cannot change any
    ranking *within a row*, so the prior cannot act there; it acts through the layer budget. The
    global threshold over the ID-weighted scores (:func:`global_masks` of
    :func:`~vlmid.pruning.scores.apply_id_prior`) fixes how many weights each matrix loses; that
    count divided by the matrix's size is its sparsity, and inside the matrix the weights are then
    chosen row by row by their own scores (:func:`rowwise_masks`). A matrix with a high ID thus
    loses fewer weights. Note that this budget also depends on how the scores' scale differs
    between layers (Wanda's input norms do), as every global threshold does.

    Counts: per-row rounding makes each matrix prune within ``out / 2`` weights of its budget, so
    the total may differ from ``round(sparsity * total)`` by up to half the number of rows.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity={sparsity!r} is out of range: it must lie in [0, 1]")
    if ids is None:
        return rowwise_masks(scores, {n: sparsity for n in scores}, min_keep)
    budget = global_masks(apply_id_prior(scores, ids), sparsity, min_keep)
    per_matrix = {n: int((~m).sum()) / m.numel() for n, m in budget.items()}
    return rowwise_masks(scores, per_matrix, min_keep)


# -- keeping masks applied ---------------------------------------------------------------
class Masks:
    """Keep-masks over ``{module name: weight}``; pruned weights stay exactly zero.

    ``apply()`` zeroes the pruned weights. ``attach(optimizer)`` re-applies the masks after
    every ``optimizer.step()`` (AdamW's momentum and weight decay would otherwise move a
    pruned weight off zero) and zeroes the gradients of pruned weights in backward, so
    gradient-based scores and optimiser moments ignore them.
    """

    def __init__(self, weights: Mapping[str, Tensor]):
        self.weights = dict(weights)
        self.masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in self.weights.items()}
        self._handles: list = []

    def update(self, masks: Mapping[str, Tensor]) -> None:
        for n, m in masks.items():
            if m.shape != self.weights[n].shape:
                raise ValueError(f"mask for {n} has shape {tuple(m.shape)}, weight {tuple(self.weights[n].shape)}")
            self.masks[n] = m.to(device=self.weights[n].device, dtype=torch.bool)
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for n, w in self.weights.items():
            w.mul_(self.masks[n])

    def attach(self, optimizer: torch.optim.Optimizer | None = None) -> "Masks":
        for n, w in self.weights.items():
            if w.requires_grad:
                self._handles.append(w.register_hook(lambda g, n=n: g * self.masks[n]))
        if optimizer is not None:
            self._handles.append(optimizer.register_step_post_hook(lambda *a, **k: self.apply()))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def sparsity(self) -> float:
        pruned = sum(int((~m).sum()) for m in self.masks.values())
        return pruned / max(1, sum(m.numel() for m in self.masks.values()))


# -- what was actually reached -------------------------------------------------------------
@dataclass
class SparsityReport:
    """Sparsity measured by counting exact zeros in the weights."""
    overall: float            # over all prunable Linear weights (what "40 % sparsity" means)
    of_all_parameters: float  # zeros over every parameter of the model (embeddings included)
    per_group: dict           # {"vision": ..., "language": ..., "fusion": ...}
    per_layer: pd.DataFrame   # module, group, block, numel, zeros, sparsity


def sparsity_report(model: nn.Module, groups: Iterable[str] = GROUPS) -> SparsityReport:
    rows = []
    for name, mod in prunable_linears(model, groups).items():
        w = mod.weight.detach()
        zeros = int((w == 0).sum())
        rows.append(dict(module=name, group=module_group(name), block=module_block(name),
                         numel=w.numel(), zeros=zeros, sparsity=zeros / w.numel()))
    df = pd.DataFrame(rows, columns=["module", "group", "block", "numel", "zeros", "sparsity"])
    tot = df["numel"].sum()
    per_group = {g: float(d["zeros"].sum() / d["numel"].sum()) for g, d in df.groupby("group")}
    all_params = n_parameters(model)
    all_zeros = sum(int((p.detach() == 0).sum()) for p in model.parameters())
    return SparsityReport(overall=float(df["zeros"].sum() / tot) if tot else 0.0,
                          of_all_parameters=all_zeros / max(1, all_params),
                          per_group=per_group, per_layer=df)
