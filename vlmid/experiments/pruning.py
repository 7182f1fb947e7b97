"""Notebook 02: pruning BLIP for captioning with and without the ID prior.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

from ..verdict import CHANCE_10_CLASSES, Claim, ci, ci_keys

NUMBER = "02"
KEYS: tuple[str, ...] = ('dense_cider', 'best_method_at_40', 'runner_up_at_40', 'best_cider_retained_at_40', 'best_vs_98pct_dense_at_40', 'best_vs_98pct_dense_at_40_ci_low', 'best_vs_98pct_dense_at_40_ci_high', 'best_margin_at_40', 'best_margin_at_40_ci_low', 'best_margin_at_40_ci_high', 'id_prior_gain_at_40', 'id_prior_gain_at_40_ci_low', 'id_prior_gain_at_40_ci_high', 'id_prior_gain_at_40_magnitude', 'id_prior_gain_at_40_magnitude_ci_low', 'id_prior_gain_at_40_magnitude_ci_high', 'id_prior_gain_at_40_gradient', 'id_prior_gain_at_40_gradient_ci_low', 'id_prior_gain_at_40_gradient_ci_high', 'id_prior_gain_at_40_platon', 'id_prior_gain_at_40_platon_ci_low', 'id_prior_gain_at_40_platon_ci_high', 'id_prior_gain_at_40_wanda', 'id_prior_gain_at_40_wanda_ci_low', 'id_prior_gain_at_40_wanda_ci_high', 'id_prior_tower_normalised_vs_raw_at_40', 'id_prior_tower_normalised_vs_raw_at_40_ci_low', 'id_prior_tower_normalised_vs_raw_at_40_ci_high', 'modality_gap_at_40', 'modality_gap_at_40_ci_low', 'modality_gap_at_40_ci_high', 'id_prior_mean_normalised_masks_differ', 'n_test_for_prior_ci_0_03', 'wanda_cider_at_40', 'wanda_id_cider_at_40', 'vision_only_cider_at_40', 'language_only_cider_at_40', 'spice_available', 'dense_finetuned_cider', 'dense_garment_f1', 'dense_binding_acc', 'best_garment_f1_at_40', 'n_test', 'n_seeds_at_40', 'wall_seconds')

CLAIMS = (
    Claim("02", "claim", "At 40 % sparsity pruning keeps nearly all of dense CIDEr (the study: -1.9 of ~133)",
          "ID-pruning study; docs/methods.md §2",
          "{best_method_at_40}: {best_cider_retained_at_40:.1%} of dense CIDEr-D {dense_cider:.3f}; CIDEr-D minus 98 % "
          "of dense: " + ci("best_vs_98pct_dense_at_40") + "; ahead of the runner-up {runner_up_at_40} by "
          + ci("best_margin_at_40") + " ({n_test} test scenes, {n_seeds_at_40} seeds)",
          "BLIP-base on COCO: -1.9 CIDEr at 40 % (98.6 % kept; docs/methods.md §2); "
          "UPop 2x structured: SPICE 23.8 -> 23.3 (docs/methods.md §4)",
          "the best method's CIDEr-D minus 98 % of dense is above zero (95 % interval; undecided when it holds zero)",
          lambda m: m["best_vs_98pct_dense_at_40_ci_low"] > 0,
          ("best_method_at_40", "best_cider_retained_at_40", "dense_cider", "runner_up_at_40", "n_test",
           "n_seeds_at_40", *ci_keys("best_vs_98pct_dense_at_40"), *ci_keys("best_margin_at_40")),
          interval=ci_keys("best_vs_98pct_dense_at_40")[1:]),
    Claim("02", "claim", "ID-aware pruning beats plain magnitude, gradient and PLATON scores",
          "ID-pruning study; docs/methods.md §2",
          "CIDEr-D change from the ID prior at 40 %, mean of the three scores: " + ci("id_prior_gain_at_40")
          + "; magnitude " + ci("id_prior_gain_at_40_magnitude") + ", gradient " + ci("id_prior_gain_at_40_gradient")
          + ", PLATON " + ci("id_prior_gain_at_40_platon") + "; Wanda (not in the study) " + ci("id_prior_gain_at_40_wanda"),
          "", "the mean change over magnitude, gradient and PLATON is above zero (95 % interval over test scenes "
          "and seeds; undecided when it holds zero)",
          lambda m: m["id_prior_gain_at_40_ci_low"] > 0,
          (*ci_keys("id_prior_gain_at_40"), *ci_keys("id_prior_gain_at_40_magnitude"),
           *ci_keys("id_prior_gain_at_40_gradient"), *ci_keys("id_prior_gain_at_40_platon"),
           *ci_keys("id_prior_gain_at_40_wanda")),
          interval=ci_keys("id_prior_gain_at_40")[1:]),
    Claim("02", "claim", "Language layers tolerate more pruning than visual layers",
          "ID-pruning study and notes; docs/methods.md §2",
          "CIDEr-D at 40 % of one tower: vision-only pruned {vision_only_cider_at_40:.3f}, language-only pruned "
          "{language_only_cider_at_40:.3f}; language minus vision " + ci("modality_gap_at_40"),
          "", "language-only minus vision-only CIDEr-D is above zero (95 % interval; undecided when it holds zero)",
          lambda m: m["modality_gap_at_40_ci_low"] > 0,
          ("vision_only_cider_at_40", "language_only_cider_at_40", *ci_keys("modality_gap_at_40")),
          interval=ci_keys("modality_gap_at_40")[1:]),
    Claim("02", "claim", "BLIP-base on COCO Karpathy loses only 1.9 CIDEr at 40 % sparsity (absolute)",
        "ID-pruning study; docs/methods.md §2",
        "dense CIDEr-D {dense_cider:.3f}, {best_cider_retained_at_40:.1%} kept",
        "CIDEr 133.3 -> about 131.4 (docs/methods.md §2, §7)",
        "paper profile only: loss <= 2.9 CIDEr points (1.9 + 1 point tolerance, x100 scale)",
        lambda m: 100 * m["dense_cider"] * (1 - m["best_cider_retained_at_40"]) <= 2.9,
        ("dense_cider", "best_cider_retained_at_40"), paper_only=True),
)
