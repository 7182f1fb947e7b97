"""The Flickr8k report's two small image-caption models, rebuilt so that they can be compared.

The Flickr8k report compared an image-only "baseline" (patch tokens -> projection -> mean pool) with a
"token-pruned multimodal" model (patch tokens -> importance scorer -> top half -> bilinear
alignment with a caption). The two were trained on different targets, so nothing they
reported compares them. Here both are the SAME dual encoder trained with the SAME contrastive
objective; the only difference is that the pruned one scores its patch tokens and keeps the
top fraction before the transformer blocks (plus, as in EViT, one token fusing the dropped ones):

    image -> patches -> tokens + positions -> [score, keep top k, gate, fuse the rest] -> blocks -> mean -> proj -> unit vector
    caption -> word ids -> embeddings + positions -> blocks -> masked mean -> proj -> unit vector

Pruning can only save the FLOPs spent *after* the pruning point (Amdahl): the patch
embedding and the scorer always see all N tokens. :func:`predicted_image_flops` writes that
down; the notebook checks it against ``torch.utils.flop_counter.FlopCounterMode``.

The report's two models as its text describes them (:class:`ReportImageOnly`,
:class:`ReportMultimodal`), for notebook 04's failure analysis, are in :mod:`.flickr8k_report`.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..profiling import count_flops, n_parameters  # the one FLOP counter and parameter count (re-exported)

from ..tokens import merge  # the token selection notebook 03 uses too

PAD, UNK = 0, 1


@dataclass
class RetrievalConfig:
    """Sizes shared by the baseline and the pruned model (the Flickr8k report: 112 px, patch 16, width 64)."""
    image_size: int = 112
    patch_size: int = 16
    width: int = 64          # token width (the report's embed_dim)
    depth: int = 2           # transformer blocks after the pruning point (the report had none)
    heads: int = 4
    mlp_ratio: int = 2
    embed_dim: int = 64      # joint image-text space
    vocab_size: int = 100
    text_depth: int = 1
    max_words: int = 24

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be a multiple of heads={self.heads}")

    @property
    def n_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


# ---------------------------------------------------------------------------------------
# token selection (pure tensor functions, testable without a model)
# ---------------------------------------------------------------------------------------
def check_keep_ratio(keep_ratio: float, name: str = "keep_ratio") -> float:
    """A keep ratio is a fraction of tokens in (0, 1]; anything else is a ValueError naming ``name``."""
    if isinstance(keep_ratio, bool) or not isinstance(keep_ratio, (int, float)) or not (0.0 < keep_ratio <= 1.0):
        raise ValueError(f"{name}={keep_ratio!r} is out of range: it must lie in (0, 1] "
                         f"(the fraction of patch tokens kept)")
    return float(keep_ratio)


def n_kept(n_tokens: int, keep_ratio: float) -> int:
    """How many of ``n_tokens`` a keep ratio keeps: floor, at least one (the report: int(49 * 0.5) = 24)."""
    return merge.num_kept(n_tokens, check_keep_ratio(keep_ratio), rounding="floor")


def keep_top_tokens(tokens: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``k`` highest-scoring tokens of each image: tokens [B, N, D], scores [B, N] -> [B, k, D], idx [B, k].

    The same selection as notebook 03's token pruning (:mod:`vlmid.tokens.merge`); the kept
    tokens come back in their original (spatial) order, which makes them easy to show.
    """
    idx = merge.topk_indices(scores, k, keep_order=True)
    return merge.gather_tokens(tokens, idx), idx


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise: top-k of (scores + noise) samples k items without replacement, p ~ softmax(scores)."""
    u = torch.rand_like(like).clamp(1e-9, 1.0 - 1e-9)
    return -torch.log(-torch.log(u))


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, N, C * patch * patch], row-major over the patch grid, each row one square patch."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


# ---------------------------------------------------------------------------------------
# the two encoders
# ---------------------------------------------------------------------------------------
class Block(nn.Module):
    """A pre-norm transformer block. Attention is written with matmuls so FlopCounterMode counts it."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        if pad is not None:  # pad [B, N] True where a word is padding: nobody attends to it
            att = att.masked_fill(pad[:, None, None, :], float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.out(y)
        return x + self.mlp(self.ln2(x))


class ImageEncoder(nn.Module):
    """Patch tokens -> (optional) top-fraction token selection -> blocks -> mean pool -> projection.

    ``keep_ratio=None``: the baseline, every patch token goes through the blocks.
    ``keep_ratio=r``: a small MLP scores each token (the Flickr8k report's importance scorer), the
    top ``k = int(N * r)`` are kept and multiplied by sigmoid(score). Top-k has no gradient, so
    the gate only teaches the scorer about tokens it already keeps; trained like that (the
    report's design, ``fuse_rest=False, explore=False``) a scorer that starts out preferring the
    empty background never finds out that the dropped tokens mattered. Two remedies:

    - ``fuse_rest`` (EViT): the dropped tokens are averaged, weighted by softmax(score), into
      one extra token; through those weights the scorer gets a gradient for dropped tokens.
    - ``explore`` (Gumbel-top-k, Kool et al. 2019): in training, tokens are selected by
      score + Gumbel noise, i.e. k tokens sampled without replacement with probabilities
      softmax(score), so every token is sometimes kept and its gate reports whether it
      helped. The scorer's last layer starts at zero, so early selection is uniform rather
      than biased by a random initialisation. At test time: the plain top-k.
    """

    def __init__(self, cfg: RetrievalConfig, keep_ratio: float | None = None, fuse_rest: bool = True,
                 explore: bool = True):
        super().__init__()
        self.cfg = cfg
        self.keep_ratio = None if keep_ratio is None else check_keep_ratio(keep_ratio)
        self.fuse_rest = bool(fuse_rest) and self.keep_ratio is not None
        self.explore = bool(explore) and self.keep_ratio is not None
        self.patch_embed = nn.Linear(3 * cfg.patch_size ** 2, cfg.width)
        self.pos = nn.Parameter(torch.randn(1, cfg.n_tokens, cfg.width) * 0.02)
        self.scorer = None
        if self.keep_ratio is not None:
            self.scorer = nn.Sequential(nn.Linear(cfg.width, cfg.width // 4), nn.GELU(), nn.Linear(cfg.width // 4, 1))
            if self.explore:  # all scores 0 at the start: the first selections are uniform samples
                nn.init.zeros_(self.scorer[-1].weight)
                nn.init.zeros_(self.scorer[-1].bias)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.embed_dim)

    @property
    def n_kept(self) -> int:
        """Patch tokens selected (k)."""
        return self.cfg.n_tokens if self.keep_ratio is None else n_kept(self.cfg.n_tokens, self.keep_ratio)

    @property
    def n_block_tokens(self) -> int:
        """Tokens the blocks see: k, plus the fused token when something was dropped."""
        return self.n_kept + int(self.fuse_rest and self.n_kept < self.cfg.n_tokens)

    def tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The tokens that enter the blocks, and which patches were kept (None: all of them)."""
        x = self.patch_embed(patchify(images, self.cfg.patch_size)) + self.pos
        if self.scorer is None:
            return x, None
        scores = self.scorer(x).squeeze(-1)
        select = scores
        if self.explore and self.training:  # Gumbel-top-k: a sample of k tokens, not always the same k
            select = scores.detach() + gumbel_noise(scores)
        kept, idx = keep_top_tokens(x, select, self.n_kept)
        kept = kept * torch.sigmoid(scores.gather(1, idx)).unsqueeze(-1)
        if self.fuse_rest:
            rest = merge.fuse_rest(x, scores.softmax(dim=-1), idx)  # None when nothing was dropped
            if rest is not None:
                kept = torch.cat([kept, rest], dim=1)
        return kept, idx

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, _ = self.tokens(images)
        for blk in self.blocks:
            x = blk(x)
        return self.proj(self.ln(x).mean(dim=1))


class TextEncoder(nn.Module):
    """Word embeddings + positions -> a tiny transformer -> masked mean -> projection.

    Positions matter on the captioned scenes: "a shirt left of a bag" and "a bag left of a
    shirt" have the same bag of words.
    """

    def __init__(self, cfg: RetrievalConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_words, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.text_depth))
        self.ln = nn.LayerNorm(cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.embed_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == PAD
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        for blk in self.blocks:
            x = blk(x, pad)
        keep = (~pad).unsqueeze(-1).float()
        x = (self.ln(x) * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.proj(x)


class RetrievalModel(nn.Module):
    """A CLIP-style dual encoder: unit-norm image and caption embeddings and a learned temperature."""

    def __init__(self, cfg: RetrievalConfig, keep_ratio: float | None = None, fuse_rest: bool = True,
                 explore: bool = True):
        super().__init__()
        self.cfg = cfg
        self.image = ImageEncoder(cfg, keep_ratio, fuse_rest, explore)
        self.text = TextEncoder(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    @property
    def keep_ratio(self) -> float:
        return 1.0 if self.image.keep_ratio is None else self.image.keep_ratio

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(images), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(ids), dim=-1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_text(ids), self.logit_scale.exp().clamp(max=100.0)


def baseline_model(cfg: RetrievalConfig) -> RetrievalModel:
    """Every patch token goes through the image blocks."""
    return RetrievalModel(cfg, keep_ratio=None)


def pruned_model(cfg: RetrievalConfig, keep_ratio: float = 0.5, fuse_rest: bool = True,
                 explore: bool = True) -> RetrievalModel:
    """Scores the patch tokens and keeps the top ``keep_ratio`` of them (the Flickr8k report kept 0.5).

    ``fuse_rest=False, explore=False`` is the report's scorer alone: nothing ever tells it that
    a dropped token mattered.
    """
    return RetrievalModel(cfg, keep_ratio=check_keep_ratio(keep_ratio), fuse_rest=fuse_rest, explore=explore)


@torch.no_grad()
def kept_mask(model: RetrievalModel, images: torch.Tensor) -> torch.Tensor:
    """[B, N] True where ``model``'s image encoder keeps a patch token (all True for the baseline)."""
    _, idx = model.image.tokens(images)
    mask = torch.zeros(images.shape[0], model.cfg.n_tokens, dtype=torch.bool)
    return mask.fill_(True) if idx is None else mask.scatter_(1, idx, True)




def scorer_only_name(keep_ratio: float) -> str:
    """The name notebook 04 gives the report-style pruned model (its scorer alone: no fused token, no exploration)."""
    return f"keep {keep_ratio:g}, scorer only"


def make_models(cfg: RetrievalConfig, keep_ratios, seed: int = 0, default_keep: float = 0.5,
                scorer_only: bool = True) -> dict[str, RetrievalModel]:
    """Notebook 04's models of one seed: ``"baseline"``, ``"keep r"`` for each r, and (optionally) the scorer-only one.

    Torch is re-seeded with ``seed`` before each model, so all start from the same initial
    weights (up to the scorer). The scorer-only model (named :func:`scorer_only_name`) keeps
    ``default_keep`` with ``fuse_rest=False, explore=False``: the Flickr8k report's selection.
    """
    torch.manual_seed(seed)
    ms = {"baseline": baseline_model(cfg)}
    for r in keep_ratios:
        torch.manual_seed(seed)
        ms[f"keep {r:g}"] = pruned_model(cfg, r)
    if scorer_only:
        torch.manual_seed(seed)
        ms[scorer_only_name(default_keep)] = pruned_model(cfg, default_keep, fuse_rest=False, explore=False)
    return ms


def foreground_tokens(images: torch.Tensor, patch: int, background: float = -0.9) -> torch.Tensor:
    """[B, N] True where a patch token has any pixel brighter than ``background`` (our scenes: black canvas = -1)."""
    return (patchify(images, patch) > background).any(-1)


def kept_token_table(runs, images: torch.Tensor, patch: int):
    """How much foreground each pruned model keeps: one row per pruned model of ``runs``.

    ``runs``: (seed, name, model, log) tuples; models without a keep ratio (the baseline) are
    skipped. Columns: seed, model, keep_ratio, fused_token, explore,
    foreground_share_of_all_tokens, foreground_share_of_kept (above the former: the scorer
    prefers garments) and foreground_tokens_kept (the fraction of foreground tokens kept).
    """
    import pandas as pd

    fg = foreground_tokens(images, patch)
    rows = []
    for s, name, m, _ in runs:
        if m.image.keep_ratio is not None:
            kept = kept_mask(m, images)
            rows.append(dict(seed=s, model=name, keep_ratio=m.keep_ratio, fused_token=m.image.fuse_rest,
                             explore=m.image.explore, foreground_share_of_all_tokens=float(fg.float().mean()),
                             foreground_share_of_kept=float(fg[kept].float().mean()),
                             foreground_tokens_kept=float((kept & fg).sum() / fg.sum())))
    return pd.DataFrame(rows)


def kept_token_overlay(model: RetrievalModel, images: torch.Tensor, grey: float = 0.55) -> torch.Tensor:
    """[B, S, S, 3] images in [0, 1] for display, the patch tokens ``model`` drops painted ``grey``."""
    p = model.cfg.patch_size
    grid = model.cfg.image_size // p
    mask = kept_mask(model, images).reshape(-1, grid, grid).float()
    shown = []
    for img, mk in zip(images, mask):
        shade = F.interpolate(mk[None, None], scale_factor=p)[0, 0]
        shown.append(((img.permute(1, 2, 0) + 1) / 2 * shade[..., None] + grey * (1 - shade[..., None])).clamp(0, 1))
    return torch.stack(shown)


# ---------------------------------------------------------------------------------------
# FLOPs: what the token count predicts, and what FlopCounterMode measures
# ---------------------------------------------------------------------------------------
def predicted_image_flops(cfg: RetrievalConfig, keep_ratio: float | None = None,
                          fuse_rest: bool = True) -> dict[str, int]:
    """Matmul FLOPs (2 per multiply-add, as FlopCounterMode counts) of one image through the image encoder.

    ``fixed``: spent on all N tokens whatever the keep ratio (patch embedding, scorer, the
    weighted sum that fuses the dropped tokens, the final projection); ``pruned_part``: the
    blocks, which see only the k kept tokens (+1 fused) - linear layers cost O(k), attention O(k^2).
    """
    n, w, p = cfg.n_tokens, cfg.width, cfg.patch_size
    k = n if keep_ratio is None else n_kept(n, keep_ratio)
    fixed = 2 * n * 3 * p * p * w + 2 * w * cfg.embed_dim
    if keep_ratio is not None:
        fixed += 2 * n * (w * (w // 4) + (w // 4))
    n_selected = k
    if keep_ratio is not None and fuse_rest and k < n:
        fixed += 2 * n * w   # the fused token: a weighted sum over all N tokens (kept ones weigh 0)
        k += 1
    per_block = 2 * k * w * (3 * w + w + 2 * cfg.mlp_ratio * w) + 2 * 2 * k * k * w
    blocks = cfg.depth * per_block
    return {"tokens_kept": n_selected, "block_tokens": k, "fixed": fixed, "pruned_part": blocks,
            "total": fixed + blocks}


def image_flops(model: RetrievalModel) -> int:
    """Measured FLOPs of one image through ``model``'s image encoder."""
    cfg = model.cfg
    was = model.training
    model.eval()
    try:
        return count_flops(lambda: model.encode_image(torch.zeros(1, 3, cfg.image_size, cfg.image_size)))
    finally:
        model.train(was)


def flops_table(models: dict, cfg: RetrievalConfig):
    """FLOPs and parameters of each model's image encoder, predicted and measured (one image).

    Columns: model, keep_ratio, tokens_kept, block_tokens, parameters, image_parameters,
    flops_predicted (:func:`predicted_image_flops`), flops_measured (:func:`image_flops`),
    flops_fixed, flops_ratio (measured, over the ``"baseline"`` model's) and token_ratio (k / N).
    """
    import pandas as pd

    rows = []
    for name, m in models.items():
        pred = predicted_image_flops(cfg, None if name == "baseline" else m.keep_ratio, fuse_rest=m.image.fuse_rest)
        rows.append(dict(model=name, keep_ratio=m.keep_ratio, tokens_kept=m.image.n_kept, block_tokens=m.image.n_block_tokens,
                         parameters=n_parameters(m), image_parameters=n_parameters(m.image),
                         flops_predicted=pred["total"], flops_measured=image_flops(m), flops_fixed=pred["fixed"]))
    flops = pd.DataFrame(rows)
    base_flops = flops.loc[flops.model == "baseline", "flops_measured"].item()
    flops["flops_ratio"] = flops.flops_measured / base_flops
    flops["token_ratio"] = flops.tokens_kept / cfg.n_tokens
    return flops


# ---------------------------------------------------------------------------------------
# captions -> word ids
# ---------------------------------------------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+")


def words(caption: str) -> list[str]:
    return _WORD.findall(caption.lower())


def build_vocab(captions, min_count: int = 1) -> dict[str, int]:
    """Word -> id from the training captions; 0 is padding, 1 an unknown word."""
    counts = Counter(w for c in captions for w in words(c))
    vocab = {"<pad>": PAD, "<unk>": UNK}
    for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if c >= min_count:
            vocab[w] = len(vocab)
    return vocab


def encode_captions(captions, vocab: dict[str, int], max_words: int) -> torch.Tensor:
    """Captions -> LongTensor [n, max_words] of word ids, padded with 0 and cut at ``max_words``."""
    out = torch.full((len(captions), max_words), PAD, dtype=torch.long)
    for i, c in enumerate(captions):
        ids = [vocab.get(w, UNK) for w in words(c)][:max_words] or [UNK]
        out[i, : len(ids)] = torch.tensor(ids)
    return out
