"""vlmid.experiments.flickr8k: notebook 04's seeds, failed trainings, comparison and headline, on hand-built tables."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vlmid import verdict as V
from vlmid.experiments import flickr8k as exp
from vlmid.uncertainty import paired_effect

N_IMAGES = 40
SCORER_ONLY = "keep 0.5, scorer only"
CLAIM = {c.statement.split(" (")[0]: c for c in exp.CLAIMS}
QUALITY = CLAIM["Token pruning costs considerable quality"]


def _hits(n_hit: int) -> np.ndarray:
    """Per-image recall@5 of N_IMAGES images: the first ``n_hit`` hit (1), the rest miss (0)."""
    return (np.arange(N_IMAGES) < n_hit).astype(float)


def _tables(baseline_hits: dict, pruned_hits: dict, kept_share: dict, base_rate: float = 0.35):
    """(seeds, items, quality, speed, report_mini, report_flops) of seeds {s: hits} as notebook 04 builds them."""
    items, quality = [], []
    for s in baseline_hits:
        for model, hits in (("baseline", baseline_hits[s]), ("keep 0.5", pruned_hits[s])):
            score = _hits(hits) if np.isscalar(hits) else np.asarray(hits, dtype=float)
            items.append(pd.DataFrame(dict(seed=s, model=model, image=np.arange(N_IMAGES), recall5=score)))
            quality.append(dict(seed=s, model=model, recall5=score.mean(), train_seconds=10.0 if model == "baseline" else 4.0,
                                first_epoch_s=6.0 if model == "baseline" else 2.0, later_epoch_s=2.0 if model == "baseline" else 1.0))
    quality.append(dict(seed=0, model=SCORER_ONLY, recall5=0.02, train_seconds=3.0, first_epoch_s=1.0, later_epoch_s=1.0))
    quality = pd.DataFrame(quality)
    kept = pd.DataFrame([dict(seed=s, model="keep 0.5", foreground_share_of_kept=share,
                              foreground_share_of_all_tokens=base_rate) for s, share in kept_share.items()]
                        + [dict(seed=0, model=SCORER_ONLY, foreground_share_of_kept=0.1, foreground_share_of_all_tokens=base_rate)])
    speed = pd.DataFrame([dict(model="baseline", flops_ratio=1.0, encode_time_ratio=1.0, epoch_time_ratio=1.0),
                          dict(model="keep 0.5", flops_ratio=0.68, encode_time_ratio=0.7, epoch_time_ratio=0.8)])
    report_mini = pd.DataFrame([dict(epoch=1, report_lossyness=-5.0, baseline_test_loss=0.1, pruned_test_loss=0.6),
                                dict(epoch=2, report_lossyness=-999.0, baseline_test_loss=0.0005, pruned_test_loss=0.5)])
    report_flops = pd.DataFrame([dict(model="report baseline", matmul_flops_batch16=300),
                                 dict(model="report pruned, keep 0.5", matmul_flops_batch16=200),
                                 dict(model="report pruned, keep 1.0", matmul_flops_batch16=201)])
    seeds = exp.seed_table(quality, kept, 0.5)
    return seeds, pd.concat(items, ignore_index=True), quality, speed, report_mini, report_flops


def _headline(*args, **kwargs):
    return exp.headline(*_tables(*args, **kwargs), default_keep=0.5, seed=0)


GOOD = {0: 0.6, 1: 0.7, 2: 0.5}   # foreground shares of kept tokens above the base rate 0.35: no seed failed


# ------------------------------------------------------------------ the headline's keys and values
def test_headline_writes_exactly_its_keys():
    m = _headline({0: 30, 1: 30, 2: 30}, {0: 15, 1: 15, 2: 15}, GOOD)
    assert set(m) == set(exp.KEYS)
    assert len(exp.KEYS) == len(set(exp.KEYS))


def test_headline_reads_each_value_from_the_right_row_and_column():
    """Each ratio the right way up (mutations: train_time_ratio = baseline / pruned; first epoch over later
    swapped; report FLOPs keys swapped; first instead of last epoch of the report's miniature)."""
    m = _headline({0: 30, 1: 30, 2: 30}, {0: 15, 1: 15, 2: 15}, GOOD)
    assert m["train_time_ratio"] == pytest.approx(0.4)           # pruned 4 s / baseline 10 s, seed 0
    assert m["first_epoch_over_later"] == pytest.approx(3.0)     # the baseline's 6 s / 2 s
    assert (m["flops_ratio"], m["encode_time_ratio"], m["later_epoch_time_ratio"]) == pytest.approx((0.68, 0.7, 0.8))
    assert (m["report_flops_baseline"], m["report_flops_keep_half"], m["report_flops_keep_all"]) == (300, 200, 201)
    assert (m["report_setup_lossyness"], m["report_setup_baseline_loss"], m["report_setup_pruned_loss"]) == (-999.0, 0.0005, 0.5)
    assert m["scorer_only_recall5"] == pytest.approx(0.02)
    assert (m["n_seeds_default"], m["n_test_images"]) == (3, N_IMAGES)


# ------------------------------------------------------------------ failed trainings
def test_a_scorer_that_keeps_foreground_no_more_often_than_chance_has_failed():
    """Failed when the kept share is at or below the base rate (mutations: `<` for `<=`, the two shares swapped)."""
    seeds, *_ = _tables({0: 30, 1: 30, 2: 30}, {0: 15, 1: 15, 2: 15}, {0: 0.314, 1: 0.35, 2: 0.586})
    assert seeds.seed.tolist() == [0, 1, 2]
    assert seeds.failed.tolist() == [True, True, False]     # below, equal to, above the base rate 0.35
    assert seeds.lossyness.tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert seeds.foreground_base_rate.tolist() == [0.35] * 3


def test_a_failed_seed_is_counted_and_left_out_with_its_baseline():
    """Seed 0's scorer failed (its pruned model hits nothing, its baseline everything): averaged in, both means
    would move (mutation: comparison over every seed)."""
    m = _headline({0: 40, 1: 30, 2: 20}, {0: 0, 1: 15, 2: 10}, {0: 0.314, 1: 0.6, 2: 0.6})
    assert (m["n_seeds_default"], m["n_failed_seeds"], m["n_seeds_compared"], m["failed_seeds"]) == (3, 1, 2, "seed 0")
    assert m["baseline_recall5"] == pytest.approx((30 + 20) / 2 / N_IMAGES)
    assert m["pruned_recall5"] == pytest.approx((15 + 10) / 2 / N_IMAGES)
    assert m["lossyness"] == pytest.approx(0.5)
    shown, word = V.verdict(QUALITY, m)
    assert "failed, left out: seed 0" in shown and "2 of 3 training seeds" in shown


def test_every_seed_failed_leaves_nothing_to_compare():
    m = _headline({0: 30, 1: 30}, {0: 15, 1: 15}, {0: 0.1, 1: 0.2})
    assert m["n_failed_seeds"] == 2 and m["failed_seeds"] == "seeds 0, 1" and m["n_seeds_compared"] == 0
    assert all(m[k] is None for k in ("baseline_recall5", "pruned_recall5", *V.ci_keys("lossyness"), *V.ci_keys("recall5_diff")))
    assert set(m) == set(exp.KEYS)
    assert V.verdict(QUALITY, m)[1] == V.NOT_MEASURED


# ------------------------------------------------------------------ the quality rule, both ways and undecided
def test_pruning_that_halves_recall_reproduces_the_claim():
    """Pruned hits half the baseline's images in every seed: lossy-ness 0.5, interval above 0.05, difference
    below 0 (mutations: paired_effect(baseline, pruned); lossyness_interval(baseline, pruned))."""
    m = _headline({0: 30, 1: 32, 2: 28}, {0: 15, 1: 16, 2: 14}, GOOD)
    assert m["lossyness"] == pytest.approx(0.5)
    assert 0.05 < m["lossyness_ci_low"] < 0.5 < m["lossyness_ci_high"] <= 1.0
    assert m["recall5_diff"] == pytest.approx(-15 / N_IMAGES) and m["recall5_diff_ci_high"] < 0
    assert V.verdict(QUALITY, m)[1] == V.REPRODUCED


def test_baseline_and_pruned_swapped_the_claim_is_not_reproduced():
    """The same tables with the two arms' roles swapped: the pruned model now retrieves twice as well."""
    m = _headline({0: 15, 1: 16, 2: 14}, {0: 30, 1: 32, 2: 28}, GOOD)
    assert m["lossyness"] == pytest.approx(-1.0)
    assert m["lossyness_ci_high"] < 0.05 and m["recall5_diff_ci_low"] > 0
    assert V.verdict(QUALITY, m)[1] == V.NOT_REPRODUCED


def test_a_cost_inside_the_noise_is_undecided():
    """Pruned misses 2 of the baseline's 20 hits on 40 images: lossy-ness 0.1, but an interval that holds 0.05
    (mutation: the rule reads ci_high for ci_low)."""
    m = _headline({0: 20, 1: 20}, {0: 18, 1: 18}, {0: 0.6, 1: 0.6})
    assert m["lossyness"] == pytest.approx(0.1)
    assert m["lossyness_ci_low"] < 0.05 < m["lossyness_ci_high"]
    assert V.verdict(QUALITY, m)[1] == V.UNDECIDED


def test_the_lossyness_interval_is_where_the_margin_test_stops_rejecting():
    """Each end is the c where ``pruned - (1 - c) * baseline`` stops being beyond the noise (bisection
    on the right side: mutations swap the two tests or the bracket)."""
    rng = np.random.default_rng(3)
    base = (rng.random((2, 200)) < 0.5).astype(float)
    pruned = base * (rng.random((2, 200)) < 0.8)   # keeps about 80 % of the baseline's hits
    point, low, high = exp.lossyness_interval(pruned, base)
    assert point == pytest.approx(1 - pruned.mean() / base.mean())
    assert low < point < high
    keeps = lambda c: paired_effect(pruned, base, 1 - c)  # noqa: E731
    assert keeps(low - 2e-3).high < 0 <= keeps(low + 2e-3).high
    assert keeps(high + 2e-3).low > 0 >= keeps(high - 2e-3).low
    assert all(math.isnan(v) for v in exp.lossyness_interval(pruned, np.zeros((2, 200))))


# ------------------------------------------------------------------ the claims that cannot fail here
@pytest.mark.parametrize("ratio", [0.5, 1.2])
def test_flops_and_report_lossyness_claims_are_true_by_construction_whatever_the_numbers(ratio):
    m = dict(flops_ratio=ratio, report_flops_baseline=300, report_flops_keep_half=200, report_flops_keep_all=201,
             report_setup_lossyness=3.0, report_setup_baseline_loss=0.1, report_setup_pruned_loss=0.2)
    for statement in ("Token pruning lowers the FLOPs per image", "The token-pruned model's lossy-ness is -704"):
        shown, word = V.verdict(CLAIM[statement], m)
        assert word == V.BY_CONSTRUCTION
    assert "at keep 0.5 200, at keep 1.0 201" in V.verdict(CLAIM["Token pruning lowers the FLOPs per image"], m)[0]


@pytest.mark.parametrize("ratio, word", [(0.05, V.REPRODUCED), (0.8, V.NOT_REPRODUCED)])
def test_the_training_time_claim_can_fail(ratio, word):
    claim = CLAIM["Token pruning cuts training time about 13-fold"]
    assert V.verdict(claim, {"train_time_ratio": ratio})[1] == word


# ------------------------------------------------------------------ the arms and seeds
def test_train_runs_every_arm_of_the_first_seed_and_two_of_each_extra_seed():
    import torch

    from PIL import Image

    from vlmid.data.base import CaptionExample
    from vlmid.retrieval import RetrievalConfig, build_vocab, make_set

    g = torch.Generator().manual_seed(0)
    colours = ["red", "blue", "green"]
    ex = [CaptionExample(i, Image.fromarray((torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()),
                         [f"a {colours[i % 3]} shirt number {i} {j}" for j in range(5)]) for i in range(6)]
    vocab = build_vocab(c for e in ex for c in e.captions)
    cfg = RetrievalConfig(image_size=32, patch_size=8, width=32, depth=1, heads=2, embed_dim=16, vocab_size=len(vocab),
                          max_words=8)
    P = SimpleNamespace(keep_ratios=[0.25, 0.5], default_keep=0.5, extra_seeds=[3], seed=0, epochs=1, batch_size=4, lr=1e-3)
    runs = exp.train(P, cfg, exp.make_models(P, cfg, P.seed), make_set(ex, vocab, cfg), progress=False)
    assert [(s, name) for s, name, *_ in runs] == [(0, "baseline"), (0, "keep 0.25"), (0, "keep 0.5"), (0, SCORER_ONLY),
                                                  (3, "baseline"), (3, "keep 0.5")]
    assert all(len(log.epoch_seconds) == 1 for *_, log in runs)
