"""Vision-token pruning and merging for CLIP, as one call that patches a model in place.

    from vlmid import tokens
    tokens.patch(clip.model, "evit", keep=0.7)   # or "naive", "fix_cls", ..., "topk", "tome"
    tokens.unpatch(clip.model)
    with tokens.patched(clip.model, "tome", keep=0.5): ...
    tokens.config(clip.model)                    # the method's frozen config (TopKConfig, EViTConfig, ...)
    tokens.stats(clip.model).tokens_per_block    # what the last forward did

``merge`` holds the algorithms as pure tensor functions; ``patch`` wires them into a
transformers ``CLIPVisionModel``.
"""
from .merge import (bipartite_soft_matching, cls_attention, fuse_rest, gather_tokens, l2_topk,
                    merge_tokens, merge_weighted, num_kept, summary_token, tome_r_for_keep, topk_indices)
from .patch import (CONFIGS, PRESETS, EViTConfig, MethodConfig, NoneConfig, TokenStats, ToMeConfig, TopKConfig,
                    config, patch, patched, stats, unpatch, vision_tower)

__all__ = ["PRESETS", "CONFIGS", "MethodConfig", "NoneConfig", "TopKConfig", "EViTConfig", "ToMeConfig", "TokenStats",
           "config", "stats", "patch", "patched", "unpatch", "vision_tower",
           "bipartite_soft_matching", "cls_attention", "fuse_rest", "gather_tokens", "l2_topk",
           "merge_tokens", "merge_weighted", "num_kept", "summary_token", "tome_r_for_keep", "topk_indices"]
