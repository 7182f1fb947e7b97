"""Patch a transformers CLIP vision tower in place so that it drops or merges tokens; undo it.

    from vlmid import tokens
    tokens.patch(clip.model, "evit", keep=0.7)    # CLIPModel, CLIPVisionModel or ...WithProjection
    clip.model.get_image_features(pixel_values)   # now runs on fewer tokens
    tokens.unpatch(clip.model)                    # the original model again, bit for bit
    tokens.config(clip.model)                     # EViTConfig(name='evit', keep=0.7, blocks=..., fuse=True)
    tokens.stats(clip.model).tokens_per_block     # tokens entering each block in the last forward
    with tokens.patched(clip.model, "tome", keep=0.5):
        ...

How: the vision tower (a ``CLIPVisionModel``: embeddings -> pre_layrnorm -> encoder.layers
-> post_layernorm of token 0) gets an instance attribute ``forward`` that runs the *same*
modules in its own loop and reduces the tokens between them. Nothing is copied or
forked; ``unpatch`` deletes the attribute, so the class's forward is found again.

Methods (``PRESETS``): ``naive`` is the CLIP token report's method exactly; ``fix_*`` each repair one of its
defects; ``topk`` repairs all of them; ``evit`` and ``tome`` are the published methods.
The attention implementation of the model (sdpa by default) is never changed: where a
method needs attention weights (EViT needs the class token's row) we compute that one
row from the queries and keys ourselves, which is the eager formula for one query and
costs O(N d) instead of the O(N^2 d) of a full eager attention map.
"""
from __future__ import annotations

import contextlib
import types
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

import torch
import torch.nn.functional as F

from .merge import (bipartite_soft_matching, cls_attention, fuse_rest, gather_tokens, l2_topk,
                    merge_weighted, num_kept, summary_token, tome_r_for_keep, topk_indices)

# the CLIP token report (its Sec. 5.3): L2-norm top-k of raw patch embeddings (no class token, no positions),
# a mean "summary" token in front, fed straight to the transformer blocks (no ln_pre).
_NAIVE = dict(method="topk", keep_cls=False, positions=False, prenorm=False, after_block=0)

PRESETS: dict[str, dict] = {
    "none": dict(method="none"),                      # our loop, nothing removed (== the original)
    "naive": _NAIVE,
    "fix_cls": {**_NAIVE, "keep_cls": True},          # the class token stays at index 0
    "fix_positions": {**_NAIVE, "positions": True},   # positions added before selection, order kept
    "fix_prenorm": {**_NAIVE, "prenorm": True},       # pre_layrnorm applied as in CLIP
    "fix_late": {**_NAIVE, "after_block": "late"},    # select only after some blocks built context
    "topk": dict(method="topk", keep_cls=True, positions=True, prenorm=True, after_block="late"),
    "evit": dict(method="evit"),
    "tome": dict(method="tome"),
}


@dataclass(frozen=True)
class MethodConfig:
    """What the patched forward does: the base of one frozen config per method (stored on the tower).

    ``name`` is the preset (a key of ``PRESETS``), ``keep`` the fraction of patch tokens kept;
    each subclass adds only its own method's options. ``method`` names the forward to run."""
    name: str = "none"
    keep: float = 1.0             # fraction of patch tokens kept (per reduction for evit)
    method: ClassVar[str] = "none"

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """The option names ``tokens.patch`` accepts for this method (every field but name and keep)."""
        return tuple(f.name for f in fields(cls) if f.name not in ("name", "keep"))

    def as_dict(self) -> dict:
        return {"name": self.name, "method": self.method, **{k: v for k, v in asdict(self).items() if k != "name"}}


@dataclass(frozen=True)
class NoneConfig(MethodConfig):
    """Our loop over the blocks with nothing removed (== the original model)."""


@dataclass(frozen=True)
class TopKConfig(MethodConfig):
    """L2-norm top-k of the patches, once (the CLIP token report's method and its repairs)."""
    keep_cls: bool = True         # class token kept at 0 (False: the report's mean summary token)
    positions: bool = True        # position embeddings added before selection, order kept
    prenorm: bool = True          # apply pre_layrnorm
    after_block: int = 0          # select before block `after_block` (0 = before the encoder)
    method: ClassVar[str] = "topk"


@dataclass(frozen=True)
class EViTConfig(MethodConfig):
    """EViT: keep the patches the class token attends to most, at each of ``blocks``."""
    blocks: tuple[int, ...] = ()  # blocks whose CLS attention ranks the patches
    fuse: bool = True             # fuse the dropped patches into one token
    method: ClassVar[str] = "evit"


@dataclass(frozen=True)
class ToMeConfig(MethodConfig):
    """ToMe: merge ``r`` tokens per block by bipartite soft matching of the keys."""
    r: int | None = None          # tokens merged per block (None: from `keep` and the input's patches)
    prop_attn: bool = True        # proportional attention, log(size) added to the logits
    method: ClassVar[str] = "tome"


CONFIGS: dict[str, type[MethodConfig]] = {c.method: c for c in (NoneConfig, TopKConfig, EViTConfig, ToMeConfig)}


@dataclass
class TokenStats:
    """What the last forward of a patched tower did (filled by each forward)."""
    # tokens entering each block, then tokens leaving the last one
    tokens_per_block: list[int] = field(default_factory=list)


def vision_tower(model: torch.nn.Module) -> torch.nn.Module:
    """The ``CLIPVisionModel`` inside ``model`` (or ``model`` itself)."""
    for m in (model, getattr(model, "vision_model", None)):
        if m is not None and all(hasattr(m, a) for a in ("embeddings", "pre_layrnorm", "encoder", "post_layernorm")):
            return m
    raise TypeError(f"{type(model).__name__} has no CLIP vision tower (expected a CLIPVisionModel "
                    f"or a model with .vision_model)")


def _resolve(tower, name: str, keep: float, options: dict) -> MethodConfig:
    if name not in PRESETS:
        raise ValueError(f"method={name!r} is not known: use one of {sorted(PRESETS)}")
    preset = dict(PRESETS[name])
    cls = CONFIGS[preset.pop("method")]
    unknown = set(options) - set(cls.options())
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for tokens.patch method {name!r} "
                         f"({cls.__name__}): it takes {list(cls.options()) or 'no options'}")
    opts = {**preset, **options}
    num_kept(10, float(keep))  # validates 0 < keep <= 1 with a clear message
    n_layers = len(tower.encoder.layers)
    if cls is TopKConfig:
        after = opts.get("after_block", 0)
        if after == "late":
            after = n_layers // 2
        if not (isinstance(after, int) and 0 <= after < n_layers):
            raise ValueError(f"after_block={after!r} is out of range: it must lie in [0, {n_layers - 1}]")
        opts["after_block"] = after
    elif cls is EViTConfig:
        blocks = opts.get("blocks")
        if blocks is None:  # EViT prunes at blocks 4, 7, 10 of 12: a quarter, half, three quarters in
            blocks = tuple(sorted({min(n_layers - 1, max(1, round(n_layers * f))) for f in (0.25, 0.5, 0.75)}))
        blocks = tuple(int(b) for b in blocks)
        if any(not 0 <= b < n_layers for b in blocks):
            raise ValueError(f"blocks={blocks!r} is out of range: each must lie in [0, {n_layers - 1}]")
        opts["blocks"] = blocks
    elif cls is ToMeConfig:
        r = opts.get("r")
        if r is not None and (int(r) != r or r < 0):
            raise ValueError(f"r={r!r} is out of range: it must be an integer >= 0")
    return cls(name=name, keep=float(keep), **opts)


def patch(model: torch.nn.Module, method: str = "evit", keep: float = 1.0, **options) -> torch.nn.Module:
    """Make ``model``'s vision tower reduce tokens with ``method`` (a key of ``PRESETS``).

    ``keep`` is the fraction of patch tokens kept (``topk``/``naive``: once; ``evit``: at each
    of ``blocks``; ``tome``: left after the last block, i.e. ``r`` per block). Other
    ``options`` override the preset's options; they must be fields of the method's config
    (:class:`TopKConfig`, :class:`EViTConfig`, :class:`ToMeConfig`), else a ValueError names
    them. Patching a patched model replaces the previous patch. Returns ``model``.
    """
    tower = vision_tower(model)
    cfg = _resolve(tower, method, keep, options)  # validate before touching the model
    unpatch(model)
    _install(tower, cfg)
    return model


def _install(tower, cfg: MethodConfig) -> None:
    tower._vlmid_tokens = cfg
    tower._vlmid_token_stats = TokenStats()
    tower.forward = types.MethodType(_forward, tower)


def unpatch(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`patch` (no-op on an unpatched model). Returns ``model``."""
    tower = vision_tower(model)
    tower.__dict__.pop("forward", None)
    tower.__dict__.pop("_vlmid_tokens", None)
    tower.__dict__.pop("_vlmid_token_stats", None)
    return model


def config(model: torch.nn.Module) -> MethodConfig | None:
    """The active method's config (a frozen :class:`MethodConfig` subclass), or None if unpatched."""
    return vision_tower(model).__dict__.get("_vlmid_tokens")


def stats(model: torch.nn.Module) -> TokenStats | None:
    """The :class:`TokenStats` of the patched tower's last forward (empty before the first), or None
    if unpatched. The object stays the same while the patch is active; each forward refills it."""
    return vision_tower(model).__dict__.get("_vlmid_token_stats")


@contextlib.contextmanager
def patched(model: torch.nn.Module, method: str = "evit", keep: float = 1.0, **options):
    """``with patched(model, "tome", keep=0.5): ...`` restores the previous state on exit."""
    before = config(model)
    patch(model, method, keep, **options)
    try:
        yield model
    finally:
        unpatch(model)
        if before is not None:
            _install(vision_tower(model), before)


# --------------------------------------------------------------------------------------
# the patched forward
# --------------------------------------------------------------------------------------
def _embed(tower, pixel_values: torch.Tensor, interpolate: bool):
    """CLIPVisionEmbeddings in pieces: class token, patch tokens, position table (all [B|1, ., D])."""
    emb = tower.embeddings
    b, _, h, w = pixel_values.shape
    if not interpolate and (h != emb.image_size or w != emb.image_size):
        raise ValueError(f"Input image size ({h}*{w}) doesn't match model ({emb.image_size}*{emb.image_size}); "
                         f"pass interpolate_pos_encoding=True")
    weight = emb.patch_embedding.weight
    patches = emb.patch_embedding(pixel_values.to(weight.dtype)).flatten(2).transpose(1, 2)
    cls = emb.class_embedding.to(patches.dtype).expand(b, 1, -1)
    if interpolate:
        pos = emb.interpolate_pos_encoding(torch.cat([cls, patches], dim=1), h, w)
    else:
        pos = emb.position_embedding(emb.position_ids)
    return cls, patches, pos


def _attention(attn, h: torch.Tensor, mask: torch.Tensor | None = None, cls_logits: bool = False):
    """CLIPAttention with the same weights, also returning the keys and (optionally) the
    class token's scaled attention logits ``[B, H, N]``."""
    b, n, _ = h.shape
    shape = (b, n, attn.num_heads, attn.head_dim)
    q = attn.q_proj(h).view(shape).transpose(1, 2)
    k = attn.k_proj(h).view(shape).transpose(1, 2)
    v = attn.v_proj(h).view(shape).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
    o = attn.out_proj(o.transpose(1, 2).reshape(b, n, -1))
    logits = (q[:, :, :1] @ k.transpose(-1, -2)).squeeze(2) * attn.scale if cls_logits else None
    return o, k, logits


def _select_l2(x: torch.Tensor, cfg: TopKConfig, has_cls: bool) -> torch.Tensor:
    """The CLIP token report's step (and its repaired versions): L2 top-k of the patches, token 0 in front."""
    first, patches = (x[:, :1], x[:, 1:]) if has_cls else (None, x)
    k = num_kept(patches.shape[1], cfg.keep, "floor")  # the report's int(p * N)
    kept = gather_tokens(patches, l2_topk(patches, k, keep_order=cfg.positions))
    if not cfg.keep_cls:
        first = summary_token(patches)
    return torch.cat([first, kept], dim=1)


def _run_topk(tower, cls, patches, pos, cfg: TopKConfig, counts: list, states: list | None) -> torch.Tensor:
    if cfg.positions:
        cls, patches = cls + pos[:, :1], patches + pos[:, 1:]
    # without keep_cls the class embedding never enters: the summary token appears at selection
    x = torch.cat([cls, patches], dim=1) if cfg.keep_cls else patches
    has_cls = cfg.keep_cls
    for i, layer in enumerate(tower.encoder.layers):
        if i == cfg.after_block:
            x, has_cls = _select_l2(x, cfg, has_cls), True
        if i == 0 and cfg.prenorm:
            x = tower.pre_layrnorm(x)
        counts.append(x.shape[1])
        x = layer(x, None)
        _keep(states, x)
    return x


def _keep(states: list | None, x: torch.Tensor) -> None:
    if states is not None:
        states.append(x)


def _evit_block(layer, x: torch.Tensor, keep: float, fuse: bool) -> torch.Tensor:
    """One encoder layer that, between attention and MLP, keeps the class token and the
    patches it attends to most (EViT), fusing the others into one token."""
    k = num_kept(x.shape[1] - 1, keep, "ceil")
    if k == x.shape[1] - 1:  # nothing to drop: the ordinary layer
        return layer(x, None)
    out, _, logits = _attention(layer.self_attn, layer.layer_norm1(x), cls_logits=True)
    x = x + out
    scores = cls_attention(logits)                     # [B, N-1]
    patches = x[:, 1:]
    idx = topk_indices(scores, k, keep_order=True)
    parts = [x[:, :1], gather_tokens(patches, idx)]
    fused = fuse_rest(patches, scores, idx) if fuse else None
    if fused is not None:
        parts.append(fused)
    x = torch.cat(parts, dim=1)
    return x + layer.mlp(layer.layer_norm2(x))


def _run_evit(tower, x: torch.Tensor, cfg: EViTConfig, counts: list, states: list | None) -> torch.Tensor:
    for i, layer in enumerate(tower.encoder.layers):
        counts.append(x.shape[1])
        x = _evit_block(layer, x, cfg.keep, cfg.fuse) if i in cfg.blocks else layer(x, None)
        _keep(states, x)
    return x


def _run_tome(tower, x: torch.Tensor, cfg: ToMeConfig, counts: list, states: list | None) -> torch.Tensor:
    # r from keep uses the patches of *this* input, so interpolated resolutions prune alike
    r = cfg.r if cfg.r is not None else tome_r_for_keep(x.shape[1] - 1, len(tower.encoder.layers), cfg.keep)
    size = None  # tokens per merged token, [B, N, 1]; None while nothing is merged
    for layer in tower.encoder.layers:
        counts.append(x.shape[1])
        # proportional attention: a token that stands for s patches gets s times the weight
        mask = size.log().transpose(1, 2).unsqueeze(1) if (cfg.prop_attn and size is not None) else None
        out, keys, _ = _attention(layer.self_attn, layer.layer_norm1(x), mask=mask)
        x = x + out
        match = bipartite_soft_matching(keys.mean(dim=1), r, protect_first=True)
        if match is not None:
            size = torch.ones_like(x[..., :1]) if size is None else size
            x, size = merge_weighted(x, size, match)
        x = x + layer.mlp(layer.layer_norm2(x))
        _keep(states, x)
    return x


def _forward(self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool | None = False,
             output_attentions: bool | None = None, output_hidden_states: bool | None = None, **kwargs):
    """Replaces ``CLIPVisionModel.forward`` while patched (same inputs, same output type)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    if output_attentions:
        raise NotImplementedError("a token-patched CLIP tower returns no attention maps: unpatch it first")
    cfg: MethodConfig = self._vlmid_tokens
    counts: list[int] = []
    self._vlmid_token_stats.tokens_per_block = counts
    # hidden_states: the output of every block (token counts differ between entries)
    states = [] if output_hidden_states else None
    cls, patches, pos = _embed(self, pixel_values, bool(interpolate_pos_encoding))
    if cfg.method == "topk":
        x = _run_topk(self, cls, patches, pos, cfg, counts, states)
    else:
        x = self.pre_layrnorm(torch.cat([cls, patches], dim=1) + pos)
        if cfg.method == "evit":
            x = _run_evit(self, x, cfg, counts, states)
        elif cfg.method == "tome":
            x = _run_tome(self, x, cfg, counts, states)
        else:
            for layer in self.encoder.layers:
                counts.append(x.shape[1])
                x = layer(x, None)
                _keep(states, x)
    counts.append(x.shape[1])  # tokens leaving the last block
    pooled = self.post_layernorm(x[:, 0, :])  # CLIP pools token 0 after the last block
    return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled,
                                      hidden_states=tuple(states) if states is not None else None)
