"""Every claim of the study and every target of this repository, defined once.

A :class:`Claim` holds what is claimed and where it comes from (a source document of
``docs/sources.md`` or a section of ``docs/methods.md``), the metrics keys of
``results/<notebook>/metrics.json`` it reads, how the measured value is written, the literature's
value where one exists, and the rule that decides it, in words and in code. The report
(:mod:`vlmid.report`, ``results/REPORT.md`` and the README table) and each notebook's "What we
found" (:func:`show`) call the same :func:`verdict`, so a claim can never be decided twice by
different rules.

Comparisons carry their uncertainty: a claim with an ``interval`` names the metrics keys of the
95 % interval of its effect (:mod:`vlmid.uncertainty`: paired bootstrap over test items, seeds
resampled too where seeds vary). When that interval includes zero the verdict is **undecided**,
whatever the point estimate says.

    verdict(claim, metrics)          # (measured text, verdict word)
    table("02", metrics)             # the claims of notebook 02 as a DataFrame
    show("02", metrics)              # ... displayed as a markdown table (what "What we found" shows)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

CHANCE_10_CLASSES = 0.10

# verdict words: a claim of the study is reproduced, not reproduced or undecided (its interval holds
# zero); a target of this repository is met or missed
REPRODUCED, NOT_REPRODUCED, UNDECIDED = "reproduced", "not reproduced", "undecided"
MET, MISSED = "target met", "target missed"
NOT_OFFLINE, NOT_RUN, NOT_MEASURED = "not testable offline", "not run yet", "not measured"
ORDER = (REPRODUCED, NOT_REPRODUCED, UNDECIDED, MET, MISSED, NOT_OFFLINE, NOT_MEASURED, NOT_RUN)
# the marker that starts a notebook's claims table (tests find the verdicts printed in executed notebooks by it)
TABLE_MARKER = "<!-- vlmid claims {number} -->"


@dataclass(frozen=True)
class Claim:
    """One claim (or target), how it is measured and how it is decided."""
    notebook: str                 # "01"
    kind: str                     # "claim" of the study, or "target" of this repository
    statement: str                # what is claimed, in words
    source: str                   # where the claim comes from (docs/sources.md, a docs/methods.md section)
    measured: str                 # template over metrics.json: "{key:format}" (keys may contain dots)
    anchor: str                   # the literature's value (docs/methods.md section), "" when none
    rule: str                     # the verdict rule in words
    test: Callable[[dict], bool | None]  # the verdict rule in code, on the metrics dict (None: undecided)
    needs: tuple[str, ...]        # metrics keys the template and rule read
    paper_only: bool = False      # only the paper profile (real checkpoints, COCO...) can test it
    if_null: tuple[str, bool] | None = None  # (measured text, verdict) when the notebook wrote null
    interval: tuple[str, str] | None = None  # metrics keys (low, high) of the effect's 95 % interval


def _twonn_target(m: dict) -> bool | None:
    """Notebook 01's benchmark target: the same estimate as skdim's, and >= 2x faster beyond the timing noise."""
    if abs(m["twonn_rel_diff_vs_skdim"]) > 0.01 or m["twonn_speedup_ci_high"] < 2:
        return False
    return True if m["twonn_speedup_ci_low"] >= 2 else None


def _ci(key: str) -> str:
    """The measured text of an effect with its interval: ``+0.012 [-0.010, +0.034]``."""
    return f"{{{key}:+.3f}} [{{{key}_ci_low:+.3f}}, {{{key}_ci_high:+.3f}}]"


def _ci_keys(key: str) -> tuple[str, str, str]:
    return key, f"{key}_ci_low", f"{key}_ci_high"


def _speedup_from_flops(ratio: float) -> float:
    """FLOPs reduction as a factor > 1, whichever way the notebook wrote the ratio."""
    return 1.0 / ratio if 0 < ratio < 1 else ratio


# The claims and anchors are facts of the literature and the study's source documents
# (docs/methods.md, docs/sources.md), not our results.
CLAIMS = (
    # -- 00: the models every other notebook studies: quality gates a shortcut cannot pass ---------
    Claim("00", "target", "The tiny BLIP names the garments it sees: on the 1000 test scenes (beam 3, max 20 "
        "tokens) garment F1 >= 0.80, colour-garment binding >= 0.75, count accuracy >= 0.95",
        "quality gate of this repository",
        "garment F1 {blip_garment_f1:.3f}, binding {blip_binding_acc:.3f}, count {blip_count_acc:.3f}, "
        "all right in {blip_scene_exact:.1%} of scenes; CIDEr-D {blip_cider:.3f} (constant caption "
        "{baseline_constant_cider:.3f}; true colours and count with one garment: {shortcut_oracle_cider:.3f}, "
        "garment F1 {shortcut_oracle_garment_f1:.3f})",
        "BLIP-base on COCO Karpathy test: CIDEr 1.333, BLEU-4 0.397 (other data, for scale only)",
        "garment F1 >= 0.80 and binding >= 0.75 and count accuracy >= 0.95",
        lambda m: m["blip_garment_f1"] >= 0.80 and m["blip_binding_acc"] >= 0.75 and m["blip_count_acc"] >= 0.95,
        ("blip_garment_f1", "blip_binding_acc", "blip_count_acc", "blip_scene_exact", "blip_cider",
         "baseline_constant_cider", "shortcut_oracle_cider", "shortcut_oracle_garment_f1")),
    Claim("00", "target", "The tiny CLIP classifies garments zero-shot: top-1 >= 82 % on all 10,000 Fashion-MNIST "
        "test photos (chance 10 %)", "quality gate of this repository", "{clip_zeroshot_top1:.1%}",
        "CLIP ViT-B/16 zero-shot CIFAR-10: 88-91 %", "top-1 >= 0.82",
        lambda m: m["clip_zeroshot_top1"] >= 0.82, ("clip_zeroshot_top1",)),
    Claim("00", "target", "The vision towers encode the garment, not only its colour: item-class linear probe on "
        "the CLS >= 80 % (BLIP) and >= 82 % (CLIP) (fitted on validation items, scored on test items)",
        "quality gate of this repository",
        "item class: BLIP {probe_blip_class:.1%}, CLIP {probe_clip_class:.1%}; "
        "colour: BLIP {probe_blip_colour:.1%}, CLIP {probe_clip_colour:.1%}",
        "tiny towers trained on captions alone: colour 100 %, shape 24-38 %",
        "probe_blip_class >= 0.80 and probe_clip_class >= 0.82",
        lambda m: m["probe_blip_class"] >= 0.80 and m["probe_clip_class"] >= 0.82,
        ("probe_blip_class", "probe_clip_class", "probe_blip_colour", "probe_clip_colour")),
    Claim("00", "target", "Both models train from nothing in <= 60 minutes on 2 CPU cores", "quality gate of this repository",
        "{build_seconds:.0f} s wall for the shipped models' build; BLIP {blip_params:,} and CLIP {clip_params:,} "
        "parameters", "", "build_seconds <= 3600", lambda m: m["build_seconds"] <= 3600,
        ("build_seconds", "blip_params", "clip_params")),
    # -- 01: intrinsic dimension ------------------------------------------------------------------
    Claim("01", "claim", "Visual layers have a higher ID than language layers; fusion layers lie in between",
        "ID-pruning study and notes; docs/methods.md §1",
        "mean ID: vision {id_vision_mean:.1f}, fusion {id_fusion_mean:.1f}, language {id_language_mean:.1f}",
        "BLIP: visual 20-450, language 5-30, fusion in between (ID-pruning study; docs/methods.md §1)",
        "mean ID vision > fusion > language",
        lambda m: m["id_vision_mean"] > m["id_fusion_mean"] > m["id_language_mean"],
        ("id_vision_mean", "id_fusion_mean", "id_language_mean")),
    Claim("01", "claim", "ID ranges: visual layers 20-450, language layers 5-30",
        "ID-pruning study; docs/methods.md §1", "max ID: vision {id_vision_max:.1f}, language {id_language_max:.1f}",
        "visual 20-450, language 5-30 (BLIP, ID-pruning study; docs/methods.md §1)",
        "20 <= max vision ID <= 450 and 5 <= max language ID <= 30",
        lambda m: 20 <= m["id_vision_max"] <= 450 and 5 <= m["id_language_max"] <= 30,
        ("id_vision_max", "id_language_max")),
    Claim("01", "claim", "Visual layers' ID rises then falls (hunchback); language layers' ID is flat",
        "ID-pruning study; docs/methods.md §1",
        "BLIP profile shapes: vision {id_vision_shape}, language {id_language_shape}, fusion {id_fusion_shape}",
        "hunchback in trained networks (Ansuini et al. 2019); expand early, contract mid-depth in large "
        "transformers (Valeriani et al. 2023) (docs/methods.md §1)",
        "vision shape is 'hunchback' and language shape is 'flat' (differences beyond the bootstrap noise)",
        lambda m: m["id_vision_shape"] == "hunchback" and m["id_language_shape"] == "flat",
        ("id_vision_shape", "id_language_shape", "id_fusion_shape")),
    Claim("01", "target", "Our TwoNN equals skdim's within 1 % and is >= 2x faster (5000 x 768)",
        "docs/methods.md §1",
        "relative difference {twonn_rel_diff_vs_skdim:.1e}, speed-up {twonn_speedup_vs_skdim:.2f}x "
        "[{twonn_speedup_ci_low:.2f}, {twonn_speedup_ci_high:.2f}] ({twonn_speedup_ci_coverage:.0%} interval of the median "
        "of the per-round ratios)",
        "measured before on this machine: 16.36 vs 16.36, 1.5-2.4x faster (2000 points; docs/methods.md §1)",
        "relative difference <= 1 % and the speed-up's interval above 2 (below 2: missed; holding 2: undecided)",
        _twonn_target,
        ("twonn_rel_diff_vs_skdim", "twonn_speedup_vs_skdim", "twonn_speedup_ci_low", "twonn_speedup_ci_high",
         "twonn_speedup_ci_coverage")),
    # -- 02: ID-guided pruning --------------------------------------------------------------------
    Claim("02", "claim", "At 40 % sparsity pruning keeps nearly all of dense CIDEr (the study: -1.9 of ~133)",
          "ID-pruning study; docs/methods.md §2",
          "{best_method_at_40}: {best_cider_retained_at_40:.1%} of dense CIDEr-D {dense_cider:.3f}; CIDEr-D minus 98 % "
          "of dense: " + _ci("best_vs_98pct_dense_at_40") + "; ahead of the runner-up {runner_up_at_40} by "
          + _ci("best_margin_at_40") + " ({n_test} test scenes, {n_seeds_at_40} seeds)",
          "BLIP-base on COCO: -1.9 CIDEr at 40 % (98.6 % kept; docs/methods.md §2); "
          "UPop 2x structured: SPICE 23.8 -> 23.3 (docs/methods.md §4)",
          "the best method's CIDEr-D minus 98 % of dense is above zero (95 % interval; undecided when it holds zero)",
          lambda m: m["best_vs_98pct_dense_at_40_ci_low"] > 0,
          ("best_method_at_40", "best_cider_retained_at_40", "dense_cider", "runner_up_at_40", "n_test",
           "n_seeds_at_40", *_ci_keys("best_vs_98pct_dense_at_40"), *_ci_keys("best_margin_at_40")),
          interval=_ci_keys("best_vs_98pct_dense_at_40")[1:]),
    Claim("02", "claim", "ID-aware pruning beats plain magnitude, gradient and PLATON scores",
          "ID-pruning study; docs/methods.md §2",
          "CIDEr-D change from the ID prior at 40 %, mean of the three scores: " + _ci("id_prior_gain_at_40")
          + "; magnitude " + _ci("id_prior_gain_at_40_magnitude") + ", gradient " + _ci("id_prior_gain_at_40_gradient")
          + ", PLATON " + _ci("id_prior_gain_at_40_platon") + "; Wanda (not in the study) " + _ci("id_prior_gain_at_40_wanda"),
          "", "the mean change over magnitude, gradient and PLATON is above zero (95 % interval over test scenes "
          "and seeds; undecided when it holds zero)",
          lambda m: m["id_prior_gain_at_40_ci_low"] > 0,
          (*_ci_keys("id_prior_gain_at_40"), *_ci_keys("id_prior_gain_at_40_magnitude"),
           *_ci_keys("id_prior_gain_at_40_gradient"), *_ci_keys("id_prior_gain_at_40_platon"),
           *_ci_keys("id_prior_gain_at_40_wanda")),
          interval=_ci_keys("id_prior_gain_at_40")[1:]),
    Claim("02", "claim", "Language layers tolerate more pruning than visual layers",
          "ID-pruning study and notes; docs/methods.md §2",
          "CIDEr-D at 40 % of one tower: vision-only pruned {vision_only_cider_at_40:.3f}, language-only pruned "
          "{language_only_cider_at_40:.3f}; language minus vision " + _ci("modality_gap_at_40"),
          "", "language-only minus vision-only CIDEr-D is above zero (95 % interval; undecided when it holds zero)",
          lambda m: m["modality_gap_at_40_ci_low"] > 0,
          ("vision_only_cider_at_40", "language_only_cider_at_40", *_ci_keys("modality_gap_at_40")),
          interval=_ci_keys("modality_gap_at_40")[1:]),
    Claim("02", "claim", "BLIP-base on COCO Karpathy loses only 1.9 CIDEr at 40 % sparsity (absolute)",
        "ID-pruning study; docs/methods.md §2",
        "dense CIDEr-D {dense_cider:.3f}, {best_cider_retained_at_40:.1%} kept",
        "CIDEr 133.3 -> about 131.4 (docs/methods.md §2, §7)",
        "paper profile only: loss <= 2.9 CIDEr points (1.9 + 1 point tolerance, x100 scale)",
        lambda m: 100 * m["dense_cider"] * (1 - m["best_cider_retained_at_40"]) <= 2.9,
        ("dense_cider", "best_cider_retained_at_40"), paper_only=True),
    # -- 03: vision-token pruning -----------------------------------------------------------------
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
        + _ci("best_top1_change_within_1pt") + " on {n_eval} images",
        "ToMe off the shelf, ViT-B/16 ImageNet: 1.65x at -2.0 points; EViT DeiT-S keep 0.7: "
        "+50 % throughput at -0.3 points after training (docs/methods.md §5)",
        "throughput ratio >= 1.5 or FLOPs reduction >= 1.5, among variants whose 95 % interval of the top-1 change "
        "lies above -1 point (paired bootstrap over images)",
        lambda m: m["best_speedup_within_1pt"] >= 1.5
        or _speedup_from_flops(m["best_flops_ratio_within_1pt"]) >= 1.5,
        ("best_variant", "best_speedup_within_1pt", "best_flops_variant", "best_flops_ratio_within_1pt", "n_eval",
         *_ci_keys("best_top1_change_within_1pt")),
        if_null=("no variant stays within 1 point of the baseline beyond the noise", False)),
    # -- 04: the Flickr8k-style comparison --------------------------------------------------------
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
    # -- 05: quantization and low rank ------------------------------------------------------------
    Claim("05", "claim", "Quantization saves the most memory: 8-bit about 29 %, 4-bit about 18 % of the fp32 size",
        "compression slides; docs/methods.md §6",
        "int8 {int8_bytes_ratio:.1%}, nf4 {nf4_bytes_ratio:.1%} of the quantized layers' fp32 bytes",
        "Qwen2-VL-2B: 6.17 GB -> 1.77 GB (8-bit), 1.12 GB (4-bit) (compression slides)",
        "int8 <= 30 % and nf4 <= 20 %", lambda m: m["int8_bytes_ratio"] <= 0.30 and m["nf4_bytes_ratio"] <= 0.20,
        ("int8_bytes_ratio", "nf4_bytes_ratio")),
    Claim("05", "claim", "Quantization keeps the quality (accuracy similar or slightly lower)", "compression slides",
          "CIDEr-D fp32 {fp32_cider:.3f}, int8 {int8_cider:.3f}, nf4 {nf4_cider:.3f}; int8 minus 95 % of fp32: "
          + _ci("int8_vs_95pct_fp32"), "",
          "int8 CIDEr-D minus 95 % of fp32's is above zero (paired bootstrap 95 % over test scenes; undecided when it "
          "holds zero)", lambda m: m["int8_vs_95pct_fp32_ci_low"] > 0,
          ("fp32_cider", "int8_cider", "nf4_cider", *_ci_keys("int8_vs_95pct_fp32")),
          interval=_ci_keys("int8_vs_95pct_fp32")[1:]),
    Claim("05", "claim", "Activation-aware SVD keeps more quality than plain SVD at the same size",
        "docs/methods.md §6 (ASVD, SVD-LLM)",
        "CIDEr-D at the same mid size: plain {svd_plain_cider:.3f}, activation-aware {svd_aware_cider:.3f}; "
        "of {svd_sizes:.0f} sizes, activation-aware ahead beyond the noise at {svd_aware_wins:.0f}, behind at "
        "{svd_aware_losses:.0f}; lower reference NLL at {svd_aware_nll_wins:.0f}; at the mid size aware minus plain "
        + _ci("svd_aware_minus_plain"),
        "plain SVD collapses at high compression, activation-aware variants hold up (docs/methods.md §6)",
        "activation-aware never behind plain SVD and ahead at one size or more (CIDEr-D, paired bootstrap 95 % at each "
        "size); undecided when every size's interval holds zero",
        lambda m: (False if m["svd_aware_losses"] > 0 else True if m["svd_aware_wins"] >= 1 else None),
        ("svd_plain_cider", "svd_aware_cider", "svd_aware_wins", "svd_aware_losses", "svd_aware_nll_wins",
         "svd_sizes", *_ci_keys("svd_aware_minus_plain"))),
    Claim("05", "claim", "Dropping half the decoder layers (then fine-tuning) keeps the most quality "
          "of the compression methods", "compression slides",
          "CIDEr-D layer drop {layerdrop_cider:.3f} vs int8 {int8_cider:.3f}, nf4 {nf4_cider:.3f}, "
          "SVD {svd_plain_cider:.3f} / {svd_aware_cider:.3f}; layer drop minus the best other ({best_other_method}): "
          + _ci("layerdrop_vs_best_other"), "",
          "layer drop minus the best other method's CIDEr-D is above zero (paired bootstrap 95 %; undecided when it "
          "holds zero)", lambda m: m["layerdrop_vs_best_other_ci_low"] > 0,
          ("layerdrop_cider", "int8_cider", "nf4_cider", "svd_plain_cider", "svd_aware_cider", "best_other_method",
           *_ci_keys("layerdrop_vs_best_other")),
          interval=_ci_keys("layerdrop_vs_best_other")[1:]),
)

_FIELD = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")


def fill(template: str, metrics: dict) -> str:
    """``template`` with each ``{key:format}`` replaced from ``metrics`` (keys may contain dots)."""
    return _FIELD.sub(lambda m: format(metrics[m.group(1)], m.group(2) or ""), template)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


_FIELD = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")


def fill(template: str, metrics: dict) -> str:
    """``template`` with each ``{key:format}`` replaced from ``metrics`` (keys may contain dots)."""
    return _FIELD.sub(lambda m: format(metrics[m.group(1)], m.group(2) or ""), template)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _word(claim: Claim, ok: bool) -> str:
    if claim.kind == "target":
        return MET if ok else MISSED
    return REPRODUCED if ok else NOT_REPRODUCED


def verdict(claim: Claim, metrics: dict | None) -> tuple[str, str]:
    """(measured text, verdict word) of one claim on one notebook's metrics (None: not run)."""
    if metrics is None:
        return "", NOT_RUN
    needs = claim.needs + (claim.interval or ())
    absent = [k for k in needs if _missing(metrics.get(k))]
    if absent and claim.if_null is not None and all(k in metrics for k in absent):
        text, ok = claim.if_null  # the notebook ran and found nothing to report, e.g. no variant qualifies
        return text, _word(claim, ok)
    if absent:
        return f"missing in metrics.json: {', '.join(absent)}", NOT_MEASURED
    try:
        measured = fill(claim.measured, metrics)
        decided = claim.test(metrics)  # True / False, or None: the evidence does not decide
        ok = None if decided is None else bool(decided)
        low, high = (float(metrics[k]) for k in claim.interval) if claim.interval else (math.nan, math.nan)
    except (TypeError, ValueError) as exc:  # e.g. a string where a number belongs
        return f"unreadable value in metrics.json ({exc})", NOT_MEASURED
    if claim.paper_only and metrics.get("profile") != "paper":
        return measured + f" ({metrics.get('profile', '?')} profile)", NOT_OFFLINE
    if ok is None or (claim.interval and low <= 0 <= high):
        return measured, UNDECIDED  # the 95 % interval of the effect includes zero: the data cannot decide
    return measured, _word(claim, ok)


def of_notebook(number: str) -> list[Claim]:
    """The claims and targets notebook ``number`` tests, in report order."""
    return [c for c in CLAIMS if c.notebook == number]


def table(number: str, metrics: dict | None):
    """The claims and targets of one notebook with their measured values and verdicts (pandas)."""
    import pandas as pd

    rows = []
    for c in of_notebook(number):
        measured, word = verdict(c, metrics)
        rows.append({"kind": c.kind, "claim": c.statement, "measured": measured, "rule": c.rule, "verdict": word})
    return pd.DataFrame(rows, columns=["kind", "claim", "measured", "rule", "verdict"])


def table_cell(text: Any) -> str:
    """``text`` safe inside a markdown table cell (pipes escaped, line breaks as spaces)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(number: str, metrics: dict | None) -> str:
    """:func:`table` as a markdown table that starts with :data:`TABLE_MARKER` (verdicts in bold)."""
    lines = [TABLE_MARKER.format(number=number), "",
             "| | Claim | Measured here | Rule | Verdict |", "|---|---|---|---|---|"]
    for c in of_notebook(number):
        measured, word = verdict(c, metrics)
        lines.append("| " + " | ".join(table_cell(x) for x in ("target" if c.kind == "target" else "claim", c.statement,
                                                         measured or "-", c.rule, f"**{word}**")) + " |")
    return "\n".join(lines) + "\n"


def verdicts_in(text: str, number: str) -> list[str]:
    """The verdict words of notebook ``number``'s claims table inside ``text`` (e.g. an executed
    notebook's output), in order; [] when the table is not there."""
    marker = TABLE_MARKER.format(number=number)
    if marker not in text:
        return []
    words = []
    for line in text.split(marker, 1)[1].splitlines():
        if line.startswith("| ") and line.rstrip().endswith("** |"):
            words.append(line.rstrip()[:-4].rsplit("**", 1)[1])
        elif words and not line.startswith("|"):
            break
    return words


def show(number: str, metrics: dict | None) -> None:
    """Display notebook ``number``'s claims table (in Jupyter as markdown, else as text)."""
    text = markdown(number, metrics)
    try:
        from IPython.display import Markdown, display
    except ImportError:  # plain Python: print it
        print(text)
        return
    display(Markdown(text))
