"""The hierarchical bootstrap across model builds, on synthetic data whose variance components are known."""
import math

import numpy as np
import pytest

from vlmid.uncertainty import bootstrap_mean, hierarchical_effect, paired_effect_across_builds


def _simulate(rng, mu, sd_build, sd_seed, sd_item, n_builds=5, n_seeds=3, n_items=200):
    """Per-item differences: effect mu + build offset + seed offset (within its build) + item noise."""
    out = []
    for _ in range(n_builds):
        b = rng.normal(mu, sd_build)
        s = rng.normal(0, sd_seed, size=(n_seeds, 1))
        out.append(b + s + rng.normal(0, sd_item, size=(n_seeds, n_items)))
    return out


def test_the_effect_is_the_mean_of_the_builds_and_stability_counts_agreeing_builds():
    per_build = [np.full((2, 4), v) + np.array([[0.0, 0.1, -0.1, 0.0]]) for v in (0.3, 0.2, 0.4, -0.1, 0.5)]
    e = hierarchical_effect(per_build, n_boot=400)
    assert e.diff == pytest.approx(np.mean([0.3, 0.2, 0.4, -0.1, 0.5]))
    assert e.per_build == pytest.approx((0.3, 0.2, 0.4, -0.1, 0.5))
    assert e.n_builds == 5 and e.stability == 4                 # the build at -0.1 disagrees
    d = e.as_dict("gain")
    assert d["gain_stability"] == 4 and d["gain_n_builds"] == 5 and d["gain"] == e.diff


def test_build_variance_dominates_the_interval_when_builds_disagree():
    rng = np.random.default_rng(0)
    # builds differ a lot, items hardly: the interval must reflect the spread of the 5 build means
    data = _simulate(rng, 0.0, sd_build=1.0, sd_seed=0.0, sd_item=0.01)
    e = hierarchical_effect(data, n_boot=2000)
    means = np.array([d.mean() for d in data])
    se = means.std(ddof=1) / math.sqrt(len(means))              # the textbook standard error of the mean
    assert (e.high - e.low) / 2 == pytest.approx(1.96 * se, rel=0.25)
    # ... while the item-only bootstrap of the pooled items is far too narrow for the same question
    pooled = bootstrap_mean(np.concatenate([d.reshape(-1) for d in data]), n_boot=400)
    assert (pooled.high - pooled.low) < 0.1 * (e.high - e.low)


def test_without_build_variance_it_is_conservative_by_at_most_root_two():
    """With no variance between builds, resampling the builds re-counts the item noise of each build's
    mean: the interval is wider than the item bootstrap's, by about sqrt(2) (the known price of the
    hierarchical bootstrap; it never makes a verdict easier)."""
    rng = np.random.default_rng(1)
    data = _simulate(rng, 0.2, sd_build=0.0, sd_seed=0.0, sd_item=1.0, n_builds=5, n_seeds=1, n_items=400)
    e = hierarchical_effect(data, n_boot=1000, small_sample=False)
    item_only = 1.96 / math.sqrt(5 * 400)
    assert item_only < (e.high - e.low) / 2 < 1.6 * item_only


def test_coverage_of_the_true_effect_with_five_builds():
    """With build, seed and item variance all present, the 95 % interval holds the true effect in
    about 95 % of simulated studies (5 builds, 3 seeds: the small-sample correction matters)."""
    rng = np.random.default_rng(2)
    hits = 0
    n = 120
    for k in range(n):
        data = _simulate(rng, 0.1, sd_build=0.05, sd_seed=0.02, sd_item=0.3, n_items=100)
        e = hierarchical_effect(data, n_boot=300, seed=k)
        hits += e.low <= 0.1 <= e.high
    assert hits / n >= 0.85


def test_paired_across_builds_subtracts_within_each_build():
    a = [np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]])]
    b = [np.array([0.5, 1.5, 2.5]), np.array([2.0, 2.0, 2.0])]
    e = paired_effect_across_builds(a, b, n_boot=200)
    assert e.per_build == pytest.approx((0.5, 0.5))
    swapped = paired_effect_across_builds(b, a, n_boot=200)
    assert swapped.diff == pytest.approx(-e.diff)
    with pytest.raises(ValueError, match="builds"):
        paired_effect_across_builds(a, b[:1])
    with pytest.raises(ValueError, match="different items"):
        paired_effect_across_builds(a, [np.zeros(4), np.zeros(3)])
