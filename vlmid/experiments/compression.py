"""Notebook 05: quantization, layer dropping and low-rank factorization on one model.

The methods, the loop that crosses them with the benchmarks and the functions that read its table are
:mod:`vlmid.compress`'s (``bench.compare``, ``bench.svd_variants``, ``bench.paired_svd_table``). Here are
the steps the verdicts rest on: :func:`per_image_scores` (the per-image CIDEr-D of the methods the claims
compare, and of the layer-drop fine-tune at its check step), :func:`latency_ratio` (the timing rounds as
ratios to fp32, with an interval) and :func:`headline`, which turns the notebook's tables into its
``metrics.json``, each comparison with its 95 % interval (:mod:`vlmid.uncertainty`).

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

from typing import Callable

from ..verdict import Claim, ci, ci_keys

NUMBER = "05"

# the compression slides' whole-model sizes of Qwen2-VL-2B: 6.17 GB, 1.77 GB at 8 bits, 1.12 GB at 4 bits
SLIDES_FRACTION = {"int8": 1.77 / 6.17, "nf4": 1.12 / 6.17}     # 28.7 % and 18.2 %
# how far a measured whole-model fraction may lie from the slides' and still count as the same: under half the
# 10.5-point gap between the two formats' fractions, so that the two bands do not overlap and a fraction inside
# one is nearer its own format than the other. What stays unquantized (embeddings, norms, the head) is a
# different share of a 2-billion and a 2-million parameter model; this much room lets that differ, no more.
SIZE_TOLERANCE = 0.05
# "not faster": no speed-up of 5 % or more beyond the timing noise
SPEEDUP_MARGIN = 0.05
LEVEL = 0.95
LAYER_DROP = "layer drop + ft"


def rivals(mid_energy: float) -> tuple[str, ...]:
    """The compressions the layer-drop claim is compared with (low rank at the reported size)."""
    mid = f"{mid_energy:.2f}"
    return ("bnb int8", "bnb nf4", f"svd plain {mid}", f"svd whiten {mid}")


def checkpoint_name(step: int) -> str:
    """The column of :func:`per_image_scores` holding the layer-drop fine-tune after ``step`` steps."""
    return f"{LAYER_DROP} (step {step})"


def per_image_scores(benchmark, adapters: dict, base, mid_energy: float, check_step: int | None = None):
    """Per-image CIDEr-D (cached captions: nothing is decoded again) of fp32, int8, the rivals of layer dropping
    and layer dropping + fine-tune, one column each, one row per test image; with ``check_step``, also the
    fine-tuned layer drop as it was after that many steps (:func:`vlmid.compress.bench.from_checkpoint`:
    its captions are decoded here). ``adapters``: ``bench.compare(..., return_adapters=True)``'s; ``base``: the
    adapter the methods started from (it keeps its model on a GPU too)."""
    import pandas as pd

    from ..compress.bench import from_checkpoint

    names = [m for m in ("fp32", *rivals(mid_energy), LAYER_DROP) if m in adapters]
    cols = {m: benchmark.per_image_cider(adapters[m]) for m in names}
    if check_step:
        early = from_checkpoint(base, adapters[LAYER_DROP], check_step)
        cols[checkpoint_name(check_step)] = benchmark.per_image_cider(early)
    return pd.DataFrame(cols, index=[e.image_id for e in benchmark.examples])


def latency_ratio(rounds, method: str, reference: str = "fp32", level: float = LEVEL) -> dict:
    """``method``'s time over ``reference``'s, round by round (``bench.latency_rounds``' table: within a round
    the two ran moments apart, so each ratio sees the same load): the median ratio, the order-statistics
    interval of that median (:func:`vlmid.uncertainty.median_interval`) and its coverage (below ``level``
    when there are too few rounds: 6 give 97 %)."""
    import numpy as np

    from ..uncertainty import median_interval

    t = rounds.pivot(index="round", columns="method", values="latency_s")
    ratios = (t[method] / t[reference]).to_numpy()
    low, high, coverage = median_interval(ratios, level)
    return {"ratio": float(np.median(ratios)), "low": low, "high": high, "coverage": coverage}


def _row(table, name: str):
    return table[table["method"] == name].iloc[0]


def headline(caption_table, clip_table, paired, svd_rows, per_image, rounds, mid_energy: float,
             finetune_steps: int, check_step: int | None, qwen2vl_ran: bool = False, seed: int = 0) -> dict:
    """Notebook 05's ``metrics.json``: exactly :data:`KEYS` (None where a method did not run: int8 dynamic
    on a GPU, the grounded scores on COCO, the convergence check without a fine-tune).

    ``caption_table`` / ``clip_table``: ``bench.compare``'s; ``paired``: ``bench.paired_svd_table``;
    ``svd_rows``: ``bench.svd_variants``; ``per_image``: :func:`per_image_scores`; ``rounds``:
    ``bench.latency_rounds(caption_table)``; ``mid_energy``: the low-rank size reported; ``finetune_steps`` /
    ``check_step``: the layer-drop fine-tune's length and the step of its kept checkpoint."""
    from ..uncertainty import paired_effect

    row = lambda name, table=caption_table: _row(table, name)  # noqa: E731
    fp, mid = row("fp32"), f"{mid_energy:.2f}"
    whiten = paired[paired.variant == "whiten"]
    h = {
        "int8_bytes_ratio": row("bnb int8")["layers_ratio"], "nf4_bytes_ratio": row("bnb nf4")["layers_ratio"],
        "int8_size_ratio": row("bnb int8")["size_ratio"], "nf4_size_ratio": row("bnb nf4")["size_ratio"],
        "int8_cider": row("bnb int8")["CIDEr"], "nf4_cider": row("bnb nf4")["CIDEr"], "fp32_cider": fp["CIDEr"],
        "svd_plain_cider": row(f"svd plain {mid}")["CIDEr"], "svd_aware_cider": row(f"svd whiten {mid}")["CIDEr"],
        "svd_asvd_cider": row(f"svd asvd {mid}")["CIDEr"], "svd_mid_energy": mid_energy,
        "svd_mid_size_ratio": row(f"svd plain {mid}")["size_ratio"],
        "svd_plain_nll": row(f"svd plain {mid}")["nll"], "svd_aware_nll": row(f"svd whiten {mid}")["nll"],
        # at how many sizes whitening (SVD-LLM) is ahead of / behind plain SVD in CIDEr-D beyond the noise
        # (paired bootstrap, 95 %), and at how many its reference NLL is lower
        "svd_aware_wins": int((whiten.verdict == "ahead").sum()),
        "svd_aware_losses": int((whiten.verdict == "behind").sum()),
        "svd_aware_nll_wins": int((whiten.nll_aware_minus_plain < 0).sum()),
        "svd_sizes": svd_rows.energy.nunique(),
        "layerdrop_cider": row(LAYER_DROP)["CIDEr"], "layerdrop_noft_cider": row("layer drop")["CIDEr"],
        "fp32_ft_cider": row("fp32 + ft (control)")["CIDEr"],
        "fp32_semantic": fp["semantic"], "fp32_nll": fp["nll"], "fp32_latency_s": fp["latency_s"],
        "fp32_zeroshot": row("fp32", clip_table)["zeroshot_top1"],
        "nf4_zeroshot": row("bnb nf4", clip_table)["zeroshot_top1"],
    }
    # the smallest method that does not quantize (low rank at any size, layer dropping): "quantization saves the most"
    others = caption_table[caption_table.method.isin(svd_rows.method) | caption_table.method.str.startswith("layer drop")]
    smallest = others.loc[others["size_ratio"].idxmin()]
    h |= {"smallest_other_size_ratio": smallest["size_ratio"], "smallest_other_method": smallest["method"]}
    dynamic = (caption_table["method"] == "int8 dynamic").any()   # torch.ao: CPU only
    h |= {"int8_dynamic_bytes_ratio": row("int8 dynamic")["layers_ratio"] if dynamic else None,
          "int8_dynamic_cider": row("int8 dynamic")["CIDEr"] if dynamic else None,
          "int8_dynamic_latency_ratio": row("int8 dynamic")["latency_s"] / fp["latency_s"] if dynamic else None}
    grounded = "garment_f1" in caption_table   # tiny profile only: garments read back from the captions
    h |= {f"{k}_garment_f1": row(m)["garment_f1"] if grounded else None
          for k, m in (("fp32", "fp32"), ("int8", "bnb int8"), ("nf4", "bnb nf4"))}
    h["fp32_binding_acc"] = fp["binding_acc"] if grounded else None
    # speed: each method's time over fp32's, round by round, with the interval of the median ratio
    for key, method in (("int8", "bnb int8"), ("nf4", "bnb nf4"), ("svd", f"svd plain {mid}")):
        r = latency_ratio(rounds, method)
        h |= {f"{key}_latency_ratio": r["ratio"], f"{key}_latency_ratio_ci_low": r["low"],
              f"{key}_latency_ratio_ci_high": r["high"]}
    h |= {"latency_rounds": rounds["round"].nunique(), "latency_ci_coverage": r["coverage"]}
    # quality: paired bootstrap over the test images
    h |= paired_effect(per_image["bnb int8"], per_image["fp32"], 0.95, seed=seed).as_dict("int8_vs_95pct_fp32")
    cider = caption_table.set_index("method")["CIDEr"]
    rival = max((m for m in rivals(mid_energy) if m in cider.index), key=lambda m: cider[m])
    h |= paired_effect(per_image[LAYER_DROP], per_image[rival], seed=seed).as_dict("layerdrop_vs_best_other")
    h["best_other_method"] = rival
    at_mid = whiten[whiten.energy.round(2) == round(mid_energy, 2)].iloc[0]
    h |= {"svd_aware_minus_plain": at_mid.CIDEr_aware_minus_plain, "svd_aware_minus_plain_ci_low": at_mid.ci_low,
          "svd_aware_minus_plain_ci_high": at_mid.ci_high}
    # has the layer-drop fine-tune converged? its score at the end against its score at the check step
    h |= {"layerdrop_ft_steps": finetune_steps, "layerdrop_ft_check_step": check_step}
    if check_step:
        early = per_image[checkpoint_name(check_step)]
        h["layerdrop_check_cider"] = early.mean()
        h |= paired_effect(per_image[LAYER_DROP], early, seed=seed).as_dict("layerdrop_ft_late_gain")
    else:
        h |= dict.fromkeys(("layerdrop_check_cider", *ci_keys("layerdrop_ft_late_gain")))
    h["qwen2vl_section"] = "run" if qwen2vl_ran else "not run"
    return {k: h[k] if h[k] is None or isinstance(h[k], str) else float(h[k]) for k in KEYS}


KEYS: tuple[str, ...] = (
    'int8_bytes_ratio', 'nf4_bytes_ratio', 'int8_size_ratio', 'nf4_size_ratio', 'int8_cider', 'nf4_cider',
    'fp32_cider', 'svd_plain_cider', 'svd_aware_cider', 'svd_asvd_cider', 'svd_mid_energy', 'svd_mid_size_ratio',
    'svd_plain_nll', 'svd_aware_nll', 'svd_aware_wins', 'svd_aware_losses', 'svd_aware_nll_wins', 'svd_sizes',
    'layerdrop_cider', 'layerdrop_noft_cider', 'fp32_ft_cider', 'fp32_semantic', 'fp32_nll', 'fp32_latency_s',
    'fp32_zeroshot', 'nf4_zeroshot', 'smallest_other_size_ratio', 'smallest_other_method',
    'int8_dynamic_bytes_ratio', 'int8_dynamic_cider', 'int8_dynamic_latency_ratio',
    'fp32_garment_f1', 'int8_garment_f1', 'nf4_garment_f1', 'fp32_binding_acc',
    *ci_keys('int8_latency_ratio'), *ci_keys('nf4_latency_ratio'), *ci_keys('svd_latency_ratio'),
    'latency_rounds', 'latency_ci_coverage',
    *ci_keys('int8_vs_95pct_fp32'), *ci_keys('layerdrop_vs_best_other'), 'best_other_method',
    *ci_keys('svd_aware_minus_plain'),
    'layerdrop_ft_steps', 'layerdrop_ft_check_step', 'layerdrop_check_cider', *ci_keys('layerdrop_ft_late_gain'),
    'qwen2vl_section')


# ----------------------------------------------------------------------------- the rules
def _near_slides(m: dict) -> bool:
    """Whole-model bytes: each format within SIZE_TOLERANCE of the slides' fraction, and 4-bit smaller than
    every method that does not quantize."""
    return (abs(m["int8_size_ratio"] - SLIDES_FRACTION["int8"]) <= SIZE_TOLERANCE
            and abs(m["nf4_size_ratio"] - SLIDES_FRACTION["nf4"]) <= SIZE_TOLERANCE
            and m["nf4_size_ratio"] < m["smallest_other_size_ratio"])


def not_faster(*keys: str) -> Callable[[dict], bool | None]:
    """The rule "``keys``' methods are not faster than fp32": True when every latency ratio's interval lies above
    1 - SPEEDUP_MARGIN, False when one lies wholly below it (faster beyond the noise), None (undecided)
    otherwise, and when the interval covers less than 95 % (too few timing rounds)."""
    def rule(m: dict) -> bool | None:
        if m["latency_ci_coverage"] < LEVEL:
            return None
        floor = 1 - SPEEDUP_MARGIN
        if any(m[f"{k}_latency_ratio_ci_high"] < floor for k in keys):
            return False
        return True if all(m[f"{k}_latency_ratio_ci_low"] > floor for k in keys) else None
    return rule


def layerdrop_keeps_most(m: dict) -> bool | None:
    """Layer drop + fine-tune ahead of the best other compression beyond the noise, judged only once its
    fine-tune has converged: undecided while the score still moved beyond the noise after the check step."""
    if m["layerdrop_ft_late_gain_ci_low"] > 0 or m["layerdrop_ft_late_gain_ci_high"] < 0:
        return None
    return m["layerdrop_vs_best_other_ci_low"] > 0


def _ratio_text(key: str, label: str) -> str:
    return f"{label} {{{key}_latency_ratio:.2f}} [{{{key}_latency_ratio_ci_low:.2f}}, {{{key}_latency_ratio_ci_high:.2f}}]"


_ROUNDS = "(time / fp32's, median of {latency_rounds:.0f} interleaved rounds, interval {latency_ci_coverage:.0%})"

CLAIMS = (
    Claim("05", "claim", "Quantization saves the most memory: 8-bit about 29 %, 4-bit about 18 % of the fp32 size "
          "of the whole model", "compression slides; docs/methods.md §6",
          "whole model: int8 {int8_size_ratio:.1%}, nf4 {nf4_size_ratio:.1%} of fp32's bytes; smallest method that "
          "does not quantize: {smallest_other_method} {smallest_other_size_ratio:.1%}; the quantized layers alone: "
          "int8 {int8_bytes_ratio:.1%}, nf4 {nf4_bytes_ratio:.1%}",
          "Qwen2-VL-2B: 6.17 GB -> 1.77 GB (8-bit, 28.7 %), 1.12 GB (4-bit, 18.2 %) (compression slides)",
          "whole-model bytes within 5 points of the slides' fractions (28.7 % and 18.2 %; 5 points: under half the "
          "gap between the two, so each format is told from the other) and 4-bit smaller than every low-rank and "
          "layer-drop variant", _near_slides,
          ("int8_size_ratio", "nf4_size_ratio", "smallest_other_size_ratio", "smallest_other_method",
           "int8_bytes_ratio", "nf4_bytes_ratio")),
    Claim("05", "claim", "Quantization does not make inference faster (bitsandbytes 8-bit and 4-bit)",
          "compression slides; docs/methods.md §6",
          _ratio_text("int8", "int8") + ", " + _ratio_text("nf4", "nf4") + " " + _ROUNDS,
          "bitsandbytes int8 is known to be slower than 16-bit even on GPUs (docs/methods.md §6)",
          "neither is faster by 5 % or more: each interval of the latency ratio above 0.95 (not reproduced when one "
          "lies below 0.95; undecided otherwise, or with fewer than 6 rounds)", not_faster("int8", "nf4"),
          (*ci_keys("int8_latency_ratio"), *ci_keys("nf4_latency_ratio"), "latency_rounds", "latency_ci_coverage")),
    Claim("05", "claim", "Quantization keeps the quality (accuracy similar or slightly lower)", "compression slides",
          "CIDEr-D fp32 {fp32_cider:.3f}, int8 {int8_cider:.3f}, nf4 {nf4_cider:.3f}; int8 minus 95 % of fp32: "
          + ci("int8_vs_95pct_fp32"), "",
          "int8 CIDEr-D minus 95 % of fp32's is above zero (paired bootstrap 95 % over test scenes; undecided when it "
          "holds zero)", lambda m: m["int8_vs_95pct_fp32_ci_low"] > 0,
          ("fp32_cider", "int8_cider", "nf4_cider", *ci_keys("int8_vs_95pct_fp32")),
          interval=ci_keys("int8_vs_95pct_fp32")[1:]),
    Claim("05", "claim", "Low-rank factorization does not make inference faster", "compression slides",
          "plain SVD at e = {svd_mid_energy:.2f} ({svd_mid_size_ratio:.1%} of the bytes): "
          + _ratio_text("svd", "latency ratio") + " " + _ROUNDS,
          "the slides: low rank is neither small nor fast",
          "not faster by 5 % or more: the interval of the latency ratio above 0.95 (not reproduced when it lies "
          "below 0.95; undecided otherwise, or with fewer than 6 rounds)", not_faster("svd"),
          (*ci_keys("svd_latency_ratio"), "svd_mid_energy", "svd_mid_size_ratio", "latency_rounds",
           "latency_ci_coverage")),
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
          + ci("layerdrop_vs_best_other") + "; fine-tune {layerdrop_ft_steps:.0f} steps, its last steps (from step "
          "{layerdrop_ft_check_step:.0f}, CIDEr-D {layerdrop_check_cider:.3f}) gained " + ci("layerdrop_ft_late_gain"),
          "",
          "layer drop minus the best other method's CIDEr-D is above zero (paired bootstrap 95 %; undecided when it "
          "holds zero, and while the fine-tune has not converged: its gain after the check step beyond the noise)",
          layerdrop_keeps_most,
          ("layerdrop_cider", "int8_cider", "nf4_cider", "svd_plain_cider", "svd_aware_cider", "best_other_method",
           *ci_keys("layerdrop_vs_best_other"), "layerdrop_ft_steps", "layerdrop_ft_check_step",
           "layerdrop_check_cider", *ci_keys("layerdrop_ft_late_gain")),
          interval=ci_keys("layerdrop_vs_best_other")[1:]),
)
