"""Notebook 05: quantization, layer dropping and low-rank factorization on one model.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

from ..verdict import CHANCE_10_CLASSES, Claim, ci, ci_keys

NUMBER = "05"
KEYS: tuple[str, ...] = ('int8_bytes_ratio', 'nf4_bytes_ratio', 'int8_cider', 'nf4_cider', 'fp32_cider', 'svd_plain_cider', 'svd_aware_cider', 'svd_asvd_cider', 'svd_mid_energy', 'svd_mid_size_ratio', 'svd_plain_nll', 'svd_aware_nll', 'svd_aware_wins', 'svd_aware_losses', 'svd_aware_nll_wins', 'svd_sizes', 'layerdrop_cider', 'layerdrop_noft_cider', 'fp32_ft_cider', 'fp32_semantic', 'fp32_nll', 'fp32_latency_s', 'fp32_zeroshot', 'nf4_zeroshot', 'int8_dynamic_bytes_ratio', 'int8_dynamic_cider', 'int8_dynamic_latency_ratio', 'fp32_garment_f1', 'int8_garment_f1', 'nf4_garment_f1', 'fp32_binding_acc', 'int8_vs_95pct_fp32', 'int8_vs_95pct_fp32_ci_low', 'int8_vs_95pct_fp32_ci_high', 'layerdrop_vs_best_other', 'layerdrop_vs_best_other_ci_low', 'layerdrop_vs_best_other_ci_high', 'best_other_method', 'svd_aware_minus_plain', 'svd_aware_minus_plain_ci_low', 'svd_aware_minus_plain_ci_high', 'qwen2vl_section')

CLAIMS = (
    Claim("05", "claim", "Quantization saves the most memory: 8-bit about 29 %, 4-bit about 18 % of the fp32 size",
        "compression slides; docs/methods.md §6",
        "int8 {int8_bytes_ratio:.1%}, nf4 {nf4_bytes_ratio:.1%} of the quantized layers' fp32 bytes",
        "Qwen2-VL-2B: 6.17 GB -> 1.77 GB (8-bit), 1.12 GB (4-bit) (compression slides)",
        "int8 <= 30 % and nf4 <= 20 %", lambda m: m["int8_bytes_ratio"] <= 0.30 and m["nf4_bytes_ratio"] <= 0.20,
        ("int8_bytes_ratio", "nf4_bytes_ratio")),
    Claim("05", "claim", "Quantization keeps the quality (accuracy similar or slightly lower)", "compression slides",
          "CIDEr-D fp32 {fp32_cider:.3f}, int8 {int8_cider:.3f}, nf4 {nf4_cider:.3f}; int8 minus 95 % of fp32: "
          + ci("int8_vs_95pct_fp32"), "",
          "int8 CIDEr-D minus 95 % of fp32's is above zero (paired bootstrap 95 % over test scenes; undecided when it "
          "holds zero)", lambda m: m["int8_vs_95pct_fp32_ci_low"] > 0,
          ("fp32_cider", "int8_cider", "nf4_cider", *ci_keys("int8_vs_95pct_fp32")),
          interval=ci_keys("int8_vs_95pct_fp32")[1:]),
    Claim("05", "claim", "Activation-aware SVD keeps more quality than plain SVD at the same size",
        "docs/methods.md §6 (ASVD, SVD-LLM)",
        "CIDEr-D at the same mid size: plain {svd_plain_cider:.3f}, activation-aware {svd_aware_cider:.3f}; "
        "of {svd_sizes:.0f} sizes, activation-aware ahead beyond the noise at {svd_aware_wins:.0f}, behind at "
        "{svd_aware_losses:.0f}; lower reference NLL at {svd_aware_nll_wins:.0f}; at the mid size aware minus plain "
        + ci("svd_aware_minus_plain"),
        "plain SVD collapses at high compression, activation-aware variants hold up (docs/methods.md §6)",
        "activation-aware never behind plain SVD and ahead at one size or more (CIDEr-D, paired bootstrap 95 % at each "
        "size); undecided when every size's interval holds zero",
        lambda m: (False if m["svd_aware_losses"] > 0 else True if m["svd_aware_wins"] >= 1 else None),
        ("svd_plain_cider", "svd_aware_cider", "svd_aware_wins", "svd_aware_losses", "svd_aware_nll_wins",
         "svd_sizes", *ci_keys("svd_aware_minus_plain"))),
    Claim("05", "claim", "Dropping half the decoder layers (then fine-tuning) keeps the most quality "
          "of the compression methods", "compression slides",
          "CIDEr-D layer drop {layerdrop_cider:.3f} vs int8 {int8_cider:.3f}, nf4 {nf4_cider:.3f}, "
          "SVD {svd_plain_cider:.3f} / {svd_aware_cider:.3f}; layer drop minus the best other ({best_other_method}): "
          + ci("layerdrop_vs_best_other"), "",
          "layer drop minus the best other method's CIDEr-D is above zero (paired bootstrap 95 %; undecided when it "
          "holds zero)", lambda m: m["layerdrop_vs_best_other_ci_low"] > 0,
          ("layerdrop_cider", "int8_cider", "nf4_cider", "svd_plain_cider", "svd_aware_cider", "best_other_method",
           *ci_keys("layerdrop_vs_best_other")),
          interval=ci_keys("layerdrop_vs_best_other")[1:]),
)
