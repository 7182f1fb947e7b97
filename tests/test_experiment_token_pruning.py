"""vlmid.experiments.token_pruning: notebook 03's grids, tables, headline and claims.

The headline and the claims are tested on small hand-built tables whose answers are known by hand,
the sign of every comparison included; the model-facing steps (accuracy grid, setup, Extension B) on a
tiny random CLIP.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import random_clip

from vlmid import claims
from vlmid.experiments import token_pruning as exp
from vlmid.params.token_pruning import TokenPruningParams

N = 100   # images of the hand-built per-image tables


def right(*ranges) -> np.ndarray:
    """A per-image right/wrong column of N images: right on the images of ``ranges``."""
    out = np.zeros(N, dtype=bool)
    for a, b in ranges:
        out[a:b] = True
    return out


def collapse_correct() -> pd.DataFrame:
    """The committed run's pattern: naive collapses at keep 1.0 too, keeping the class token repairs it."""
    return pd.DataFrame({"baseline": right((0, 80)), "naive @ 1": right((0, 10)), "naive @ 0.5": right((0, 10)),
                         "fix_cls @ 0.5": right((0, 70))})


def dropping_correct() -> pd.DataFrame:
    """The other world: naive is the baseline at keep 1.0, and keeping the class token barely helps at 0.5."""
    return pd.DataFrame({"baseline": right((0, 80)), "naive @ 1": right((0, 80)), "naive @ 0.5": right((0, 10)),
                         "fix_cls @ 0.5": right((0, 12))})


def variants_table(changes: dict | None = None) -> pd.DataFrame:
    """The notebook's variants table (accuracy merged with cost), by hand. ``a @ 0.5`` is the fastest, but its
    top-1 change interval reaches below -1 point; ``b @ 0.5`` is the fastest within 1 point; ``c @ 0.7`` has the
    most FLOPs saved within 1 point; ``d @ 0.3`` collapses; ``topk - cls @ 0.5`` was not timed."""
    rows = [  # variant, label, keep, top1, change, ci_low, ci_high, speedup, flops_ratio
        ("baseline", "baseline", 1.0, 0.80, 0.0, 0.0, 0.0, 1.0, 1.0),
        ("naive @ 1", "naive", 1.0, 0.10, -0.70, -0.79, -0.61, 0.98, 1.0),
        ("naive @ 0.5", "naive", 0.5, 0.10, -0.70, -0.79, -0.61, 1.9, 2.0),
        ("fix_cls @ 0.5", "fix_cls", 0.5, 0.70, -0.10, -0.16, -0.04, 1.95, 2.0),
        ("a @ 0.5", "a", 0.5, 0.796, -0.004, -0.012, 0.004, 1.6, 2.0),
        ("b @ 0.5", "b", 0.5, 0.797, -0.003, -0.008, 0.002, 1.4, 1.7),
        ("c @ 0.7", "c", 0.7, 0.801, 0.001, -0.002, 0.004, 1.2, 1.9),
        ("d @ 0.3", "d", 0.3, 0.30, -0.50, -0.60, -0.40, 2.5, 3.0),
        ("topk - cls @ 0.5", "topk - cls", 0.5, 0.81, 0.01, 0.0, 0.02, np.nan, np.nan),
    ]
    cols = ["variant", "label", "keep", "top1", "top1_change", "change_ci_low", "change_ci_high", "speedup",
            "flops_ratio"]
    t = pd.DataFrame(rows, columns=cols)
    for name, values in (changes or {}).items():       # e.g. {"b @ 0.5": {"speedup": 1.55}}
        for col, v in values.items():
            t.loc[t["variant"] == name, col] = v
    return t


def decide(number_claim: int, metrics: dict) -> str:
    return claims.verdict(claims.of_notebook("03")[number_claim], metrics)[1]


# ------------------------------------------------------------------------------ headline
def test_headline_writes_exactly_its_keys():
    h = exp.headline(variants_table(), collapse_correct(), threads=1)
    assert set(h) == set(exp.KEYS)
    assert h["n_eval"] == N and h["threads"] == 1


def test_headline_reads_the_naive_method_and_the_baseline():
    h = exp.headline(variants_table(), collapse_correct(), threads=1)
    assert (h["baseline_top1"], h["naive_top1_keep_0.5"], h["naive_speedup_keep_0.5"]) == (0.80, 0.10, 1.9)
    assert (h["naive_top1_keep_1.0"], h["keep_cls_top1_keep_0.5"]) == (0.10, 0.70)


def test_headline_cause_comparisons_have_their_sign():
    """naive @ 1 minus the baseline (-0.70: 70 images lost) and fix_cls @ 0.5 minus naive @ 0.5 (+0.60: 60 images
    won), each with an interval that holds its estimate on the right side of zero."""
    h = exp.headline(variants_table(), collapse_correct(), threads=1)
    assert h["naive_change_keep_1.0"] == pytest.approx(-0.70)
    assert h["naive_change_keep_1.0_ci_low"] < -0.70 < h["naive_change_keep_1.0_ci_high"] < -0.5
    assert h["keep_cls_gain_keep_0.5"] == pytest.approx(0.60)
    assert 0.45 < h["keep_cls_gain_keep_0.5_ci_low"] < 0.60 < h["keep_cls_gain_keep_0.5_ci_high"]
    assert h["collapse_cause"].startswith("the summary token in place of the class token: naive collapses with no "
                                          "token dropped")


def test_headline_cause_when_dropping_is_to_blame():
    h = exp.headline(variants_table(), dropping_correct(), threads=1)
    assert (h["naive_change_keep_1.0"], h["naive_change_keep_1.0_ci_low"], h["naive_change_keep_1.0_ci_high"]) == (0, 0, 0)
    assert h["keep_cls_gain_keep_0.5"] == pytest.approx(0.02) and h["keep_cls_gain_keep_0.5_ci_low"] >= 0
    assert h["collapse_cause"].startswith("dropping tokens")


def test_headline_best_variant_is_the_fastest_within_one_point_by_its_interval():
    h = exp.headline(variants_table(), collapse_correct(), threads=1)
    # a is faster and its point estimate (-0.4 point) is within 1 point, but its interval reaches -1.2 points
    assert (h["best_variant"], h["best_speedup_within_1pt"], h["best_top1_within_1pt"]) == ("b @ 0.5", 1.4, 0.797)
    assert (h["best_top1_change_within_1pt"], h["best_top1_change_within_1pt_ci_low"],
            h["best_top1_change_within_1pt_ci_high"]) == (-0.003, -0.008, 0.002)
    assert (h["best_flops_variant"], h["best_flops_ratio_within_1pt"]) == ("c @ 0.7", 1.9)


def test_headline_max_loss_moves_the_filter():
    h = exp.headline(variants_table(), collapse_correct(), threads=1, max_loss=0.02)
    assert h["best_variant"] == "a @ 0.5" and h["best_flops_variant"] == "a @ 0.5"


def test_headline_without_a_variant_within_one_point_writes_nulls():
    t = variants_table()
    t.loc[t["variant"] != "baseline", "change_ci_low"] = -0.5
    h = exp.headline(t, collapse_correct(), threads=1)
    assert set(h) == set(exp.KEYS)
    assert all(h[k] is None for k in ("best_variant", "best_speedup_within_1pt", "best_flops_variant",
                                      "best_top1_change_within_1pt_ci_low"))
    assert decide(2, h) == claims.MISSED


def test_headline_without_keep_one_leaves_the_cause_unmeasured():
    correct = collapse_correct().drop(columns=["naive @ 1"])
    t = variants_table()
    h = exp.headline(t[t["variant"] != "naive @ 1"], correct, threads=1)
    assert h["naive_top1_keep_1.0"] is None and h["naive_change_keep_1.0_ci_low"] is None
    assert h["collapse_cause"] is None
    assert decide(1, h) == claims.NOT_MEASURED


# ------------------------------------------------------------------------------ the claims, both ways
def metrics(**over) -> dict:
    """A headline by hand: the committed run's numbers (the collapse comes from the summary token)."""
    m = {"baseline_top1": 0.8515, "naive_top1_keep_0.5": 0.13, "naive_speedup_keep_0.5": 1.94,
         "naive_top1_keep_1.0": 0.1115, "naive_change_keep_1.0": -0.74, "naive_change_keep_1.0_ci_low": -0.76,
         "naive_change_keep_1.0_ci_high": -0.719, "keep_cls_top1_keep_0.5": 0.634, "keep_cls_gain_keep_0.5": 0.504,
         "keep_cls_gain_keep_0.5_ci_low": 0.48, "keep_cls_gain_keep_0.5_ci_high": 0.53,
         "best_variant": "tome @ 0.3", "best_speedup_within_1pt": 1.376, "best_top1_within_1pt": 0.8505,
         "best_flops_variant": "tome @ 0.3", "best_flops_ratio_within_1pt": 1.558, "best_top1_change_within_1pt": -0.001,
         "best_top1_change_within_1pt_ci_low": -0.0075, "best_top1_change_within_1pt_ci_high": 0.0055,
         "n_eval": 2000, "threads": 1,
         "target_set": "harder set", "target_n_eval": 800, "target_baseline_top1": 0.81, "target_variant": "tome @ 0.5",
         "target_speedup_within_1pt": 1.167, "target_flops_ratio": 1.354, "target_top1_within_1pt": 0.808,
         "target_top1_change_within_1pt": -0.002, "target_top1_change_within_1pt_ci_low": -0.009,
         "target_top1_change_within_1pt_ci_high": 0.005, "target_flops_variant": "tome @ 0.5",
         "target_flops_ratio_within_1pt": 1.354, "target_oracle_top1": 0.85, "target_random_top1": 0.667,
         "hard_topk_top1_keep_0.5": 0.36, "hard_oracle_top1_keep_0.5": 0.85, "hard_random_top1_keep_0.5": 0.667,
         "hard_oracle_over_topk_keep_0.5": 0.49, "hard_oracle_over_topk_keep_0.5_ci_low": 0.43,
         "hard_oracle_over_topk_keep_0.5_ci_high": 0.55, "hard_topk_over_random_keep_0.5": -0.307,
         "hard_topk_over_random_keep_0.5_ci_low": -0.37, "hard_topk_over_random_keep_0.5_ci_high": -0.25, **over}
    m["collapse_cause"] = exp.collapse_cause(m)[1]
    return m


def test_collapse_line_is_chance_plus_ten_points_or_half_the_baseline():
    assert exp.collapse_line(0.8515) == pytest.approx(0.42575)
    assert exp.collapse_line(0.30) == pytest.approx(0.20)


def test_naive_collapse_claim_both_ways():
    assert decide(0, metrics()) == claims.REPRODUCED
    assert decide(0, {**metrics(), "naive_top1_keep_0.5": 0.50}) == claims.NOT_REPRODUCED    # above the line
    assert decide(0, {**metrics(), "naive_speedup_keep_0.5": 0.95}) == claims.NOT_REPRODUCED  # collapses, no faster
    # an unpruned model at chance (an untrained smoke model) has nothing to collapse from
    assert decide(0, {**metrics(), "baseline_top1": 0.12, "naive_top1_keep_0.5": 0.11}) == claims.NOT_REPRODUCED


def test_cause_claim_not_reproduced_names_the_summary_token():
    m = metrics()
    measured, word = claims.verdict(claims.of_notebook("03")[1], m)
    assert word == claims.NOT_REPRODUCED
    assert measured.startswith("cause: the summary token in place of the class token")
    assert "-0.740 [-0.760, -0.719]" in measured and "+0.504 [+0.480, +0.530]" in measured


def test_cause_claim_reproduced_when_keep_one_holds_up_and_the_class_token_does_not_help():
    m = metrics(**{"naive_top1_keep_1.0": 0.85, "naive_change_keep_1.0": -0.0015, "naive_change_keep_1.0_ci_low": -0.006,
                   "naive_change_keep_1.0_ci_high": 0.003, "keep_cls_top1_keep_0.5": 0.15, "keep_cls_gain_keep_0.5": 0.02,
                   "keep_cls_gain_keep_0.5_ci_low": 0.005, "keep_cls_gain_keep_0.5_ci_high": 0.035})
    assert exp.collapse_cause(m)[0] is True and m["collapse_cause"].startswith("dropping tokens")
    assert decide(1, m) == claims.REPRODUCED


@pytest.mark.parametrize("over, word, cause", [
    # naive at keep 1.0 collapses, but keeping the class token does not end it: another change is the cause
    ({"keep_cls_gain_keep_0.5_ci_low": 0.0, "keep_cls_gain_keep_0.5_ci_high": 0.05}, claims.NOT_REPRODUCED,
     "a change other than dropping tokens"),
    # naive holds up at keep 1.0, and keeping the class token ends the collapse at 0.5
    ({"naive_change_keep_1.0_ci_low": -0.01, "naive_change_keep_1.0_ci_high": 0.0}, claims.NOT_REPRODUCED,
     "the summary token in place of the class token: keeping"),
    # naive at keep 1.0 straddles the line (0.8515 - 0.45 < 0.42575 < 0.8515 - 0.40), the class token does not help
    ({"naive_change_keep_1.0_ci_low": -0.45, "naive_change_keep_1.0_ci_high": -0.40,
      "keep_cls_gain_keep_0.5_ci_low": 0.0, "keep_cls_gain_keep_0.5_ci_high": 0.05}, claims.UNDECIDED, "undecided"),
    # no collapse at keep 0.5: nothing to explain
    ({"naive_top1_keep_0.5": 0.6}, claims.UNDECIDED, "none: naive pruning does not collapse"),
    # an unpruned model at chance: nothing to collapse from
    ({"baseline_top1": 0.12, "naive_top1_keep_0.5": 0.11}, claims.UNDECIDED, "none: the unpruned model itself"),
])
def test_cause_claim_other_outcomes(over, word, cause):
    m = metrics(**over)
    assert decide(1, m) == word and m["collapse_cause"].startswith(cause)


def test_cause_rule_reads_the_interval_ends_not_the_point_estimates():
    # point estimates far below the line, but the interval of naive at keep 1.0 reaches above it: not decided by it
    m = metrics(**{"naive_change_keep_1.0_ci_high": -0.3, "keep_cls_gain_keep_0.5_ci_low": 0.1})
    assert exp.collapse_cause(m)[0] is None


def test_target_is_decided_on_throughput_only():
    assert decide(2, metrics()) == claims.MISSED               # 1.167x throughput, 1.354x fewer FLOPs
    assert decide(2, metrics(target_speedup_within_1pt=1.5)) == claims.MET
    assert decide(2, metrics(target_speedup_within_1pt=1.49, target_flops_ratio_within_1pt=3.0,
                             target_flops_ratio=3.0)) == claims.MISSED
    # a headline whose target variant's interval reaches below -1 point does not meet it
    assert decide(2, metrics(target_speedup_within_1pt=2.0, target_top1_change_within_1pt_ci_low=-0.02)) == claims.MISSED
    measured = claims.verdict(claims.of_notebook("03")[2], metrics())[0]
    assert measured.startswith("tome @ 0.5 on the harder set: x1.17 throughput (1.35x fewer FLOPs)")
    assert "-0.002 [-0.009, +0.005] on 800 images" in measured


def test_target_reads_the_harder_set_not_the_zero_shot_set():
    """The zero-shot set's fastest variant within 1 point (best_*) does not decide the target any more."""
    assert decide(2, metrics(best_speedup_within_1pt=2.0)) == claims.MISSED
    assert decide(2, metrics(target_speedup_within_1pt=1.6, best_speedup_within_1pt=1.0)) == claims.MET
    claim = claims.of_notebook("03")[2]
    assert not {k for k in claim.needs if k.startswith("best_")}
    nothing = metrics(**dict.fromkeys(["target_variant", "target_speedup_within_1pt", "target_flops_ratio",
                                       "target_flops_variant", "target_flops_ratio_within_1pt",
                                       *exp.ci_keys("target_top1_change_within_1pt")]))
    assert claims.verdict(claim, nothing) == ("no variant stays within 1 point of the baseline beyond the noise",
                                              claims.MISSED)


def test_target_on_the_hand_built_table():
    """The whole path: table -> headline -> verdict, without a harder set (a paper run): b is the fastest within
    1 point, at 1.4x: missed; at 1.55x: met."""
    h = exp.headline(variants_table(), collapse_correct(), threads=1)
    assert h["target_set"] == "zero-shot set" and h["target_variant"] == h["best_variant"] == "b @ 0.5"
    assert h["target_oracle_top1"] is None and h["hard_oracle_top1_keep_0.5"] is None
    assert decide(2, h) == claims.MISSED
    faster = exp.headline(variants_table({"b @ 0.5": {"speedup": 1.55}}), collapse_correct(), threads=1)
    assert faster["target_variant"] == "b @ 0.5" and decide(2, faster) == claims.MET


# ------------------------------------------------------------------------------ the harder set's headline
def hard_correct() -> pd.DataFrame:
    """Per image on the harder set: topk @ 0.5 loses 30 images, the oracle wins 5, random loses 15."""
    return pd.DataFrame({"baseline": right((0, 70)), "topk @ 0.5": right((0, 40)), "oracle @ 0.5": right((0, 75)),
                         "random @ 0.5": right((0, 55)), "t @ 0.5": right((0, 70)), "u @ 0.5": right((0, 69))})


def hard_table(changes: dict | None = None) -> pd.DataFrame:
    """The harder set's table, by hand. ``f @ 0.3`` is the fastest but loses 2 points beyond the noise; ``t @ 0.5`` is
    the fastest within 1 point (1.6x, 1.9x fewer FLOPs); ``u @ 0.7`` has the most FLOPs saved within 1 point; the
    oracle is faster still and within 1 point but is a bound, never a candidate."""
    rows = [  # variant, label, keep, top1, change, ci_low, ci_high, speedup, flops_ratio
        ("baseline", "baseline", 1.0, 0.70, 0.0, 0.0, 0.0, 1.0, 1.0),
        ("topk @ 0.5", "topk", 0.5, 0.40, -0.30, -0.39, -0.21, 1.2, 1.3),
        ("f @ 0.3", "f", 0.3, 0.68, -0.02, -0.035, -0.008, 2.4, 3.0),
        ("t @ 0.5", "t", 0.5, 0.70, 0.0, -0.006, 0.006, 1.6, 1.9),
        ("u @ 0.7", "u", 0.7, 0.69, -0.01, -0.009, 0.004, 1.3, 2.2),
        ("oracle @ 0.5", "oracle", 0.5, 0.75, 0.05, 0.01, 0.09, 3.0, 3.0),
        ("random @ 0.5", "random", 0.5, 0.55, -0.15, -0.22, -0.08, np.nan, np.nan),
    ]
    cols = ["variant", "label", "keep", "top1", "top1_change", "change_ci_low", "change_ci_high", "speedup",
            "flops_ratio"]
    t = pd.DataFrame(rows, columns=cols)
    for name, values in (changes or {}).items():
        for col, v in values.items():
            t.loc[t["variant"] == name, col] = v
    return t


def hard_headline(table=None, correct=None, **kw):
    return exp.headline(variants_table(), collapse_correct(), threads=1,
                        hard_table=hard_table() if table is None else table,
                        hard_correct=hard_correct() if correct is None else correct, **kw)


def test_headline_with_a_harder_set_writes_exactly_its_keys():
    h = hard_headline()
    assert set(h) == set(exp.KEYS) and len(exp.KEYS) == len(set(exp.KEYS))
    assert (h["target_set"], h["target_n_eval"], h["target_baseline_top1"]) == ("harder set", N, 0.70)
    # the zero-shot set's keys are the zero-shot set's, untouched by the harder set
    assert (h["best_variant"], h["baseline_top1"], h["n_eval"]) == ("b @ 0.5", 0.80, N)


def test_target_is_the_fastest_harder_set_variant_within_one_point_bounds_excluded():
    h = hard_headline()
    # f is faster but loses 2 points beyond the noise; the oracle is faster still, and a bound
    assert (h["target_variant"], h["target_speedup_within_1pt"], h["target_flops_ratio"]) == ("t @ 0.5", 1.6, 1.9)
    assert (h["target_top1_within_1pt"], h["target_top1_change_within_1pt_ci_low"]) == (0.70, -0.006)
    assert (h["target_flops_variant"], h["target_flops_ratio_within_1pt"]) == ("u @ 0.7", 2.2)
    assert (h["target_oracle_top1"], h["target_random_top1"]) == (0.75, 0.55)   # the bounds at t's keep, 0.5
    assert decide(2, h) == claims.MET
    # t's interval reaching below -1 point: u is the fastest left, at 1.3x, and the target is missed
    worse = hard_headline(hard_table({"t @ 0.5": {"change_ci_low": -0.011}}))
    assert worse["target_variant"] == "u @ 0.7" and decide(2, worse) == claims.MISSED
    # at u's keep no bound ran: its bounds are None, and the verdict does not need them
    assert worse["target_oracle_top1"] is None and worse["target_random_top1"] is None
    # a slower t: the faster f outside 1 point still does not count
    slow = hard_headline(hard_table({"t @ 0.5": {"speedup": 1.45}}))
    assert slow["target_variant"] == "t @ 0.5" and decide(2, slow) == claims.MISSED
    # the oracle would be the answer if a bound could count
    assert exp.best_within(hard_table(), 0.70)["variant"] == "oracle @ 0.5"


def test_a_variant_that_drops_no_token_is_never_the_target():
    t = hard_table()
    t.loc[len(t)] = ["w @ 1", "w", 1.0, 0.70, 0.0, -0.001, 0.001, 1.8, 2.5]   # faster within 1 point, at keep 1.0
    h = hard_headline(t)
    assert (h["target_variant"], h["target_flops_variant"]) == ("t @ 0.5", "u @ 0.7")


def test_harder_set_bounds_and_their_gaps_have_their_sign():
    h = hard_headline()
    assert (h["hard_topk_top1_keep_0.5"], h["hard_oracle_top1_keep_0.5"], h["hard_random_top1_keep_0.5"]) == \
        (0.40, 0.75, 0.55)
    assert h["hard_oracle_over_topk_keep_0.5"] == pytest.approx(0.35)                  # 35 images of 100
    assert 0.2 < h["hard_oracle_over_topk_keep_0.5_ci_low"] < 0.35 < h["hard_oracle_over_topk_keep_0.5_ci_high"]
    assert h["hard_topk_over_random_keep_0.5"] == pytest.approx(-0.15)                 # below the random floor
    assert h["hard_topk_over_random_keep_0.5_ci_high"] < 0
    no_random = hard_headline(correct=hard_correct().drop(columns=["random @ 0.5"]))
    assert no_random["hard_topk_over_random_keep_0.5_ci_low"] is None and no_random["hard_oracle_over_topk_keep_0.5"]


# ------------------------------------------------------------------------------ tables
def test_accuracy_table_change_is_variant_minus_baseline():
    correct = pd.DataFrame({"baseline": right((0, 80)), "evit @ 0.5": right((0, 60)), "tome @ 0.5": right((0, 90))})
    counts = {"baseline": [65, 65, 65], "evit @ 0.5": [65, 34, 19], "tome @ 0.5": [65, 57, 49]}
    jobs = exp.grid([exp.Spec("evit", "evit"), exp.Spec("tome", "tome")], [0.5])
    acc = exp.accuracy_table(correct, counts, jobs)
    assert acc["variant"].tolist() == ["baseline", "evit @ 0.5", "tome @ 0.5"]
    assert acc["top1"].tolist() == [0.8, 0.6, 0.9]
    assert acc["top1_change"].round(6).tolist() == [0.0, -0.2, 0.1]
    assert acc.loc[1, "change_ci_high"] < 0 < acc.loc[2, "change_ci_low"]
    assert acc.loc[1, "tokens_per_block"] == "65-34-19" and acc.loc[1, "mean_tokens"] == 49.5


def test_best_within():
    t = pd.DataFrame({"variant": ["baseline", "a", "b", "c", "d"], "speedup": [1.0, 1.2, 1.6, 2.0, 1.5],
                      "flops_ratio": [1.0, 1.3, 1.7, 2.1, 1.9], "top1": [0.80, 0.80, 0.795, 0.30, 0.70]})
    assert exp.best_within(t, 0.80, 0.01)["variant"] == "b"
    assert exp.best_within(t, 0.80, 0.0)["variant"] == "a"
    assert exp.best_within(t, 0.90, 0.01) is None
    # with the interval of the top-1 change, "within 1 point" must hold beyond the noise
    t["change_ci_low"] = [0.0, -0.004, -0.012, -0.5, -0.11]
    assert exp.best_within(t, 0.80, 0.01)["variant"] == "a"   # b's interval reaches below -1 point


def test_failure_analysis_recovered_and_lost():
    acc = pd.DataFrame({"label": ["baseline", "naive", "naive", "fix_cls", "topk", "topk", "topk - cls", "evit"],
                        "keep": [1.0, 1.0, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5],
                        "top1": [0.9, 0.2, 0.1, 0.4, 0.85, 0.8, 0.3, 0.7]})
    fa = exp.failure_analysis(acc, keeps=[0.5], loo_keeps=[0.5])
    assert fa["label"].tolist() == ["naive", "fix_cls", "topk", "topk", "topk - cls"]
    assert fa["panel"].tolist() == [exp.SINGLE_FIX_PANEL] * 3 + [exp.LEAVE_ONE_OUT_PANEL] * 2
    assert fa.index.tolist() == [2, 3, 5, 5, 6]                    # acc's index, topk in both panels
    assert fa["recovered"].round(6).tolist() == [0.0, 0.3, 0.7, 0.7, 0.2]
    assert fa["lost_vs_topk"].round(6).tolist() == [0.7, 0.4, 0.0, 0.0, 0.5]
    both = exp.failure_analysis(acc, keeps=[0.5], loo_keeps=[1.0])
    assert both.query("label == 'naive'")["keep"].tolist() == [1.0, 0.5]
    assert both.query("label == 'topk'")["recovered"].round(6).tolist() == [0.65, 0.7, 0.65, 0.7]


def test_report_table_and_timed_variants():
    t = variants_table()
    t["label"] = t["label"].replace({"a": "evit", "b": "tome"})
    for col in exp.REPORT_COLUMNS:
        t[col] = t[col] if col in t else 0.0
    rt = exp.report_table(t, keeps=[1.0, 0.5])
    assert rt["variant"].tolist() == ["baseline", "naive @ 1", "naive @ 0.5", "fix_cls @ 0.5", "a @ 0.5", "b @ 0.5"]
    assert list(rt.columns) == exp.REPORT_COLUMNS
    timed = exp.timed_variants(t)
    assert "topk - cls @ 0.5" not in timed["variant"].tolist()
    assert timed.set_index("variant")["family"].to_dict()["fix_cls @ 0.5"] == "single fix"
    assert timed.set_index("variant")["family"].to_dict()["naive @ 1"] == "naive"


# ------------------------------------------------------------------------------ grids and plan
def test_grids_and_their_order():
    jobs = exp.timed_jobs([1.0, 0.5], [0.5, 0.3])
    names = [exp.variant_name(s.label, k) for s, k in jobs]
    assert names[:2] == ["naive @ 1", "naive @ 0.5"] and names[-2:] == ["evit @ 0.3", "tome @ 0.3"]
    assert len(jobs) == 8 * 2 + 2                               # 0.5 is not searched twice
    assert [s.label for s, _ in exp.leave_one_out_jobs([0.5])] == exp.LEAVE_ONE_OUT_LABELS[1:]
    assert exp.SINGLE_FIX_LABELS == ["naive", "fix_cls", "fix_positions", "fix_prenorm", "fix_late", "topk"]
    assert exp.scaling_sizes(224, 16, [1.0, 1.5, 2.0]) == [224, 336, 448]
    assert exp.scaling_sizes(32, 4, [1.0, 1.1]) == [32, 36]


def test_plan_counts_the_variants():
    full, smoke = exp.plan(TokenPruningParams()), exp.plan(TokenPruningParams(smoke=True))
    assert full.work[0].what == "zero-shot evaluations: 45 variants x 2000 images"    # 36 timed + 8 left out + baseline
    assert full.work[1].count == 37 * (1 + 7 + 2) * 32
    assert full.work[2].count == round((1 + 2.25 + 4) * 4 * (2 + 3) * 16)
    assert smoke.work[0].count == (8 * 2 + 4 + 1) * 100
    # the harder set: naive, topk, evit, tome at 4 keeps, evit and tome at 2 more, both bounds at 5 keeps, baseline
    assert full.work[4].what == "harder set: 31 variants and bounds x 800 images"
    assert smoke.work[4].count == (4 * 2 + 2 + 1) * 100
    assert len(exp.plan(TokenPruningParams(n_hard=0)).work) == 4


def test_harder_jobs_and_bound_jobs():
    names = [exp.variant_name(s.label, k) for s, k in exp.harder_jobs([1.0, 0.5], [0.3])]
    assert names == ["naive @ 1", "naive @ 0.5", "topk @ 1", "topk @ 0.5", "evit @ 1", "evit @ 0.5", "tome @ 1",
                     "tome @ 0.5", "evit @ 0.3", "tome @ 0.3", "oracle @ 0.5", "oracle @ 0.3", "random @ 0.5",
                     "random @ 0.3"]
    assert [k for _, k in exp.bound_jobs([1.0, 0.5], [0.5, 0.7])] == [0.7, 0.5, 0.7, 0.5]   # no bound at keep 1.0


def test_oracle_ranks_the_target_first_then_by_distance():
    """A 2 x 2 grid of 32 px patches; the target covers patches 1 and 3 (the right column), centred at (40, 20)."""
    fg = np.array([[False, True, False, True]])
    target = [type("T", (), {"cx": 40, "cy": 20})()]
    s = exp.oracle_scores(fg, target, canvas=64)
    assert s.shape == (1, 4) and list(np.argsort(-s[0])) == [1, 3, 0, 2]
    assert (s[0, [1, 3]] > 1).all() and (s[0, [0, 2]] <= 0.5).all()
    # below the target's share the oracle keeps the target's middle; above it the nearest context too
    assert exp.oracle_scores(np.zeros((1, 4), bool), target, canvas=64).argmax() == 1


def test_random_scores_are_seeded():
    a, b = exp.random_scores(5, 64, seed=1), exp.random_scores(5, 64, seed=1)
    assert a.shape == (5, 64) and np.array_equal(a, b) and not np.array_equal(a, exp.random_scores(5, 64, seed=2))


def test_bounds_table_orders_the_selectors_from_floor_to_ceiling():
    t = hard_table()
    t.loc[len(t)] = ["evit @ 0.5", "evit", 0.5, 0.68, -0.02, -0.04, 0.0, 1.5, 1.7]
    bt = exp.bounds_table(t)
    assert list(bt.columns) == exp.BOUNDS_COLUMNS and bt["keep"].tolist() == [1.0, 0.5]
    row = bt.set_index("keep").loc[0.5]
    assert (row["random"], row["topk"], row["evit"], row["oracle"]) == (0.55, 0.40, 0.68, 0.75)
    assert bt.set_index("keep").loc[1.0, ["random", "oracle"]].tolist() == [0.70, 0.70]   # the unpruned model


# ------------------------------------------------------------------------------ on a tiny random CLIP
IMAGE, PATCH, N_LAYERS = 32, 4, 4
N_PATCHES = (IMAGE // PATCH) ** 2


@pytest.fixture(scope="module")
def clip():
    return random_clip(IMAGE, PATCH, N_LAYERS)


class _Bundle:
    """The parts of a ClipBundle the experiment uses, over pixel tensors."""

    def __init__(self, model):
        self.model = model

    def pixel_values(self, images):
        return torch.stack(list(images))

    def text_inputs(self, texts):
        ids = torch.tensor([[0] + [2 + sum(map(ord, w)) % 90 for w in t.split()][:6] + [1] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.fixture(scope="module")
def zeroshot_set():
    from vlmid.data.base import ZeroShotSet

    g = torch.Generator().manual_seed(3)
    return ZeroShotSet(images=list(torch.randn(12, 3, IMAGE, IMAGE, generator=g)), labels=np.arange(12) % 3,
                       classnames=["aa", "bb", "cc"], templates=["{} x"])


def test_accuracy_grid_baseline_and_keep_one_agree(clip, zeroshot_set):
    """A patched variant at keep 1.0 must score exactly what the unpatched model scores, image by image."""
    acc, correct = exp.accuracy_grid(_Bundle(clip), zeroshot_set, exp.grid([exp.Spec("evit", "evit")], [1.0, 0.5]),
                                     progress=False)
    assert acc["variant"].tolist() == ["baseline", "evit @ 1", "evit @ 0.5"]
    assert list(correct.columns) == acc["variant"].tolist() and len(correct) == 12
    assert correct["evit @ 1"].tolist() == correct["baseline"].tolist()
    assert acc.loc[1, "top1"] == acc.loc[0, "top1"] == correct["baseline"].mean()
    assert acc.loc[0, "tokens_per_block"] == "65-65-65-65-65"
    assert acc.loc[2, "tokens_per_block"] == "65-65-34-19-11"


def test_setup_from_bundle(clip, zeroshot_set):
    bundle = _Bundle(clip)
    bundle.image_size = IMAGE
    s = exp.Setup.from_bundle(bundle, zeroshot_set, batch_size=5)
    assert s.tower is clip.vision_model and (s.n_layers, s.n_patches) == (N_LAYERS, N_PATCHES)
    assert s.zs_pixels.shape == (12, 3, IMAGE, IMAGE) and torch.equal(s.zs_pixels, torch.stack(zeroshot_set.images))
    assert torch.equal(s.pixels, s.zs_pixels[:5]) and not clip.training
    assert s.describe("tiny", 1).startswith(f"tiny CLIP: {N_LAYERS} vision blocks, {N_PATCHES} patches + CLS at {IMAGE}px")
    assert s.describe("tiny", 1).endswith("12 zero-shot images, 3 classes; timing on 1 thread(s)")


def test_preset_tokens_table(clip):
    pixels = torch.randn(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))
    t = exp.preset_tokens(_Bundle(clip), pixels, N_PATCHES, N_LAYERS, keep=0.5).set_index("preset")
    col = "tokens per block (keep 0.5)"
    assert t.loc["none", col] == " → ".join(["65"] * 5) and t.loc["naive", col] == " → ".join(["33"] * 5)
    assert t.loc["evit", "evit blocks"] == (1, 2, 3) and t.loc["tome", "tome r"] == 8


def test_lowrank_projections_full_rank_matches_dense(clip, zeroshot_set):
    """Extension B of notebook 03: the full rank changes nothing; a rank-2 projection has r(d + p) weights."""
    from vlmid.compress.projections import lowrank_projections
    from vlmid.metrics import zeroshot_top1

    lr = lowrank_projections(_Bundle(clip), zeroshot_set, [16, 2], progress=False)  # projections 32 -> 16
    assert lr["rank"].tolist() == ["full", 16, 2]
    assert lr.loc[0, "top1"] == zeroshot_top1(_Bundle(clip), zeroshot_set)       # the cached towers change nothing
    assert lr.loc[1, "top1"] == lr.loc[0, "top1"] and lr.loc[1, "rel_error_visual"] < 1e-5
    assert lr.loc[2, "projection_params"] == 2 * 2 * (32 + 16) and lr.loc[2, "rel_error_text"] > 0.1


def test_selected_features_by_the_l2_norm_is_the_topk_preset(clip):
    """Ranking by the L2 norm of the state at the selection block reproduces tokens' topk preset; at keep 1.0 every
    ranking is the unpatched model."""
    from vlmid import tokens
    from vlmid.metrics.zeroshot import embedding_tensor

    px = torch.randn(3, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mine = exp.selected_features(clip, px, None, 0.5)
        with tokens.patched(clip, "topk", keep=0.5):
            theirs = embedding_tensor(clip.get_image_features(pixel_values=px))
        # the same norms handed over as scores: the state entering block L/2 of the unpatched tower
        states = clip.vision_model(pixel_values=px, output_hidden_states=True).hidden_states
        given = exp.selected_features(clip, px, states[N_LAYERS // 2][:, 1:].norm(dim=-1), 0.5)
        whole = embedding_tensor(clip.get_image_features(pixel_values=px))
        everything = exp.selected_features(clip, px, torch.rand(3, N_PATCHES), 1.0)
        other = exp.selected_features(clip, px, torch.rand(3, N_PATCHES), 0.5)
    assert torch.allclose(mine, theirs, atol=1e-5) and torch.allclose(given, theirs, atol=1e-5)
    assert torch.allclose(everything, whole, atol=1e-5)
    assert not torch.allclose(other, theirs, atol=1e-3)


def test_accuracy_grid_runs_the_bounds_on_topks_tokens(clip, zeroshot_set):
    scores = {"oracle": np.tile(np.arange(N_PATCHES, dtype=float), (12, 1)), "random": exp.random_scores(12, N_PATCHES)}
    jobs = exp.grid([exp.Spec("topk", "topk")], [0.5]) + exp.grid(exp.BOUNDS, [1.0, 0.5])
    acc, correct = exp.accuracy_grid(_Bundle(clip), zeroshot_set, jobs, progress=False, scores=scores)
    counts = acc.set_index("variant")["tokens_per_block"]
    assert counts["oracle @ 0.5"] == counts["random @ 0.5"] == counts["topk @ 0.5"] == "65-65-33-33-33"
    assert correct["oracle @ 1"].tolist() == correct["random @ 1"].tolist() == correct["baseline"].tolist()
    # the oracle's scores keep the last 32 patches: what selected_features gives for them
    from vlmid.metrics.zeroshot import class_text_embeddings, correct_from_embeddings
    with torch.no_grad():
        feats = exp.selected_features(clip, torch.stack(zeroshot_set.images), torch.as_tensor(scores["oracle"]), 0.5)
    text = class_text_embeddings(_Bundle(clip), zeroshot_set.classnames, zeroshot_set.templates)
    expected = correct_from_embeddings(torch.nn.functional.normalize(feats, dim=-1), text, zeroshot_set.labels)
    assert correct["oracle @ 0.5"].tolist() == expected.tolist()
    assert exp.harder_study(_Bundle(clip), None, jobs, cost=None) == (None, None)


def test_setup_times_the_harder_sets_images(clip, zeroshot_set):
    from vlmid.data.base import ZeroShotSet

    bundle = _Bundle(clip)
    bundle.image_size = IMAGE
    images = list(torch.randn(6, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(4)))
    fg = np.zeros((6, N_PATCHES), bool)
    fg[:, :10] = True
    hard = exp.HarderSet(ZeroShotSet(images, np.arange(6) % 3, ["aa", "bb", "cc"], ["{} x"]), fg, [None] * 6,
                         np.array([1, 1, 2, 2, 3, 3]))
    s = exp.Setup.from_bundle(bundle, zeroshot_set, batch_size=4, hard=hard)
    assert torch.equal(s.pixels, torch.stack(images[:4])) and s.zs_pixels.shape[0] == 12
    assert s.describe("tiny", 1).endswith("timing on 1 thread(s) on the harder set's images\nharder set: 6 placed "
                                          "items (33% with 0, 33% with 1, 33% with 2 distractors); the target covers "
                                          "10.0 of 64 patches on average (10-10)")


# ------------------------------------------------------------------------------ across builds
def test_a_further_build_is_read_at_the_first_builds_target_not_its_own():
    first = hard_headline()
    by = json.loads(first["target_by_variant"])
    assert set(by) == {"topk @ 0.5", "f @ 0.3", "t @ 0.5", "u @ 0.7", "oracle @ 0.5",
                                               "random @ 0.5"}
    assert by["random @ 0.5"]["speedup"] is None            # not timed: None, not NaN
    # this build's t loses 2 points beyond the noise and u is its own target, at 1.3x: read at t, as chosen
    other = hard_headline(hard_table({"t @ 0.5": {"top1": 0.68, "top1_change": -0.02, "change_ci_low": -0.03}}))
    assert other["target_variant"] == "u @ 0.7"
    same, fixed = exp.fix_choices([first, other])
    assert same is first and fixed["target_variant"] == "t @ 0.5" and fixed["target_flops_variant"] == "u @ 0.7"
    assert (fixed["target_speedup_within_1pt"], fixed["target_top1_change_within_1pt_ci_low"]) == (1.6, -0.03)
    assert (fixed["target_oracle_top1"], fixed["target_random_top1"]) == (0.75, 0.55)   # the bounds at t's keep
    assert decide(2, fixed) == claims.MISSED and decide(2, other) == claims.MISSED
    with pytest.raises(KeyError, match="run notebook 03 on that build again"):
        exp.fix_choices([first, {k: v for k, v in other.items() if k != "target_by_variant"}])
    # a first build with no target: no further build has one either
    none = hard_headline(hard_table({n: {"change_ci_low": -0.05} for n in ("t @ 0.5", "u @ 0.7", "f @ 0.3")}))
    assert none["target_variant"] is None
    assert exp.fix_choices([none, first])[1]["target_speedup_within_1pt"] is None
