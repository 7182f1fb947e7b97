"""Notebook 06's pooling across model builds, on hand-built headlines whose answer is known."""
import json
import math

import pytest

from vlmid.experiments import across_builds as exp
from vlmid.paths import build_results_dir, parse_builds
from vlmid.verdict import Claim, above_zero, ci_keys

KEYS = (*ci_keys("gain"), "speedup", "best", "n_test", "flag")


def _m(gain, low, high, speedup=1.5, best="a", n_test=100, flag=True):
    return {"gain": gain, "gain_ci_low": low, "gain_ci_high": high, "speedup": speedup, "best": best,
            "n_test": n_test, "flag": flag, "profile": "tiny", "seed": 0, "commit": "abc"}


BUILDS = [_m(0.10, 0.05, 0.15, 1.4, "a"), _m(0.12, 0.08, 0.16, 1.6, "b"), _m(0.08, 0.03, 0.13, 1.5, "a"),
          _m(-0.01, -0.05, 0.03, 1.7, "a"), _m(0.11, 0.07, 0.15, 1.3, "b")]
GAIN = Claim("09", "claim", "gain is positive", "-", "{gain:+.3f}", "", "interval above 0", above_zero("gain"),
             ("gain",), interval=("gain_ci_low", "gain_ci_high"))
FAST = Claim("09", "target", "fast", "-", "{speedup:.2f}", "", ">= 1.5", lambda m: m["speedup"] >= 1.5, ("speedup",))


def test_effects_pool_to_the_mean_with_an_interval_across_builds_not_the_builds_own():
    p = exp.pool(BUILDS, KEYS)
    gains = [0.10, 0.12, 0.08, -0.01, 0.11]
    assert p["gain"] == pytest.approx(sum(gains) / 5)
    half = 2.776445 * (sum((g - p["gain"]) ** 2 for g in gains) / 4) ** 0.5 / math.sqrt(5)
    assert p["gain_ci_high"] - p["gain"] == pytest.approx(half, rel=1e-5)
    assert p["gain_ci_low"] != pytest.approx(min(m["gain_ci_low"] for m in BUILDS))
    assert p["gain_n_builds"] == 5 and p["gain_stability"] == 4     # the build at -0.01 disagrees
    assert p["speedup"] == pytest.approx(1.5)                        # other numbers: the mean
    assert p["best"] == "a"                                          # words: what most builds found
    assert p["n_test"] == 100 and isinstance(p["n_test"], int)       # a size every build shares stays whole
    assert p["flag"] is True
    assert (p["profile"], p["seed"], p["commit"]) == ("tiny", 0, "abc")


def test_one_build_is_its_own_headline():
    p = exp.pool(BUILDS[:1], KEYS)
    assert p["gain_ci_low"] == 0.05 and p["gain_ci_high"] == 0.15   # its item interval, nothing pooled
    assert p["gain_n_builds"] == 1 and p["gain_stability"] == 1


def test_builds_that_measured_nothing_are_left_out_of_a_key():
    builds = [dict(BUILDS[0]), dict(BUILDS[1]), dict(BUILDS[2], speedup=None)]
    assert exp.pool(builds, KEYS)["speedup"] == pytest.approx(1.5)
    nothing = [dict(m, gain=None) for m in BUILDS[:2]]
    p = exp.pool(nothing, KEYS)
    assert p["gain"] is None and p["gain_n_builds"] == 0


def test_a_tie_between_words_takes_the_first_builds():
    assert exp.pool([_m(0.1, 0, 0.2, best="b"), _m(0.1, 0, 0.2, best="a")], KEYS)["best"] == "b"


def test_stability_of_a_comparison_and_of_another_claim():
    p = exp.pool(BUILDS, KEYS)
    assert exp.stability(GAIN, p, BUILDS) == (4, 5)
    # speedup pooled 1.5: met; alone, the builds at 1.5, 1.6 and 1.7 meet it
    assert exp.stability(FAST, p, BUILDS) == (3, 5)


def test_a_verdict_decided_across_builds_can_be_undecided_where_every_build_decides_alone():
    """Each build alone is 'reproduced' (its own interval above zero), but the builds disagree so much
    that the interval across them holds zero: pooled, it is undecided."""
    builds = [_m(0.30, 0.25, 0.35), _m(0.02, 0.01, 0.03), _m(0.25, 0.2, 0.3), _m(0.01, 0.005, 0.015)]
    from vlmid.verdict import verdict
    assert all(verdict(GAIN, m)[1] == "reproduced" for m in builds)
    assert verdict(GAIN, exp.pool(builds, KEYS))[1] == "undecided"


def test_paths_of_the_builds_and_parse_builds(tmp_path):
    assert build_results_dir(tmp_path, [3, 1], 3) == tmp_path
    assert build_results_dir(tmp_path, [3, 1], 1) == tmp_path / "builds" / "seed1"
    with pytest.raises(ValueError, match="not among"):
        build_results_dir(tmp_path, [0, 1], 2)
    assert parse_builds("0,1, 2") == [0, 1, 2] and parse_builds(4) == [4] and parse_builds([0, "2"]) == [0, 2]
    for bad in ("", "0,0", "a", "-1"):
        with pytest.raises(ValueError, match="model seed"):
            parse_builds(bad)


def test_collect_reads_each_build_and_says_what_to_run_when_one_is_missing(tmp_path):
    for b, m in zip([0, 1], BUILDS):
        folder = build_results_dir(tmp_path, [0, 1], b) / "02_pruning_blip"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(m))
    got = exp.collect(tmp_path, [0, 1], numbers=["02", "03"])
    assert got == {"02": BUILDS[:2]}                       # 03 ran on no build: left out, not an error
    with pytest.raises(FileNotFoundError, match=r"not for \[2\].*--builds 0,1,2"):
        exp.collect(tmp_path, [0, 1, 2], numbers=["02"])   # ran on some builds only: pooling them would select
    with pytest.raises(FileNotFoundError, match="run notebooks 01-06 first"):
        exp.collect(tmp_path, [0, 1], numbers=["03"])


def test_headline_counts_changes_and_the_id_prior_half_width():
    import pandas as pd

    table = pd.DataFrame({"verdict": ["reproduced", "undecided", "target met"], "builds_agreeing": ["5/5", "3/5", "4/5"],
                          "changed": [False, True, False]})
    gains = [{exp.ID_PRIOR_KEY: g} for g in (-0.04, 0.01, -0.02, 0.03, -0.01)]
    h = exp.headline(table, {"02": gains}, [0, 1, 2, 3, 4])
    assert h["n_builds"] == 5 and h["builds"] == "0,1,2,3,4" and h["n_claims"] == 3
    assert h["n_decided"] == 2 and h["n_changed_vs_first_build"] == 1 and h["n_unstable"] == 2
    sd = pd.Series([-0.04, 0.01, -0.02, 0.03, -0.01]).std()
    assert h["id_prior_gain_half_width"] == pytest.approx(2.776445 * sd / math.sqrt(5), rel=1e-5)
    assert h["id_prior_builds_needed"] is not None and h["id_prior_builds_needed"] <= 5   # already within 0.04
    one = exp.headline(table, {"02": gains[:1]}, [0])
    assert one["id_prior_gain_half_width"] is None and one["id_prior_builds_needed"] is None
    assert set(h) == set(exp.KEYS)


def test_notebook_01s_words_are_recomputed_from_the_pooled_intervals():
    """Two builds each reproduce vision > fusion > language alone, but their effects disagree so much that
    pooled, the order is undecided: the pooled words must say so, not one build's."""
    from vlmid.experiments import intrinsic_dimension as m01
    from vlmid.verdict import verdict

    def build(vf, fl):
        m = {k: None for k in m01.KEYS}
        m.update(id_poolings="mean", id_order_by_pooling="one build's words", id_order_holds_under="mean")
        for key, v in zip(m01.EFFECTS, (vf, fl, 2.0, 0.1, 0.1)):
            m.update({f"{key}_mean": v, f"{key}_mean_ci_low": v - 0.05, f"{key}_mean_ci_high": v + 0.05})
        return m

    builds = [build(3.0, 0.1), build(0.2, 2.0)]
    order = m01.CLAIMS[0]
    assert all(verdict(order, b)[1] == "reproduced" for b in builds)
    pooled = exp.pool(builds, m01.KEYS, m01.repool)
    assert pooled["id_order_holds_under"] == "no pooling"
    assert pooled["id_order_by_pooling"].startswith("mean: vision - fusion +1.60 [")
    assert verdict(order, pooled)[1] == "undecided"


def test_every_interval_a_notebook_writes_has_its_point_estimate_so_it_pools_as_an_effect():
    """An interval without its point key would pool as the mean of its ends: no build's estimate."""
    for number, module in exp._stems().items():
        lows = {k[: -len("_ci_low")] for k in module.KEYS if k.endswith("_ci_low")}
        assert lows <= set(module.KEYS), (number, sorted(lows - set(module.KEYS)))
        assert lows == set(exp.effect_keys(module.KEYS)), number


def test_what_a_headline_selects_is_chosen_on_the_first_build_when_pooled():
    """Build 1's own best method scores 0.30 over 98 % of dense, but the first build chose gradient, which
    build 1 scores at 0.05: pooled, best minus 98 % of dense is the mean of 0.10 and 0.05, not of 0.10 and 0.30."""
    from vlmid.experiments import pruning as m02

    def build(best, runner, by, vs98):
        m = dict.fromkeys(m02.KEYS)
        m.update(best_method_at_40=best, runner_up_at_40=runner, dense_cider=1.0, at_40_by_method=json.dumps(by),
                 best_vs_98pct_dense_at_40=vs98, best_vs_98pct_dense_at_40_ci_low=vs98 - 0.02,
                 best_vs_98pct_dense_at_40_ci_high=vs98 + 0.02, best_margin_at_40=0.01)
        return m

    first = build("gradient", "platon", {"gradient": {"CIDEr": 1.08, "garment_f1": 0.8},
                                         "platon": {"CIDEr": 1.07, "garment_f1": 0.8}}, 0.10)
    second = build("magnitude", "gradient", {"magnitude": {"CIDEr": 1.28, "garment_f1": 0.8},
                                             "gradient": {"CIDEr": 1.03, "garment_f1": 0.7},
                                             "platon": {"CIDEr": 1.00, "garment_f1": 0.7}}, 0.30)
    pooled = exp.pool_all({"02": [first, second]})["02"]
    assert pooled["best_method_at_40"] == "gradient"
    assert pooled["best_vs_98pct_dense_at_40"] == pytest.approx((0.10 + 0.05) / 2)
    assert pooled["at_40_by_method"] == first["at_40_by_method"]          # a table by name: the first build's
    table = exp.verdict_table({"02": [first, second]}, [0, 1])
    row = table[table.claim.str.startswith("At 40 % sparsity")].iloc[0]
    assert row.builds_agreeing == "2/2"


def test_failed_runs_are_counted_over_the_builds_not_averaged_away():
    """Two builds of five each lost a training seed: pooled, the counts are summed and the failures named
    by build. Averaged, they read "2.6 of 3 seeds" and the most common word, "none", hid both."""
    from vlmid.experiments import flickr8k

    failed = {0: "seed 0", 1: "seed 1"}
    builds = [{"seed": b, "n_seeds_default": 3, "n_failed_seeds": int(b in failed), "failed_seeds": failed.get(b, "none"),
               "n_seeds_compared": 3 - int(b in failed), "n_test_images": 400 if b == 0 else 200} for b in range(5)]
    keys = ("n_seeds_default", "n_failed_seeds", "failed_seeds", "n_seeds_compared", "n_test_images")
    pooled = exp.pool(builds, keys, tallied=flickr8k.TALLIED)
    assert (pooled["n_seeds_default"], pooled["n_failed_seeds"], pooled["n_seeds_compared"]) == (15, 2, 13)
    assert pooled["failed_seeds"] == "build 0: seed 0; build 1: seed 1"
    assert pooled["n_test_images"] == 240 and isinstance(pooled["n_test_images"], int)   # a size: the mean per build
    none_failed = exp.pool([{**m, "failed_seeds": "none"} for m in builds], keys, tallied=flickr8k.TALLIED)
    assert none_failed["failed_seeds"] == "none"
    assert exp.pool(builds, keys)["failed_seeds"] == "none"   # what pooling without the tally said
