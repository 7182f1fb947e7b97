"""Notebook 03: CLIP vision-token pruning, its collapse and its repairs.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

from ..verdict import CHANCE_10_CLASSES, Claim, ci, ci_keys


def _speedup_from_flops(ratio: float) -> float:
    """FLOPs reduction as a factor > 1, whichever way the notebook wrote the ratio."""
    return 1.0 / ratio if 0 < ratio < 1 else ratio

NUMBER = "03"
KEYS: tuple[str, ...] = ('baseline_top1', 'naive_top1_keep_0.5', 'naive_speedup_keep_0.5', 'best_variant', 'best_speedup_within_1pt', 'best_top1_within_1pt', 'best_flops_variant', 'best_flops_ratio_within_1pt', 'best_top1_change_within_1pt', 'best_top1_change_within_1pt_ci_low', 'best_top1_change_within_1pt_ci_high', 'n_eval', 'threads')

CLAIMS = (
    Claim("03", "claim", "Naive token pruning at keep 0.5 (L2 norm, summary token for CLS) collapses "
        "zero-shot accuracy while saving latency", "CLIP token report; docs/methods.md §5",
        "top-1 {baseline_top1:.1%} -> {naive_top1_keep_0.5:.1%}; throughput x{naive_speedup_keep_0.5:.2f}",
        "CLIP ViT-B/16, CIFAR-10: 88 % -> 10 % (chance), latency 81 -> 46 ms (CLIP token report; docs/methods.md §5)",
        "naive top-1 <= chance + 10 points or <= half the baseline, and speed-up > 1",
        lambda m: (m["naive_top1_keep_0.5"] <= CHANCE_10_CLASSES + 0.10
                   or m["naive_top1_keep_0.5"] <= m["baseline_top1"] / 2) and m["naive_speedup_keep_0.5"] > 1,
        ("baseline_top1", "naive_top1_keep_0.5", "naive_speedup_keep_0.5")),
    Claim("03", "target", "A token-reduction variant reaches >= 1.5x throughput (or FLOPs reduction) "
        "at <= 1 point top-1 loss, without fine-tuning", "docs/methods.md §5",
        "{best_variant}: x{best_speedup_within_1pt:.2f} throughput; "
        "{best_flops_variant}: {best_flops_ratio_within_1pt:.2f}x fewer FLOPs; top-1 change of {best_variant}: "
        + ci("best_top1_change_within_1pt") + " on {n_eval} images",
        "ToMe off the shelf, ViT-B/16 ImageNet: 1.65x at -2.0 points; EViT DeiT-S keep 0.7: "
        "+50 % throughput at -0.3 points after training (docs/methods.md §5)",
        "throughput ratio >= 1.5 or FLOPs reduction >= 1.5, among variants whose 95 % interval of the top-1 change "
        "lies above -1 point (paired bootstrap over images)",
        lambda m: m["best_speedup_within_1pt"] >= 1.5
        or _speedup_from_flops(m["best_flops_ratio_within_1pt"]) >= 1.5,
        ("best_variant", "best_speedup_within_1pt", "best_flops_variant", "best_flops_ratio_within_1pt", "n_eval",
         *ci_keys("best_top1_change_within_1pt")),
        if_null=("no variant stays within 1 point of the baseline beyond the noise", False)),
)
