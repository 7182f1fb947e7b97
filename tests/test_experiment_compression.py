"""Notebook 05's experiment (vlmid.experiments.compression): its headline on small hand-built tables whose
answer is known by hand, the sign of every comparison included, and each claim's rule coming out every
way it can (reproduced, not reproduced, undecided)."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from vlmid import verdict
from vlmid.compress import bench
from vlmid.experiments import compression as exp

N_IMAGES = 40


def _caption_table():
    nan = float("nan")
    rows = [  # method, size_ratio, layers_ratio, CIDEr, nll, latency_s
        ("fp32", 1.0, nan, 1.0, 2.0, 2.0), ("int8 dynamic", 0.30, 0.26, 0.97, 2.1, 1.0),
        ("bnb int8", 0.28, 0.25, 0.99, 2.05, 2.3), ("bnb nf4", 0.17, 0.15, 0.9, 2.2, 2.6),
        ("svd plain 0.80", 0.45, 0.33, 0.6, 2.5, 1.2), ("svd asvd 0.80", 0.45, 0.33, 0.65, 2.4, 1.3),
        ("svd whiten 0.80", 0.45, 0.33, 0.7, 2.3, 1.4), ("svd plain 0.50", 0.25, 0.12, 0.3, 3.0, 1.0),
        ("svd asvd 0.50", 0.25, 0.12, 0.2, 3.1, 1.0), ("svd whiten 0.50", 0.25, 0.12, 0.25, 2.9, 1.0),
        ("layer drop", 0.72, nan, 0.4, 2.8, 1.1), ("layer drop + ft", 0.72, nan, 0.8, 2.3, 1.1),
        ("fp32 + ft (control)", 1.0, nan, 1.01, 1.9, 2.0), ("svd whiten 0.80 + int8", 0.16, 0.11, 0.69, 2.4, 1.5)]
    t = pd.DataFrame(rows, columns=["method", "size_ratio", "layers_ratio", "CIDEr", "nll", "latency_s"])
    t["semantic"] = 0.5 + 0.01 * np.arange(len(t))
    t["garment_f1"] = 0.6 + 0.02 * np.arange(len(t))
    t["binding_acc"] = 0.4 + 0.02 * np.arange(len(t))
    return t


def _paired():
    """whiten ahead at 0.80 only, asvd within the noise everywhere; NLL lower for whiten at both sizes."""
    return pd.DataFrame([
        {"energy": 0.8, "variant": "whiten", "size_ratio": 0.45, "CIDEr_aware_minus_plain": 0.1, "ci_low": 0.05,
         "ci_high": 0.15, "verdict": "ahead", "nll_aware_minus_plain": -0.2},
        {"energy": 0.8, "variant": "asvd", "size_ratio": 0.45, "CIDEr_aware_minus_plain": 0.05, "ci_low": -0.1,
         "ci_high": 0.15, "verdict": "within noise", "nll_aware_minus_plain": -0.1},
        {"energy": 0.5, "variant": "whiten", "size_ratio": 0.25, "CIDEr_aware_minus_plain": -0.05, "ci_low": -0.1,
         "ci_high": 0.02, "verdict": "within noise", "nll_aware_minus_plain": -0.1},
        {"energy": 0.5, "variant": "asvd", "size_ratio": 0.25, "CIDEr_aware_minus_plain": -0.1, "ci_low": -0.2,
         "ci_high": 0.01, "verdict": "within noise", "nll_aware_minus_plain": 0.1}])


def _per_image(late_gain=0.2):
    """Per-image CIDEr-D: int8 = 0.9 x fp32 (so int8 - 0.95 fp32 < 0 and its swap > 0), layer drop = int8 - 0.3
    (bnb int8 is the best rival by CIDEr-D), and the fine-tune gained ``late_gain`` after its check step."""
    fp = 1.0 + 0.5 * np.random.default_rng(0).random(N_IMAGES)
    int8 = 0.9 * fp
    ld = int8 - 0.3
    return pd.DataFrame({"fp32": fp, "bnb int8": int8, "bnb nf4": 0.8 * fp, "svd plain 0.80": 0.5 * fp,
                         "svd whiten 0.80": 0.6 * fp, "layer drop + ft": ld,
                         exp.checkpoint_name(90): ld - late_gain})


def _rounds(int8=(1.1, 1.2, 1.15, 1.3, 1.25, 1.1), nf4=2.0, svd=0.5):
    """Six timing rounds: fp32 takes 1 s in round r... plus r/100 s; the others are multiples of it."""
    fp = [1.0 + r / 100 for r in range(6)]
    times = {"fp32": fp, "bnb int8": [f * k for f, k in zip(fp, int8)], "bnb nf4": [f * nf4 for f in fp],
             "svd plain 0.80": [f * svd for f in fp]}
    return pd.DataFrame([{"method": m, "round": r, "latency_s": s} for m, ts in times.items() for r, s in enumerate(ts)])


def _clip_table():
    return pd.DataFrame([{"method": "fp32", "zeroshot_top1": 0.6}, {"method": "bnb nf4", "zeroshot_top1": 0.55}])


@functools.lru_cache(maxsize=1)
def _default_headline() -> tuple:
    return tuple(_headline_of().items())


def _headline(**kw) -> dict:
    """The hand-built tables' headline (computed once: each takes three paired bootstraps), or with ``kw``'s changes."""
    return _headline_of(**kw) if kw else dict(_default_headline())


def _headline_of(caption=None, per_image=None, rounds=None, **kw):
    caption = _caption_table() if caption is None else caption
    args = dict(finetune_steps=120, check_step=90, qwen2vl_ran=False, seed=0) | kw
    return exp.headline(caption, _clip_table(), _paired(), bench.svd_variants(caption),
                        _per_image() if per_image is None else per_image, _rounds() if rounds is None else rounds,
                        0.8, **args)


def test_headline_writes_exactly_its_keys():
    h = _headline()
    assert list(h) == list(exp.KEYS)
    assert not [k for k, v in h.items() if v is None]          # CPU, tiny profile, a fine-tune: every key has a value


def test_headline_sizes_qualities_and_counts_known_by_hand():
    h = _headline()
    assert (h["int8_bytes_ratio"], h["nf4_bytes_ratio"], h["int8_size_ratio"], h["nf4_size_ratio"]) == (0.25, 0.15, 0.28, 0.17)
    assert (h["smallest_other_size_ratio"], h["smallest_other_method"]) == (0.25, "svd plain 0.50")
    assert (h["fp32_cider"], h["int8_cider"], h["nf4_cider"]) == (1.0, 0.99, 0.9)
    assert (h["svd_plain_cider"], h["svd_aware_cider"], h["svd_asvd_cider"]) == (0.6, 0.7, 0.65)
    assert (h["svd_plain_nll"], h["svd_aware_nll"], h["svd_mid_size_ratio"], h["svd_mid_energy"]) == (2.5, 2.3, 0.45, 0.8)
    assert (h["svd_aware_wins"], h["svd_aware_losses"], h["svd_aware_nll_wins"], h["svd_sizes"]) == (1, 0, 2, 2)
    assert (h["layerdrop_cider"], h["layerdrop_noft_cider"], h["fp32_ft_cider"]) == (0.8, 0.4, 1.01)
    assert (h["fp32_semantic"], h["fp32_nll"], h["fp32_latency_s"]) == (0.5, 2.0, 2.0)
    assert (h["fp32_zeroshot"], h["nf4_zeroshot"]) == (0.6, 0.55)
    assert (h["int8_dynamic_bytes_ratio"], h["int8_dynamic_cider"], h["int8_dynamic_latency_ratio"]) == (0.26, 0.97, 0.5)
    assert (h["fp32_garment_f1"], h["int8_garment_f1"], h["nf4_garment_f1"]) == pytest.approx((0.6, 0.64, 0.66))
    assert h["fp32_binding_acc"] == 0.4
    assert (h["svd_aware_minus_plain"], h["svd_aware_minus_plain_ci_low"], h["svd_aware_minus_plain_ci_high"]) == (0.1, 0.05, 0.15)
    assert (h["layerdrop_ft_steps"], h["layerdrop_ft_check_step"], h["qwen2vl_section"]) == (120, 90, "not run")


def test_headline_effects_have_the_sign_of_their_comparison():
    per = _per_image()
    h = _headline(per_image=per)
    fp, int8 = per["fp32"], per["bnb int8"]
    # int8 minus 95 % of fp32: -0.05 x fp32 on every image, so the whole interval lies below zero
    assert h["int8_vs_95pct_fp32"] == pytest.approx(float((int8 - 0.95 * fp).mean()))
    assert h["int8_vs_95pct_fp32_ci_high"] < 0
    # layer drop minus the best rival by CIDEr-D (bnb int8): -0.3 on every image
    assert h["best_other_method"] == "bnb int8"
    assert (h["layerdrop_vs_best_other"], h["layerdrop_vs_best_other_ci_low"], h["layerdrop_vs_best_other_ci_high"]) \
        == pytest.approx((-0.3, -0.3, -0.3))
    # the fine-tune's gain after its check step: end minus check step = +0.2
    assert (h["layerdrop_ft_late_gain"], h["layerdrop_ft_late_gain_ci_low"]) == pytest.approx((0.2, 0.2))
    assert h["layerdrop_check_cider"] == pytest.approx(float(per["layer drop + ft"].mean()) - 0.2)


def test_headline_best_rival_is_the_highest_cider_of_the_rivals():
    cap = _caption_table()
    cap.loc[cap.method == "svd whiten 0.80", "CIDEr"] = 1.5     # now the best rival
    h = _headline(caption=cap)
    per = _per_image()
    assert h["best_other_method"] == "svd whiten 0.80"
    assert h["layerdrop_vs_best_other"] == pytest.approx(float((per["layer drop + ft"] - per["svd whiten 0.80"]).mean()))


def test_headline_latency_ratios_are_method_over_fp32_round_by_round():
    h = _headline()
    # int8's six per-round ratios 1.1 .. 1.3: median 1.175, six rounds give [min, max] at 97 % coverage
    assert (h["int8_latency_ratio"], h["int8_latency_ratio_ci_low"], h["int8_latency_ratio_ci_high"]) \
        == pytest.approx((1.175, 1.1, 1.3))
    assert (h["nf4_latency_ratio"], h["svd_latency_ratio"]) == pytest.approx((2.0, 0.5))
    assert h["latency_rounds"] == 6 and h["latency_ci_coverage"] == pytest.approx(1 - 2 / 64)


def test_headline_on_a_gpu_on_coco_and_without_a_fine_tune_writes_none():
    cap = _caption_table()
    cap = cap[cap.method != "int8 dynamic"].drop(columns=["garment_f1", "binding_acc"])
    h = _headline(caption=cap, per_image=_per_image().drop(columns=[exp.checkpoint_name(90)]), check_step=None,
                  qwen2vl_ran=True)
    assert list(h) == list(exp.KEYS)
    assert sorted(k for k, v in h.items() if v is None) == sorted(
        ["int8_dynamic_bytes_ratio", "int8_dynamic_cider", "int8_dynamic_latency_ratio", "fp32_garment_f1",
         "int8_garment_f1", "nf4_garment_f1", "fp32_binding_acc", "layerdrop_ft_check_step", "layerdrop_check_cider",
         "layerdrop_ft_late_gain", "layerdrop_ft_late_gain_ci_low", "layerdrop_ft_late_gain_ci_high"])
    assert h["qwen2vl_section"] == "run"


def test_latency_ratio_needs_rounds_for_its_coverage():
    two = _rounds()[lambda d: d["round"] < 2]
    r = exp.latency_ratio(two, "bnb int8")
    assert (r["ratio"], r["low"], r["high"], r["coverage"]) == pytest.approx((1.15, 1.1, 1.2, 0.5))


# ----------------------------------------------------------------------------- each rule, every way
def _claim(start: str):
    (c,) = [c for c in exp.CLAIMS if c.statement.startswith(start)]
    return c


def _word(start: str, h: dict) -> str:
    return verdict.verdict(_claim(start), h)[1]


def test_memory_rule_reads_whole_model_bytes_against_the_slides():
    h = _headline()
    assert _word("Quantization saves the most memory", h) == verdict.REPRODUCED          # 28 % and 17 %
    assert exp.SLIDES_FRACTION == pytest.approx({"int8": 0.2869, "nf4": 0.1815}, abs=1e-4)
    # the quantized layers alone would pass; the whole model (embeddings kept at fp32) does not
    assert _word("Quantization saves the most memory", h | {"int8_size_ratio": 0.40}) == verdict.NOT_REPRODUCED
    assert _word("Quantization saves the most memory", h | {"nf4_size_ratio": 0.12}) == verdict.NOT_REPRODUCED
    # 4-bit must also be smaller than every method that does not quantize
    assert _word("Quantization saves the most memory", h | {"smallest_other_size_ratio": 0.16}) == verdict.NOT_REPRODUCED
    # the two bands do not overlap: a fraction within one format's is outside the other's
    assert SLIDES_GAP > 2 * exp.SIZE_TOLERANCE


SLIDES_GAP = exp.SLIDES_FRACTION["int8"] - exp.SLIDES_FRACTION["nf4"]


def test_quantization_speed_rule_every_way():
    start = "Quantization does not make inference faster"
    assert _word(start, _headline()) == verdict.REPRODUCED                               # 1.1-1.3x and 2x slower
    faster = _headline(rounds=_rounds(int8=(0.7, 0.8, 0.75, 0.8, 0.7, 0.72)))
    assert _word(start, faster) == verdict.NOT_REPRODUCED                                # int8 faster beyond noise
    mixed = _headline(rounds=_rounds(int8=(0.9, 1.0, 0.93, 1.05, 0.97, 1.0)))
    assert _word(start, mixed) == verdict.UNDECIDED                                      # its interval holds 0.95
    few = _headline(rounds=_rounds()[lambda d: d["round"] < 3])
    assert _word(start, few) == verdict.UNDECIDED                                        # 3 rounds: 75 % coverage


def test_low_rank_speed_rule_every_way():
    start = "Low-rank factorization does not make inference faster"
    assert _word(start, _headline()) == verdict.NOT_REPRODUCED                           # twice as fast
    assert _word(start, _headline(rounds=_rounds(svd=1.2))) == verdict.REPRODUCED
    straddle = _rounds()
    straddle.loc[straddle.method == "svd plain 0.80", "latency_s"] *= np.array([1.8, 2.1, 1.9, 2.0, 1.7, 2.2])
    assert _word(start, _headline(rounds=straddle)) == verdict.UNDECIDED                 # 0.85 .. 1.1


def test_layer_drop_rule_waits_for_a_converged_fine_tune():
    start = "Dropping half the decoder layers"
    assert _word(start, _headline()) == verdict.UNDECIDED                 # still +0.2 after the check step
    converged = _headline(per_image=_per_image(late_gain=0.0))
    assert _word(start, converged) == verdict.NOT_REPRODUCED              # flat, and 0.3 below int8
    per = _per_image(late_gain=0.0)
    per["layer drop + ft"] += 0.5
    per[exp.checkpoint_name(90)] += 0.5
    assert _word(start, _headline(per_image=per)) == verdict.REPRODUCED   # flat, and 0.2 above int8
    noisy = _per_image(late_gain=0.0)
    noisy["layer drop + ft"] += 0.3 + 0.3 * np.where(np.arange(N_IMAGES) % 2, 1, -1)
    noisy[exp.checkpoint_name(90)] = noisy["layer drop + ft"]
    assert _word(start, _headline(per_image=noisy)) == verdict.UNDECIDED  # flat, its effect holds zero


def test_quality_and_svd_rules_read_the_headline():
    h = _headline()
    assert _word("Quantization keeps the quality", h) == verdict.NOT_REPRODUCED            # int8 = 90 % of fp32
    assert _word("Activation-aware SVD", h) == verdict.REPRODUCED                          # 1 win, 0 losses
    assert _word("Activation-aware SVD", h | {"svd_aware_losses": 1.0}) == verdict.NOT_REPRODUCED
    assert _word("Activation-aware SVD", h | {"svd_aware_wins": 0.0}) == verdict.UNDECIDED
