"""Effects decided across model builds, on synthetic studies whose variance components are known."""
import math

import numpy as np
import pytest

from vlmid.uncertainty import across_builds, bootstrap_mean, builds_needed


def _study(rng, mu, sd_build, sd_seed, sd_item, n_builds=5, n_seeds=2, n_items=200):
    """Each build's own estimate, as its notebook would write it: the mean over its seeds and items of
    per-item differences mu + build offset + seed offset + item noise; and the pooled items."""
    estimates, items = [], []
    for _ in range(n_builds):
        d = (rng.normal(mu, sd_build) + rng.normal(0, sd_seed, size=(n_seeds, 1))
             + rng.normal(0, sd_item, size=(n_seeds, n_items)))
        estimates.append(d.mean())
        items.append(d)
    return np.array(estimates), items


def test_the_effect_is_the_mean_of_the_builds_and_stability_counts_agreeing_builds():
    e = across_builds([0.3, 0.2, 0.4, -0.1, 0.5])
    assert e.diff == pytest.approx(0.26)
    assert e.per_build == pytest.approx((0.3, 0.2, 0.4, -0.1, 0.5))
    assert e.n_builds == 5 and e.stability == 4                  # the build at -0.1 disagrees
    se = np.std([0.3, 0.2, 0.4, -0.1, 0.5], ddof=1) / math.sqrt(5)
    assert e.high - e.diff == pytest.approx(2.776445 * se, rel=1e-5)   # Student's t, 4 degrees of freedom
    assert e.diff - e.low == pytest.approx(e.high - e.diff)
    d = e.as_dict("gain")
    assert d == {"gain": e.diff, "gain_ci_low": e.low, "gain_ci_high": e.high, "gain_n_builds": 5, "gain_stability": 4}


def test_stability_follows_the_verdict_sign_and_the_mean_when_undecided():
    e = across_builds([-0.2, -0.3, -0.25, 0.02, -0.15])
    assert e.verdict == -1 and e.stability == 4
    undecided = across_builds([0.5, -0.4, 0.3, -0.2, 0.1])
    assert undecided.verdict == 0 and undecided.stability == 3  # mean +0.06: the three positive builds


def test_one_build_decides_nothing():
    e = across_builds([0.7])
    assert e.diff == 0.7 and math.isnan(e.low) and math.isnan(e.high)
    assert e.verdict == 0 and e.n_builds == 1 and e.stability == 1
    assert builds_needed(e, 0.1) is None


def test_build_variance_dominates_the_interval_when_builds_disagree():
    rng = np.random.default_rng(0)
    est, items = _study(rng, 0.0, sd_build=1.0, sd_seed=0.0, sd_item=0.01)
    e = across_builds(est)
    assert e.half_width == pytest.approx(2.776445 * est.std(ddof=1) / math.sqrt(5), rel=1e-6)
    # the item bootstrap of the pooled items answers another question (these items, these builds): far too narrow
    pooled = bootstrap_mean(np.concatenate([d.reshape(-1) for d in items]), n_boot=400)
    assert (pooled.high - pooled.low) < 0.05 * (e.high - e.low)


def test_coverage_of_the_true_effect_with_five_builds():
    """With build, seed and item variance all present, the 95 % interval holds the true effect in about
    95 % of simulated studies of 5 builds (a percentile bootstrap of 5 build means covers about 85 %)."""
    rng = np.random.default_rng(2)
    n, mu = 400, 0.1
    hits = 0
    for _ in range(n):
        e = across_builds(_study(rng, mu, sd_build=0.05, sd_seed=0.02, sd_item=0.3, n_items=100)[0])
        hits += e.low <= mu <= e.high
    assert 0.92 <= hits / n <= 0.98


def test_builds_needed_inverts_the_interval():
    e = across_builds([0.0, 0.1, -0.1, 0.05, -0.05])               # sd 0.0791
    k = builds_needed(e, 0.05)
    sd = np.std(e.per_build, ddof=1)
    from scipy.stats import t
    assert t.ppf(0.975, k - 1) * sd / math.sqrt(k) <= 0.05 < t.ppf(0.975, k - 2) * sd / math.sqrt(k - 1)
    assert builds_needed(e, e.half_width + 1e-9) == 5
    assert builds_needed(e, 1e-6) is None


def test_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match="one estimate per model build"):
        across_builds([])
    with pytest.raises(ValueError, match="leave out"):
        across_builds([0.1, float("nan")])
    with pytest.raises(ValueError, match="level"):
        across_builds([0.1, 0.2], level=1.5)
