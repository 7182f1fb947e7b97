"""Token selection and merging as pure functions on tensors (no model inside).

Shapes: ``x`` is ``[B, N, D]`` (batch, tokens, channels); index tensors are ``[B, k]``.
The patch in :mod:`vlmid.tokens.patch` calls these between transformer blocks; the tests
call them on hand-built tensors.

- the CLIP token report's rule: keep the ``k`` patches of largest L2 norm, put their mean in front;
- EViT: keep the ``k`` patches the class token attends to most, fuse the rest into one
  token weighted by that attention;
- ToMe (Bolya et al., ICLR 2023), written from the paper's description: bipartite soft
  matching on key similarity merges ``r`` tokens, averaging by size so a merged token
  still counts for as many patches as it absorbed.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch


def num_kept(n: int, keep: float, rounding: str = "floor") -> int:
    """How many of ``n`` tokens a keep ratio retains (at least one).

    The CLIP token report truncates (``int(p * n)``); EViT rounds up. Both are offered so each method
    is reproduced with its own rule.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep={keep!r} is out of range: it must lie in (0, 1]")
    k = math.ceil(keep * n - 1e-9) if rounding == "ceil" else int(keep * n + 1e-9)
    return max(1, min(n, k))


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[b, idx[b]]`` for every batch row: ``[B, N, D]``, ``[B, k]`` -> ``[B, k, D]``."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def topk_indices(scores: torch.Tensor, k: int, keep_order: bool = True) -> torch.Tensor:
    """Indices of the ``k`` largest scores per row.

    ``keep_order=False`` returns them by decreasing score (what ``torch.topk`` gives and
    what the CLIP token report fed to the encoder); ``True`` sorts them back into the original
    (raster) order. Attention does not care about order, but it keeps token ``j`` of the
    output next to its neighbours for anyone who reads or plots the tokens.
    """
    idx = scores.topk(k, dim=1).indices
    return idx.sort(dim=1).values if keep_order else idx


def l2_topk(x: torch.Tensor, k: int, keep_order: bool = True) -> torch.Tensor:
    """The CLIP token report's importance: the ``k`` tokens of largest L2 norm. Returns indices ``[B, k]``."""
    return topk_indices(x.norm(dim=-1), k, keep_order)


def summary_token(x: torch.Tensor) -> torch.Tensor:
    """The CLIP token report's "summary" token: the mean of all tokens, ``[B, N, D]`` -> ``[B, 1, D]``."""
    return x.mean(dim=1, keepdim=True)


def cls_attention(attn_logits_cls: torch.Tensor) -> torch.Tensor:
    """From the class token's attention logits ``[B, H, N]`` (query 0 against all keys,
    already scaled) to EViT's score per patch: softmax over keys, mean over heads, class
    token's attention to itself dropped. Returns ``[B, N - 1]``."""
    return attn_logits_cls.softmax(dim=-1).mean(dim=1)[:, 1:]


def fuse_rest(x: torch.Tensor, scores: torch.Tensor, keep_idx: torch.Tensor) -> torch.Tensor | None:
    """EViT's fused token: the tokens *not* in ``keep_idx``, averaged with weights ``scores``.

    ``x`` ``[B, N, D]`` (patch tokens only), ``scores`` ``[B, N]`` (non-negative, e.g. CLS
    attention), ``keep_idx`` ``[B, k]``. Returns ``[B, 1, D]``, or ``None`` when nothing
    was dropped (so keep ratio 1.0 leaves the sequence exactly as it was).
    """
    n, k = x.shape[1], keep_idx.shape[1]
    if k >= n:
        return None
    weights = scores.clone()
    weights.scatter_(1, keep_idx, 0.0)  # kept tokens do not enter the fused one
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    return torch.einsum("bn,bnd->bd", weights.to(x.dtype), x).unsqueeze(1)


class Matching(NamedTuple):
    """The result of bipartite soft matching, enough to merge any tensor of the same tokens.

    Tokens at even positions form set A, odd positions set B. ``src`` are the ``r`` A
    positions (within A) that merge away, ``dst`` their partners (within B), ``keep``
    the A positions that stay, in their original order (so the class token, A's first
    element, stays at index 0).
    """
    src: torch.Tensor   # [B, r]
    dst: torch.Tensor   # [B, r]
    keep: torch.Tensor  # [B, nA - r]


def bipartite_soft_matching(metric: torch.Tensor, r: int, protect_first: bool = True) -> Matching | None:
    """ToMe's matching step (paper, Sec. 3): split tokens alternately into A and B; draw
    one edge from every A token to its most similar B token (cosine similarity of
    ``metric``, e.g. the keys averaged over heads); keep the ``r`` most similar edges.

    The class token (index 0, in A) is never merged when ``protect_first``. Returns
    ``None`` when ``r <= 0``. ``r`` is clipped to the number of A tokens that may merge.
    """
    n = metric.shape[1]
    n_a = (n + 1) // 2
    r = min(r, n_a - int(protect_first))
    if r <= 0:
        return None
    m = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    a, b = m[:, ::2], m[:, 1::2]
    similarity = a @ b.transpose(1, 2)  # [B, nA, nB]
    if protect_first:
        similarity[:, 0, :] = -math.inf
    best, partner = similarity.max(dim=-1)          # each A token's best B partner
    order = best.argsort(dim=-1, descending=True)   # most similar edges first
    src = order[:, :r]
    keep = order[:, r:].sort(dim=-1).values         # unmerged A tokens, original order
    dst = partner.gather(1, src)
    return Matching(src=src, dst=dst, keep=keep)


def merge_tokens(x: torch.Tensor, match: Matching | None, reduce: str = "sum") -> torch.Tensor:
    """Apply a matching to ``x`` ``[B, N, C]``: the ``src`` A tokens are added (``sum``) or
    averaged (``mean``) into their B partners; output ``[A kept..., B...]``, ``N - r`` tokens."""
    if match is None:
        return x
    a, b = x[:, ::2], x[:, 1::2]
    c = x.shape[-1]
    kept_a = a.gather(1, match.keep.unsqueeze(-1).expand(-1, -1, c))
    moved = a.gather(1, match.src.unsqueeze(-1).expand(-1, -1, c))
    dst = match.dst.unsqueeze(-1).expand(-1, -1, c)
    if reduce == "sum":
        b = b.scatter_add(1, dst, moved)
    else:
        b = b.scatter_reduce(1, dst, moved, reduce=reduce, include_self=True)
    return torch.cat([kept_a, b], dim=1)


def merge_weighted(x: torch.Tensor, size: torch.Tensor, match: Matching | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average merge: a token standing for ``s`` patches weighs ``s``.

    ``x`` ``[B, N, D]``, ``size`` ``[B, N, 1]`` -> merged ``x`` and the summed sizes.
    Merging ``x * size`` and ``size`` by summation, then dividing, is the weighted mean.
    """
    if match is None:
        return x, size
    merged = merge_tokens(torch.cat([x * size, size], dim=-1), match, "sum")  # one scatter for both
    total, new_size = merged[..., :-1], merged[..., -1:]
    return total / new_size, new_size


def tome_r_for_keep(n_patches: int, n_blocks: int, keep: float) -> int:
    """A constant ``r`` per block that leaves about ``keep * n_patches`` patch tokens after
    the last block (ToMe's schedule is constant ``r``; this maps our keep ratios onto it)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep={keep!r} is out of range: it must lie in (0, 1]")
    return int(round((1.0 - keep) * n_patches / n_blocks))
