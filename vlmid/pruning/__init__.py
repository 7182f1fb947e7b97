"""Unstructured pruning of vision-language models, with and without the intrinsic-dimension prior.

- ``scores``      magnitude |w|, gradient (Taylor) |w g|, PLATON (EMA sensitivity x uncertainty),
                  Wanda |w| x input-feature norm (forward hooks on the Linears),
                  the ID prior (score x ID of the weight's nn.Linear; the IDs: ``vlmid.id.load_linear_ids``)
- ``masks``       what may be pruned, ONE global threshold (memory-aware k-th value), masks that
                  stay applied through optimiser steps, the sparsity actually reached; Wanda's
                  row-by-row masks (the ID prior through each matrix's budget)
- ``schedule``    PLATON's cubic schedule of the kept fraction
- ``layer_score`` Score_l = ID_l / Comp_l + lambda * Utility_l -> per-layer ("asymmetric") sparsities
- ``prunability`` each unit's quality drop when it alone is pruned by magnitude (the central claim's y axis)
- ``controls``    the ID prior's controls: shuffled, inverse and random multipliers, the prior's tower split alone
- ``allocation``  each layer's sparsity from its ID at a fixed budget (as OWL allocates by outliers), or
                  uniform; then pruned within the layer by the base score (``PruneConfig(allocation="id")``)
- ``finetune``    iterative pruning during fine-tuning, evaluated at checkpoint sparsities; many runs at
                  once, one per CPU core (``prune_captioners``)

    from vlmid.pruning import PruneConfig, prune_finetune, sparsity_report
    run = prune_finetune(model, loss_fn, batches, PruneConfig(method="platon", id_prior=True), ids=ids)
"""
from .allocation import ALLOCATIONS, allocation_for, id_allocation, uniform_allocation
from .controls import CONTROLS, control_ids, tower_matched_masks, tower_split
from .prunability import unit_prunability
from .finetune import (METHODS, PruneConfig, PruneJob, PruneRun, config_dict, mask_rule, method_label, per_layer_table,
                       prune_captioner, prune_captioners, prune_finetune)
from .layer_score import (allocate_sparsity, captioner_cider, fast_cider, layer_allocation, layer_scores, layer_units, layer_utility,
                          module_sparsities, unit_sizes)
from .masks import (GROUPS, Masks, SparsityReport, global_kth_value, global_masks, layerwise_masks,
                    prunable_linears, prunable_weights, rowwise_masks, sparsity_report,
                    wanda_masks)
from .schedule import cubic_keep_ratio, first_step_below
from .scores import (MagnitudeScorer, PlatonScorer, TaylorScorer, WandaScorer, apply_id_prior, normalised_ids, gradient_score,
                     magnitude_score, make_scorer, platon_score, platon_update, taylor_score, wanda_score)
from ..id.profiles import load_linear_ids  # notebook 01's per-Linear IDs: owned by vlmid.id, re-exported here

__all__ = [
    "ALLOCATIONS", "allocation_for", "id_allocation", "uniform_allocation",
    "CONTROLS", "control_ids", "tower_matched_masks", "tower_split", "unit_prunability",
    "METHODS", "PruneConfig", "PruneJob", "PruneRun", "config_dict", "mask_rule", "method_label", "per_layer_table",
    "prune_captioner",
    "prune_captioners", "prune_finetune",
    "allocate_sparsity", "captioner_cider", "fast_cider", "layer_allocation", "layer_scores", "layer_units", "layer_utility", "module_sparsities",
    "unit_sizes",
    "GROUPS", "Masks", "SparsityReport", "global_kth_value", "global_masks", "layerwise_masks",
    "prunable_linears", "prunable_weights", "rowwise_masks", "sparsity_report",
    "wanda_masks",
    "cubic_keep_ratio", "first_step_below",
    "MagnitudeScorer", "PlatonScorer", "TaylorScorer", "WandaScorer", "apply_id_prior", "normalised_ids", "gradient_score",
    "load_linear_ids", "magnitude_score", "make_scorer", "platon_score", "platon_update", "taylor_score",
    "wanda_score",
]
