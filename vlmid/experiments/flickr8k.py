"""Notebook 04: a baseline against a token-pruned retrieval model, compared honestly.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

from ..verdict import CHANCE_10_CLASSES, Claim, ci, ci_keys

NUMBER = "04"
KEYS: tuple[str, ...] = ('baseline_recall5', 'pruned_recall5', 'flops_ratio', 'lossyness', 'train_time_ratio', 'encode_time_ratio', 'later_epoch_time_ratio', 'first_epoch_over_later', 'report_setup_lossyness', 'scorer_only_recall5', 'n_seeds_default', 'n_test_images')

CLAIMS = (
    Claim("04", "claim", "Token pruning lowers the FLOPs per image", "Flickr8k report",
        "FLOPs pruned / baseline {flops_ratio:.3f}", "83,494,912 -> 78,807,104 (ratio 0.944; Flickr8k report)",
        "FLOPs ratio < 1", lambda m: m["flops_ratio"] < 1, ("flops_ratio",)),
    Claim("04", "claim", "Token pruning cuts training time about 13-fold", "Flickr8k report",
        "training time pruned / baseline {train_time_ratio:.3f}",
        "714 s -> 54.7 s (ratio 0.077, first epoch's one-off cost included; Flickr8k report)",
        "training-time ratio <= 0.1", lambda m: m["train_time_ratio"] <= 0.1, ("train_time_ratio",)),
    Claim("04", "claim", "Token pruning costs considerable quality", "Flickr8k report",
        "recall@5 {baseline_recall5:.1%} -> {pruned_recall5:.1%}; lossy-ness {lossyness:+.3f}",
        "test loss 0.0007 -> 0.5050 and lossy-ness -704, from two different objectives (Flickr8k report)",
        "lossy-ness (1 - pruned / baseline recall@5) > 0.05",
        lambda m: m["lossyness"] > 0.05, ("baseline_recall5", "pruned_recall5", "lossyness")),
    Claim("04", "claim", "The token-pruned model's lossy-ness is -704 (test loss 0.0007 vs 0.5050)", "Flickr8k report",
        "the report's setup rebuilt in miniature: {report_setup_lossyness:+.0f}; "
        "on recall@5 with one objective: {lossyness:+.3f}",
        "-704 (Flickr8k report)", "the rebuilt report setup gives a lossy-ness below -10 (a ratio of two unrelated losses)",
        lambda m: m["report_setup_lossyness"] < -10, ("report_setup_lossyness", "lossyness")),
)
