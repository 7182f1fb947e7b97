"""The statistics of "ID predicts prunability", on unit tables whose answer is known."""
import json
import math

import numpy as np

import pandas as pd
import pytest

from vlmid.experiments import id_prunability as exp

UNITS = [(f"{g}.{i}", g) for g in ("vision", "language", "fusion") for i in range(4)]


def prunability(loss_of):
    """A prunability table at two sparsities: the drop is loss_of[unit] at 0.5 and twice that at 0.9."""
    rows = [dict(unit=u, group=g, sparsity=s, CIDEr=1.0 - f * loss_of[u], drop_CIDEr=f * loss_of[u])
            for u, g in UNITS for s, f in ((0.5, 1.0), (0.9, 2.0))]
    return pd.DataFrame(rows)


def test_a_tower_contrast_alone_correlates_overall_but_not_within_towers():
    """IDs and losses both higher in vision, but inside each tower the loss runs against the ID: the overall
    rho is high, and the tower means alone reach it; within towers it is -1."""
    ids = {u: {"vision": 12, "fusion": 8, "language": 4}[g] + i for (u, g), i in zip(UNITS, [0, 1, 2, 3] * 3)}
    loss = {u: {"vision": 10, "fusion": 6, "language": 2}[g] - i for (u, g), i in zip(UNITS, [0, 1, 2, 3] * 3)}
    t = exp.unit_table(prunability(loss), {"TwoNN": ids})
    assert t.loss.tolist() == pytest.approx([1.5 * loss[u] for u, _ in UNITS])       # mean over the sparsities
    r = exp.rank_correlations(t, "id_TwoNN")
    assert r[exp.OVERALL] > 0.7 and r[exp.TOWERS_ONLY] > 0.7
    assert r["vision"] == r["language"] == r["fusion"] == pytest.approx(-1.0)


def test_an_id_that_ranks_units_inside_towers_is_seen_there():
    ids = {u: 5.0 + i for (u, _), i in zip(UNITS, [3, 0, 2, 1] * 3)}
    loss = {u: ids[u] ** 2 for u, _ in UNITS}
    r = exp.rank_correlations(exp.unit_table(prunability(loss), {"GRIDE": ids}), "id_GRIDE")
    assert r["vision"] == r["language"] == r["fusion"] == pytest.approx(1.0)
    assert math.isnan(r[exp.TOWERS_ONLY])                                              # every tower mean the same


def test_pooled_rhos_across_builds_and_bad_input():
    builds = [{exp.OVERALL: 0.8, "vision": 0.4}, {exp.OVERALL: 0.7, "vision": -0.2},
              {exp.OVERALL: 0.9, "vision": math.nan}]
    p = exp.pooled(builds)
    assert p[exp.OVERALL]["rho"] == pytest.approx(0.8) and p[exp.OVERALL]["stability"] == 3
    assert p[exp.OVERALL]["ci_high"] <= 1.0 and p[exp.OVERALL]["ci_low"] > 0.5
    assert p["vision"]["n_builds"] == 2 and p["vision"]["ci_low"] == -1.0               # clipped to rho's range
    with pytest.raises(KeyError, match="drop_garment_f1"):
        exp.unit_table(prunability({u: 1.0 for u, _ in UNITS}), {}, metric="garment_f1")
    with pytest.raises(KeyError, match="no ID for units"):
        exp.unit_table(prunability({u: 1.0 for u, _ in UNITS}), {"TwoNN": {}})


# -- rho with an interval over the validation scenes -----------------------------------------------------------------
def per_item_table(loss_of, n_scenes=40, noise=0.0, seed=0):
    """A prunability table with per-scene CIDEr-D: the intact model scores 1 on every scene, pruning unit u
    costs loss_of[u] on average at 0.5 and twice that at 0.9, plus per-scene noise."""
    rng = np.random.default_rng(seed)
    t = prunability(loss_of)
    per_item = {(r.unit, r.sparsity): {"per_image_cider": 1.0 - r.drop_CIDEr + noise * rng.normal(size=n_scenes)}
                for r in t.itertuples()}
    t.attrs.update(per_item=per_item, intact_per_item={"per_image_cider": np.ones(n_scenes)})
    return t


def test_rho_effects_find_a_known_order_and_its_interval_widens_with_noise():
    ids = {u: float(i) for i, (u, _) in enumerate(UNITS)}            # IDs rising unit by unit
    loss = {u: 0.01 * i for i, (u, _) in enumerate(UNITS)}            # and so do the losses
    r = exp.rho_effects(per_item_table(loss), {"TwoNN": ids}, n_resamples=50).set_index("comparison")
    assert r.loc[exp.OVERALL, "rho"] == pytest.approx(1.0) and r.loc[exp.OVERALL, "ci_low"] == pytest.approx(1.0)
    assert r.loc[exp.WITHIN, "rho"] == pytest.approx(1.0)
    noisy = exp.rho_effects(per_item_table(loss, noise=0.3), {"TwoNN": ids}, n_resamples=200).set_index("comparison")
    assert noisy.loc[exp.OVERALL, "ci_low"] < 0.9 < noisy.loc[exp.OVERALL, "ci_high"] + 1e-9
    assert set(r.index) == set(exp.COMPARISONS)


def test_the_towers_only_control_reaches_the_overall_rho_when_only_the_towers_differ():
    """IDs differ between towers only: inside a tower every unit has its tower's ID, so rho within is undefined
    and the tower means alone give the whole overall rho."""
    ids = {u: {"vision": 12.0, "fusion": 8.0, "language": 4.0}[g] for u, g in UNITS}
    loss = {u: {"vision": 0.3, "fusion": 0.2, "language": 0.1}[g] + 0.001 * i for i, (u, g) in enumerate(UNITS)}
    r = exp.rho_effects(per_item_table(loss), {"TwoNN": ids}, n_resamples=20).set_index("comparison")
    assert r.loc[exp.OVERALL, "rho"] == pytest.approx(r.loc[exp.TOWERS_ONLY, "rho"])
    assert math.isnan(r.loc["vision", "rho"]) and math.isnan(r.loc[exp.WITHIN, "rho"])


# -- the prior against its controls ------------------------------------------------------------------------------------
SEEDS, SPARSITIES, N = (0, 1, 2), (0.4, 0.6, 0.8), 30


def control_scores(offsets, noise=0.01):
    """Per-scene CIDEr-D of every run: 2 - sparsity + offsets[label] (+ small noise), every seed and sparsity."""
    rng = np.random.default_rng(0)
    return {(lab, s, sp): 2.0 - sp + offsets.get(lab, 0.0) + noise * rng.normal(size=N)
            for lab in exp.run_labels() for s in SEEDS for sp in SPARSITIES}


def test_comparisons_and_the_best_control_are_read_off_known_gains():
    offsets = {exp.PRIOR: 0.10, exp.CONTROL_LABELS["tower"]: 0.08, exp.CONTROL_LABELS["shuffled"]: -0.05,
               "magnitude, ID-allocated": 0.04, "wanda, ID-allocated": -0.02, "wanda": 0.01}
    table = exp.comparison_table(control_scores(offsets), SEEDS, SPARSITIES)
    g = table.set_index(["comparison", "sparsity"]).gain
    assert g[("ID prior vs no prior", "mean")] == pytest.approx(0.10, abs=0.01)
    assert g[("ID prior vs shuffled control", 0.6)] == pytest.approx(0.15, abs=0.01)
    assert g[("tower split alone vs no prior", "mean")] == pytest.approx(0.08, abs=0.01)
    assert g[("ID allocation vs uniform, wanda", "mean")] == pytest.approx(-0.03, abs=0.01)
    assert g[("ID allocation vs uniform, mean of both", "mean")] == pytest.approx((0.04 - 0.03) / 2, abs=0.01)
    assert exp.best_control(table) == "tower"                         # the prior's margin over it is smallest


def headline_of(offsets, **schedules):
    """The headline of runs with these offsets (``schedules``: schedule_table's and long_factor, if any ran)."""
    per_scene = control_scores(offsets)
    comparisons = exp.comparison_table(per_scene, SEEDS, SPARSITIES)
    results = pd.DataFrame([dict(method=lab, seed=s, sparsity=sp, CIDEr=float(v.mean()))
                            for (lab, s, sp), v in per_scene.items()])
    ids = {e: {u: float(i) + k for i, (u, _) in enumerate(UNITS)} for k, e in enumerate(exp.SLUGS)}
    rhos = exp.rho_effects(per_item_table({u: 0.01 * i for i, (u, _) in enumerate(UNITS)}), ids, n_resamples=20)
    linear = pd.DataFrame([dict(module=u, group=g, estimator=e, id=ids[e][u]) for e in ids for u, g in UNITS])
    return exp.headline(rhos, linear, None, comparisons, results, dense_val={"CIDEr": 1.0}, dense={"CIDEr": 2.0},
                        n_units=len(UNITS), n_val=40, n_test=N, n_seeds=len(SEEDS), sparsities=SPARSITIES,
                        rho_f1=0.5, wall_seconds=1.0, **schedules)


def test_headline_writes_every_key_and_the_claims_decide_on_it():
    from vlmid import claims

    h = headline_of({exp.PRIOR: 0.10, exp.CONTROL_LABELS["tower"]: 0.08})
    assert set(h) == set(exp.KEYS)
    assert h["rho_all_twonn"] == pytest.approx(1.0) and h["rho_all_pr"] == pytest.approx(1.0)
    assert h["best_control"] == "tower" and h["id_prior_vs_best_control"] == pytest.approx(0.02, abs=0.01)
    assert h["tower_order_twonn"] == "fusion > language > vision"      # IDs rise with the unit's index
    assert h["n_estimators_agree_on_tower_order"] == 4 and h["validation_max_rel_error_twonn"] is None
    assert json.loads(h["cider_by_run"])[exp.PRIOR]["40"] == pytest.approx(1.7, abs=0.01)
    words = [claims.verdict(c, h)[1] for c in claims.of_notebook("06")]
    assert words == ["reproduced", "reproduced", "reproduced", "reproduced", "undecided"]


def test_an_id_claim_is_undecided_where_the_estimators_disagree():
    from vlmid import claims

    h = headline_of({exp.PRIOR: -0.10})
    h.update(rho_all_pr=-0.8, rho_all_pr_ci_low=-0.9, rho_all_pr_ci_high=-0.7)   # one estimator says the opposite
    first, _, prior, best, _ = [claims.verdict(c, h)[1] for c in claims.of_notebook("06")]
    assert first == "undecided" and prior == "not reproduced" and best == "not reproduced"


def test_the_best_control_is_chosen_on_the_first_build():
    b0 = headline_of({exp.PRIOR: 0.10, exp.CONTROL_LABELS["tower"]: 0.08})
    b1 = headline_of({exp.PRIOR: 0.10, exp.CONTROL_LABELS["random"]: 0.09, exp.CONTROL_LABELS["tower"]: 0.0})
    assert b1["best_control"] == "random"
    fixed = exp.fix_choices([b0, b1])
    assert fixed[1]["best_control"] == "tower" and fixed[1]["id_prior_vs_best_control"] == pytest.approx(0.10, abs=0.01)
    assert fixed[1]["id_prior_vs_best_control_ci_low"] is None and fixed[0] is b0
    with pytest.raises(KeyError, match="run notebook 06"):
        exp.fix_choices([b0, dict(b1, id_prior_vs_controls="{}")])


def test_control_jobs_cover_every_run_and_seed_with_fresh_multipliers():
    from vlmid.params.id_prunability import IdPrunabilityParams

    P = IdPrunabilityParams(device="cpu", n_seeds=2, seed=5)
    ids = {f"m{i}": 5.0 + i for i in range(6)}
    jobs = exp.control_jobs(P, ids)
    assert [j.label for j in jobs] == exp.run_labels() * 2 and {j.seed for j in jobs} == {5, 6}
    for j in jobs:
        assert j.config.checkpoints == (0.4, 0.6, 0.8)
        # the label is the config's, but for the multipliers that stand in for the IDs
        assert j.label == j.config.label or (j.ids is not None and j.config.label == exp.PRIOR)
        j.config.validate()
    shuffled = [j.ids for j in jobs if j.label == exp.CONTROL_LABELS["shuffled"]]
    assert shuffled[0] != shuffled[1] and sorted(shuffled[0].values()) == sorted(ids.values())


def test_summary_reads_undefined_values_as_not_available():
    h = headline_of({exp.PRIOR: 0.10, exp.CONTROL_LABELS["tower"]: 0.08})
    text = exp.summary(h)
    assert "all units +1.00" in text and "best control (tower)" in text
    assert "within towers n/a" in exp.summary(dict(h, rho_within_twonn=None))


# -- the longer schedule -----------------------------------------------------------------------------------------------
def test_schedule_jobs_run_today_s_platon_and_three_runs_ten_times_longer():
    from vlmid.params.id_prunability import IdPrunabilityParams

    P = IdPrunabilityParams(device="cpu", n_seeds=2, seed=3)
    jobs = exp.schedule_jobs(P)
    labels = [exp.PLATON] + [exp.long_label(lab) for lab in exp.SCHEDULE_RUNS]
    assert [j.label for j in jobs] == labels * 2 and [j.seed for j in jobs] == [3] * 4 + [4] * 4
    today, long = jobs[0].config, jobs[1].config
    assert (today.method, today.total_steps, today.initial_warmup, today.hold_steps) == ("platon", 80, 5, 6)
    assert (long.total_steps, long.initial_warmup, long.hold_steps, long.delta_t) == (800, 50, 60, 10)
    assert long.checkpoints == today.checkpoints == (0.4, 0.6, 0.8) and long.final_sparsity == 0.8
    assert [j.config.method for j in jobs[1:4]] == ["magnitude", "magnitude", "platon"] and jobs[2].config.id_prior
    for j in jobs:
        j.config.validate()
    # PLATON's uncertainty average (beta2 0.95: a time constant of 20 steps) is warmed up only on the longer one
    assert today.initial_warmup < 1 / (1 - today.beta2) <= long.initial_warmup
    assert exp.schedule_jobs(IdPrunabilityParams(device="cpu", long_factor=0)) == []
    assert IdPrunabilityParams(device="cpu", replicate=True).long_factor == 0   # the first build only
    with pytest.raises(ValueError, match="long_factor=1"):
        IdPrunabilityParams(device="cpu", long_factor=1)


def schedule_scores(offsets, noise=0.01):
    """Per-scene CIDEr-D of the schedule comparison's runs (and today's no prior and prior)."""
    rng = np.random.default_rng(1)
    labels = [exp.NONE, exp.PRIOR, exp.PLATON] + [exp.long_label(lab) for lab in exp.SCHEDULE_RUNS]
    return {(lab, s, sp): 2.0 - sp + offsets.get(lab, 0.0) + noise * rng.normal(size=N)
            for lab in labels for s in SEEDS for sp in SPARSITIES}


def test_the_schedule_comparisons_are_read_off_known_gains_and_reach_the_headline():
    long = exp.long_label
    offsets = {exp.PLATON: 0.05, long(exp.NONE): 0.20, long(exp.PLATON): 0.45, long(exp.PRIOR): 0.10}
    table = exp.schedule_table(schedule_scores(offsets), SEEDS, SPARSITIES)
    g = table.set_index(["comparison", "sparsity"]).gain
    assert g[("longer schedule, magnitude", "mean")] == pytest.approx(0.20, abs=0.01)
    assert g[("longer schedule, PLATON", 0.8)] == pytest.approx(0.40, abs=0.01)
    assert g[("PLATON vs magnitude, today's schedule", "mean")] == pytest.approx(0.05, abs=0.01)
    assert g[("PLATON vs magnitude, longer schedule", "mean")] == pytest.approx(0.25, abs=0.01)
    assert g[("ID prior vs no prior, longer schedule", 0.4)] == pytest.approx(-0.10, abs=0.01)
    base = headline_of({exp.PRIOR: 0.10})
    assert base["long_factor"] == 0 and base["platon_vs_magnitude_long"] is None   # none ran
    h = headline_of({exp.PRIOR: 0.10}, schedules=table, long_factor=10)
    assert set(h) == set(exp.KEYS) and h["long_factor"] == 10
    assert h["long_vs_today_platon"] == pytest.approx(0.40, abs=0.01)
    assert h["id_prior_vs_none_long"] == pytest.approx(-0.10, abs=0.01) and h["id_prior_vs_none_long_ci_high"] < 0
    assert "PLATON minus magnitude +0.050 today, +0.250 longer" in exp.summary(h)

