"""Patch a transformers CLIP vision tower in place so that it drops or merges tokens; undo it.

    from vlmid import tokens
    tokens.patch(clip.model, "evit", keep=0.7)    # CLIPModel, CLIPVisionModel or ...WithProjection
    clip.model.get_image_features(pixel_values)   # now runs on fewer tokens
    tokens.unpatch(clip.model)                    # the original model again, bit for bit
    with tokens.patched(clip.model, "tome", keep=0.5):
        ...

How: the vision tower (a ``CLIPVisionModel``: embeddings -> pre_layrnorm -> encoder.layers
-> post_layernorm of token 0) gets an instance attribute ``forward`` that runs the *same*
modules in its own loop and reduces the tokens between them. Nothing is copied or
forked; ``unpatch`` deletes the attribute, so the class's forward is found again.

Methods (``PRESETS``): ``naive`` is seed 002 exactly; ``fix_*`` each repair one of its
defects; ``topk`` repairs all of them; ``evit`` and ``tome`` are the published methods.
The attention implementation of the model (sdpa by default) is never changed: where a
method needs attention weights (EViT needs the class token's row) we compute that one
row from the queries and keys ourselves, which is the eager formula for one query and
costs O(N d) instead of the O(N^2 d) of a full eager attention map.
"""
from __future__ import annotations

import contextlib
import types
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from .merge import (bipartite_soft_matching, cls_attention, fuse_rest, gather_tokens, l2_topk,
                    merge_weighted, num_kept, summary_token, tome_r_for_keep, topk_indices)

# seed 002 (Sec. 5.3): L2-norm top-k of raw patch embeddings (no class token, no positions),
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


@dataclass
class TokenConfig:
    """Everything that decides what the patched forward does (stored on the tower)."""
    name: str = "none"
    method: str = "none"          # "none" | "topk" | "evit" | "tome"
    keep: float = 1.0             # fraction of patch tokens kept (per reduction for evit)
    keep_cls: bool = True         # topk: class token kept at 0 (False: seed's mean summary token)
    positions: bool = True        # topk: position embeddings added before selection, order kept
    prenorm: bool = True          # topk: apply pre_layrnorm
    after_block: int | str = 0    # topk: select before block `after_block` (0 = before the encoder)
    blocks: tuple[int, ...] | None = None  # evit: blocks whose CLS attention ranks the patches
    fuse: bool = True             # evit: fuse the dropped patches into one token
    r: int | None = None          # tome: tokens merged per block (None: from `keep` and the input's patches)
    prop_attn: bool = True        # tome: proportional attention, log(size) added to the logits
    # filled by each forward: tokens entering each block, then tokens leaving the last one
    tokens_per_block: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("tokens_per_block")
        return d


def vision_tower(model: torch.nn.Module) -> torch.nn.Module:
    """The ``CLIPVisionModel`` inside ``model`` (or ``model`` itself)."""
    for m in (model, getattr(model, "vision_model", None)):
        if m is not None and all(hasattr(m, a) for a in ("embeddings", "pre_layrnorm", "encoder", "post_layernorm")):
            return m
    raise TypeError(f"{type(model).__name__} has no CLIP vision tower (expected a CLIPVisionModel "
                    f"or a model with .vision_model)")


def _resolve(tower, name: str, keep: float, options: dict) -> TokenConfig:
    if name not in PRESETS:
        raise ValueError(f"method={name!r} is not known: use one of {sorted(PRESETS)}")
    unknown = set(options) - set(TokenConfig.__dataclass_fields__) - {"name", "tokens_per_block"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for tokens.patch")
    cfg = TokenConfig(**{**PRESETS[name], **options, "name": name, "keep": float(keep)})
    num_kept(10, cfg.keep)  # validates 0 < keep <= 1 with a clear message
    n_layers = len(tower.encoder.layers)
    if cfg.after_block == "late":
        cfg.after_block = n_layers // 2
    if not (isinstance(cfg.after_block, int) and 0 <= cfg.after_block < n_layers):
        raise ValueError(f"after_block={cfg.after_block!r} is out of range: it must lie in [0, {n_layers - 1}]")
    if cfg.blocks is None:  # EViT prunes at blocks 4, 7, 10 of 12: a quarter, half, three quarters in
        cfg.blocks = tuple(sorted({max(1, round(n_layers * f)) for f in (0.25, 0.5, 0.75)}))
    cfg.blocks = tuple(int(b) for b in cfg.blocks)
    if any(not 0 <= b < n_layers for b in cfg.blocks):
        raise ValueError(f"blocks={cfg.blocks!r} is out of range: each must lie in [0, {n_layers - 1}]")
    if cfg.r is not None and (int(cfg.r) != cfg.r or cfg.r < 0):
        raise ValueError(f"r={cfg.r!r} is out of range: it must be an integer >= 0")
    return cfg


def patch(model: torch.nn.Module, method: str = "evit", keep: float = 1.0, **options) -> torch.nn.Module:
    """Make ``model``'s vision tower reduce tokens with ``method`` (a key of ``PRESETS``).

    ``keep`` is the fraction of patch tokens kept (``topk``/``naive``: once; ``evit``: at each
    of ``blocks``; ``tome``: left after the last block, i.e. ``r`` per block). Other
    ``options`` override the preset's fields of :class:`TokenConfig`. Patching a patched
    model replaces the previous patch. Returns ``model``.
    """
    tower = vision_tower(model)
    cfg = _resolve(tower, method, keep, options)  # validate before touching the model
    unpatch(model)
    _install(tower, cfg)
    return model


def _install(tower, cfg: TokenConfig) -> None:
    tower._vlmid_tokens = cfg
    tower.forward = types.MethodType(_forward, tower)


def unpatch(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`patch` (no-op on an unpatched model). Returns ``model``."""
    tower = vision_tower(model)
    tower.__dict__.pop("forward", None)
    tower.__dict__.pop("_vlmid_tokens", None)
    return model


def config(model: torch.nn.Module) -> TokenConfig | None:
    """The active :class:`TokenConfig` (with ``tokens_per_block`` of the last forward), or None."""
    return vision_tower(model).__dict__.get("_vlmid_tokens")


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


def _select_l2(x: torch.Tensor, cfg: TokenConfig, has_cls: bool) -> torch.Tensor:
    """Seed 002's step (and its repaired versions): L2 top-k of the patches, token 0 in front."""
    first, patches = (x[:, :1], x[:, 1:]) if has_cls else (None, x)
    k = num_kept(patches.shape[1], cfg.keep, "floor")  # the seed's int(p * N)
    kept = gather_tokens(patches, l2_topk(patches, k, keep_order=cfg.positions))
    if not cfg.keep_cls:
        first = summary_token(patches)
    return torch.cat([first, kept], dim=1)


def _run_topk(tower, cls, patches, pos, cfg: TokenConfig, states: list | None) -> torch.Tensor:
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
        cfg.tokens_per_block.append(x.shape[1])
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


def _run_evit(tower, x: torch.Tensor, cfg: TokenConfig, states: list | None) -> torch.Tensor:
    for i, layer in enumerate(tower.encoder.layers):
        cfg.tokens_per_block.append(x.shape[1])
        x = _evit_block(layer, x, cfg.keep, cfg.fuse) if i in cfg.blocks else layer(x, None)
        _keep(states, x)
    return x


def _run_tome(tower, x: torch.Tensor, cfg: TokenConfig, states: list | None) -> torch.Tensor:
    # r from keep uses the patches of *this* input, so interpolated resolutions prune alike
    r = cfg.r if cfg.r is not None else tome_r_for_keep(x.shape[1] - 1, len(tower.encoder.layers), cfg.keep)
    size = None  # tokens per merged token, [B, N, 1]; None while nothing is merged
    for layer in tower.encoder.layers:
        cfg.tokens_per_block.append(x.shape[1])
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
    cfg: TokenConfig = self._vlmid_tokens
    cfg.tokens_per_block = []
    # hidden_states: the output of every block (token counts differ between entries)
    states = [] if output_hidden_states else None
    cls, patches, pos = _embed(self, pixel_values, bool(interpolate_pos_encoding))
    if cfg.method == "topk":
        x = _run_topk(self, cls, patches, pos, cfg, states)
    else:
        x = self.pre_layrnorm(torch.cat([cls, patches], dim=1) + pos)
        if cfg.method == "evit":
            x = _run_evit(self, x, cfg, states)
        elif cfg.method == "tome":
            x = _run_tome(self, x, cfg, states)
        else:
            for layer in self.encoder.layers:
                cfg.tokens_per_block.append(x.shape[1])
                x = layer(x, None)
                _keep(states, x)
    cfg.tokens_per_block.append(x.shape[1])  # tokens leaving the last block
    pooled = self.post_layernorm(x[:, 0, :])  # CLIP pools token 0 after the last block
    return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled,
                                      hidden_states=tuple(states) if states is not None else None)
