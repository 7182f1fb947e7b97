"""The paired bootstrap behind every comparison verdict."""
from __future__ import annotations

import numpy as np
import pytest

from vlmid.pruning.effects import method_effects, prior_gains
from vlmid.uncertainty import Effect, items_needed, paired_difference, paired_effect


def test_a_clear_gain_is_ahead_and_noise_is_undecided():
    rng = np.random.default_rng(0)
    b = rng.normal(1.0, 1.0, 400)
    ahead = paired_effect(b + 0.1 + rng.normal(0, 0.05, 400), b)
    assert ahead.verdict == 1 and ahead.low > 0 and abs(ahead.diff - 0.1) < 0.01
    noise = paired_effect(b + rng.normal(0, 1.0, 400), b)
    assert noise.verdict == 0 and noise.low < 0 < noise.high
    assert paired_effect(b - 0.1, b).verdict == -1


def test_the_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    d = rng.normal(0.2, 1.0, 2000)
    e = paired_effect(d, np.zeros_like(d))
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert e.half_width == pytest.approx(1.96 * se, rel=0.1)


def test_seeds_that_disagree_widen_the_interval():
    rng = np.random.default_rng(2)
    scene = rng.normal(0, 0.3, 500)
    agree = np.stack([scene + 0.05, scene + 0.05])
    disagree = np.stack([scene + 0.25, scene - 0.15])   # same mean effect, seeds far apart
    base = np.zeros((2, 500))
    assert paired_effect(disagree, base).half_width > 3 * paired_effect(agree, base).half_width


def test_a_margin_claim_scales_the_reference():
    dense = np.full(100, 2.0) + np.linspace(-0.1, 0.1, 100)
    pruned = 0.99 * dense
    assert paired_effect(pruned, dense, 0.98).verdict == 1     # keeps 99 % > 98 %
    assert paired_effect(pruned, dense, 1.0).verdict == -1


def test_items_needed_scales_as_the_square():
    e = Effect(0.01, -0.05, 0.07, n_items=150, n_seeds=2)
    assert items_needed(e, 0.03) == 600   # half-width 0.06 -> 0.03 needs four times the items


def test_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match="same test set"):
        paired_effect(np.zeros(10), np.zeros(12))
    with pytest.raises(ValueError, match="NaN"):
        paired_effect(np.array([1.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_prior_gains_and_method_effects_on_known_scores():
    rng = np.random.default_rng(3)
    base = rng.normal(2.0, 1.0, 300)
    scores = {}
    for s in (0, 1):
        scores[("magnitude", s, 0.4)] = base + rng.normal(0, 0.01, 300)
        scores[("magnitude + ID", s, 0.4)] = base + 0.2 + rng.normal(0, 0.01, 300)   # the prior helps
        scores[("gradient", s, 0.4)] = base + rng.normal(0, 0.01, 300)
        scores[("gradient + ID", s, 0.4)] = base - 0.2 + rng.normal(0, 0.01, 300)    # the prior hurts
    g = prior_gains(scores, ["magnitude", "gradient"], [0, 1], 0.4).set_index("base score")
    assert g.loc["magnitude", "verdict"] == 1 and g.loc["gradient", "verdict"] == -1
    assert abs(g.loc["mean of magnitude, gradient", "gain"]) < 0.01
    t = method_effects(scores, base, [0, 1], 0.4)
    assert t.method.iloc[0] == "magnitude + ID" and t.compared_with.iloc[0] in ("magnitude", "gradient")
    assert t.vs_best_ci_low.iloc[0] > 0 and (t.vs_best.iloc[1:] < 0).all()
    with pytest.raises(KeyError, match="same seeds"):
        prior_gains(scores, ["magnitude"], [0, 1, 2], 0.4)


def test_the_median_interval_is_the_order_statistics_with_the_stated_coverage():
    from vlmid.uncertainty import median_interval

    # 7 values: [min, max] covers 1 - 2 / 2**7 = 98.4 %; the next one in, [x2, x6], only 87.5 %
    assert median_interval([5, 1, 7, 3, 2, 6, 4]) == (1.0, 7.0, pytest.approx(1 - 2 / 128))
    # 9 values: [x2, x8] covers 1 - 2 * (1 + 9) / 512 = 96.1 %, [x3, x7] 82 %
    assert median_interval(range(1, 10)) == (2.0, 8.0, pytest.approx(1 - 20 / 512))
    low, high, coverage = median_interval([1.0, 3.0, 2.0, 5.0, 4.0])   # too few for 95 %: the widest, and says so
    assert (low, high) == (1.0, 5.0) and coverage == pytest.approx(1 - 2 / 32) and coverage < 0.95
    with pytest.raises(ValueError, match="at least 2"):
        median_interval([1.0])
