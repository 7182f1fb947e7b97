# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -nbgrader
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Does a layer's intrinsic dimension predict how prunable it is?
#
# **Question.** The ID-pruning study's central claim is that a layer's intrinsic dimension (ID) says how
# much of it can be pruned: low-ID layers are redundant, high-ID layers critical, and so multiplying
# every weight's score by its layer's ID (the *ID prior*) should help pruning. Notebook 02 tests only the
# second half, at one sparsity. Here we test the claim itself, and then ask what the prior adds beyond
# what any shift of sparsity between towers would do.
#
# 1. **ID of every unit** (one block's Linears of one kind: `vision.2`, `language.1`, `fusion.3`) under
#    four estimators (TwoNN, GRIDE, the Levina-Bickel MLE and the participation ratio), each first
#    checked on manifolds of known dimension. The IDs come from **training** images, never the test scenes
#    the pruned models are scored on.
# 2. **Prunability of every unit**, measured directly: the CIDEr-D lost on validation scenes when that
#    unit alone is pruned by magnitude, at several sparsities.
# 3. **ID against prunability**: Spearman's rho over all units, *within* each tower (so that the answer
#    is not only "vision against language"), and with each unit given its tower's mean ID (what the order
#    of the towers explains by itself). Each rho has an interval over the validation scenes; notebook 07
#    pools the model builds.
# 4. **The prior against controls** at the same global sparsity: shuffled IDs, inverse IDs, random
#    multipliers with the IDs' spread, and the prior's own split between towers with nothing else; and the
#    way current methods use a per-layer signal, each layer's sparsity *allocated* from its ID (as OWL
#    allocates by outlier ratio), against a uniform allocation, for magnitude and Wanda. Every run prunes
#    and fine-tunes along one cubic schedule to 80 % and is scored at 40, 60 and 80 %, with several
#    fine-tuning seeds: at 40 % nearly every method keeps dense quality (notebook 02), and methods
#    separate only further on.
# 5. **A schedule ten times longer** (first build): no prior, the prior and PLATON again, with
#    PLATON's moving averages warmed up before its first mask, to see whether the methods separate
#    more when pruning is gradual rather than close to one-shot.
#
# Background and citations: `docs/methods.md` §12.

# %% tags=["parameters"]
profile = "tiny"     # "tiny": offline, models trained here | "paper": real checkpoints and datasets
seed = 0
smoke = False        # tiny sizes for the test-suite: the notebook runs in well under a minute
results_dir = None   # None: the repository's results/ (smoke runs: results/smoke/)
device = "auto"      # "auto": CUDA when available, else CPU | "cpu" | "cuda" | "cuda:N"
replicate = False    # True: a further model build of a multi-build run; only what the verdicts read
quick = False        # True: a one-build quick run (run_all.sh --quick, what CI runs): smaller sizes
n_points = 1000      # training images whose representations give each Linear's ID (never the test scenes)
feature_batch = 100  # images per forward pass while collecting them
validate_estimators = True  # check the four estimators on manifolds of known dimension first
n_validation_points, n_validation_draws = 2000, 3  # points per known-dimension cloud (50 ambient dims); clouds each
n_val = None         # validation scenes that score each unit's prunability (None: tiny 300, paper 500)
unit_sparsities = [0.5, 0.7, 0.9]  # each unit alone, pruned by magnitude to these sparsities
n_resamples = 1000   # resamples of the validation scenes: the interval of each build's rho
control_sparsities = [0.4, 0.6, 0.8]  # where the prior, its controls and the allocations are compared
n_seeds = 3          # fine-tuning seeds (seed, seed+1, ...) of every control and allocation run
n_test = None        # test scenes that score those runs (None: tiny 500, paper 5000)
total_steps = None   # cubic schedule to the largest control sparsity (None: tiny 80, paper 2000)
hold_steps = None    # recovery steps at each checkpoint (None: tiny 6, paper 100)
delta_t, initial_warmup = 10, 5  # masks recomputed every delta_t steps; dense fine-tuning steps before pruning
batch_size = None    # (None: tiny 24, paper 16)
lr = None            # AdamW learning rate (None: tiny 3e-5, paper 1e-5), as notebook 02
allocation_spread = 0.2  # ID allocation: unit sparsities within target +- spread * min(target, 1 - target)
long_factor = 10     # no prior, the prior and PLATON again on a schedule this many times longer (0: none)
threads = None       # torch threads (None: every core)
workers = None       # pruning runs at once, one CPU core each (None: every core on the CPU, 1 on a GPU)

# %%
import time
import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt
import seaborn as sns

from vlmid.experiments import id_prunability as exp
from vlmid.params.id_prunability import IdPrunabilityParams
from vlmid.harness.paper_inputs import params_from   # a paper run checks its inputs first
from vlmid.paths import seed_everything
from vlmid.harness.results import ResultWriter

P = params_from(IdPrunabilityParams, globals())   # checked before anything is written; smoke: tiny sizes
globals().update(P.namespace())
seed_everything(seed)
if threads:
    torch.set_num_threads(threads)
out = ResultWriter("06_id_and_prunability", profile=profile, seed=seed, root=results_dir, smoke=smoke)
t_start = time.perf_counter()

# %% [markdown]
# ## Four estimators, checked where the answer is known
#
# An ID claim should not rest on one estimator: a recent study (Schulte and Rügamer, 2026) finds that
# common estimators do not track the ID of neural representations. Before any estimator reads a layer, it
# reads clouds whose dimension we know: Gaussians of 2, 5 and 10 dimensions, a 5-D cube, a 4-D sphere and
# a swiss roll, each rotated into 50 coordinates. TwoNN, GRIDE and the MLE estimate the manifold's
# dimension `d`; the participation ratio is a *linear* dimension, checked against the number of
# coordinates the cloud spans (a curved sheet's lies between the two). The check runs on the first model
# build only: it is about the estimators, not the models.

# %%
from vlmid.id.validation import estimators, validate

if validate_estimators:
    validation = validate(estimators(), n=n_validation_points, seeds=tuple(range(n_validation_draws)))
    out.csv(validation, "estimator_validation.csv")
    display(validation.pivot(index="manifold", columns="estimator", values="rel_error").round(3))
else:
    validation = None
    print("a further model build: the estimators were checked on the first one")

# %% [markdown]
# The table shows each estimator's relative error (mean of the draws divided by the truth, minus one).
# What to look for: errors of a few per cent on the flat clouds, and which estimator drifts on the
# 10-D Gaussian (nearest-neighbour estimators underestimate as the dimension grows against the number
# of points) and on the curved manifolds. Where the estimators disagree on a layer below, that
# disagreement is part of the answer.
#
# ## The model, the scenes and the units

# %%
import copy

from vlmid.data import load_captions
from vlmid.data.scenes import scene_items
from vlmid.models import load_captioner
from vlmid.pruning import layer_units, prunable_linears

cap = load_captioner(profile, seed=seed, smoke=smoke, device=device)
cap.model.eval()
train = load_captions(profile, "train", seed=seed, smoke=smoke)
val = load_captions(profile, "val", n=n_val, seed=seed, smoke=smoke)
test = load_captions(profile, "test", n=n_test, seed=seed, smoke=smoke)
tiny = profile == "tiny"   # the tiny scenes know their garments: garment F1 beside CIDEr-D
val_items = scene_items("val", n=n_val, seed=seed, smoke=smoke) if tiny else None
test_items = scene_items("test", n=n_test, seed=seed, smoke=smoke) if tiny else None
linears = prunable_linears(cap.model)
units = layer_units(linears)
dense_state = copy.deepcopy(cap.model.state_dict())   # every run starts from these weights
print(f"{len(linears)} prunable Linears in {len(units)} units: {', '.join(units)}")
print(f"{len(train)} train / {len(val)} validation / {len(test)} test scenes")

# %% [markdown]
# ## The IDs: every Linear, four estimators, training images
#
# As in notebook 01, each Linear's output is mean-pooled over the tokens of an image-caption pair, one
# point per training image. A unit's ID is the mean over its Linears. These TwoNN IDs are also the ID
# prior of the runs below: measured on training images, they never see the test scenes.

# %%
import vlmid.id as vid

prior_images = load_captions(profile, "train", n=n_points, seed=seed, smoke=smoke)
sites = vid.linear_sites(cap.model)
features = vid.collect(cap.model, vid.blip_batches(cap, prior_images, feature_batch), sites, pooling="mean",
                       total=-(-len(prior_images) // feature_batch))
linear_table = exp.linear_ids(features, estimators())
del features
uids = exp.unit_ids(linear_table, units)   # {estimator: {unit: ID}}
ids = dict(zip(*linear_table[linear_table.estimator == exp.LEAD][["module", "id"]].T.values))  # the prior
out.csv(linear_table, "linear_ids.csv")
pd.DataFrame(uids).round(2)

# %%
long = pd.DataFrame([dict(unit=u, tower=u.split(".")[0], block=int(u.split(".")[1]), estimator=e, id=v)
                     for e, per in uids.items() for u, v in per.items()])
g = sns.relplot(data=long, x="block", y="id", hue="tower", col="estimator", kind="line", marker="o",
                facet_kws=dict(sharey=False), height=2.8, aspect=1.0, hue_order=list(exp.TOWERS))
g.set_axis_labels("block within its tower", "unit ID")
g.figure.suptitle("Unit IDs per tower under four estimators (training images)", y=1.04)
out.figure(g.figure, "unit_ids_by_estimator.png")

# %% [markdown]
# ## Prunability: prune one unit, score the captions
#
# For each unit and sparsity, only that unit's Linears are pruned, each matrix by weight magnitude, with
# no fine-tuning; the captioner then captions the validation scenes and the weights are restored. A
# unit's *loss* is its CIDEr-D drop averaged over the sparsities: a large loss, a unit that cannot be
# pruned.

# %%
from vlmid.pruning import unit_prunability

evaluate_val = exp.scene_evaluator(val, val_items)
prunability = unit_prunability(linears, units, lambda: evaluate_val(cap), sparsities=unit_sparsities)
dense_val = prunability.attrs["intact"]
out.csv(prunability, "unit_prunability.csv")
print(f"intact model on {len(val)} validation scenes: CIDEr-D {dense_val['CIDEr']:.3f}")
prunability.pivot(index="unit", columns="sparsity", values="drop_CIDEr").loc[list(units)].round(3)


# %% [markdown]
# ## Two exercises: rank correlation, and the correlation inside towers
#
# Spearman's rho is Pearson's correlation of the *ranks*: it asks only whether the units come in the same
# order, not whether the relation is linear. Ties share their mean rank. With 12 units in 3 towers, a rho
# over all units mixes two questions; the mean of the rhos inside each tower asks only the second.
#
# Each check is worth 1 point when the notebook is graded (nbgrader adds tests you do not see).

# %%
# Exercise 6.1: Spearman's rho
def spearman_rho(x, y):
    """Spearman's rho of two equally long sequences: Pearson's correlation of their ranks (ties: mean rank)."""
    # HINT: scipy.stats.rankdata gives ranks with ties averaged; then np.corrcoef(rx, ry)[0, 1]
    ### BEGIN SOLUTION
    from scipy.stats import rankdata
    rx, ry = rankdata(x), rankdata(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    ### END SOLUTION
    return rho


# %%
# Check 6.1
assert abs(spearman_rho([1, 2, 3, 4], [10, 20, 30, 40]) - 1.0) < 1e-12
assert abs(spearman_rho([1, 2, 3, 4], [1, 8, 27, 64]) - 1.0) < 1e-12        # monotone, not linear: still 1
assert abs(spearman_rho([1, 2, 3, 4], [4, 3, 2, 1]) + 1.0) < 1e-12
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(0)
for _ in range(5):
    a, b = rng.integers(0, 5, 12), rng.normal(size=12)   # ties in a
    assert abs(spearman_rho(a, b) - exp.spearman(a, b)) < 1e-12
### END HIDDEN TESTS
print("Check 6.1 passed")


# %%
# Exercise 6.2: the correlation inside towers
def within_towers(ids, losses, towers):
    """The mean over towers of Spearman's rho between ``ids`` and ``losses`` among the units of each tower."""
    # HINT: select each tower's units with a boolean mask (np.asarray(towers) == t), use spearman_rho on them
    ### BEGIN SOLUTION
    ids, losses, towers = np.asarray(ids, float), np.asarray(losses, float), np.asarray(towers)
    mean_rho = float(np.mean([spearman_rho(ids[towers == t], losses[towers == t]) for t in np.unique(towers)]))
    ### END SOLUTION
    return mean_rho


# %%
# Check 6.2
towers_ = ["vision"] * 3 + ["language"] * 3
assert abs(within_towers([9, 10, 11, 1, 2, 3], [3, 2, 1, 6, 5, 4], towers_) + 1.0) < 1e-12   # falls inside each tower
assert spearman_rho([9, 10, 11, 1, 2, 3], [3, 2, 1, 6, 5, 4]) < 0.0
### BEGIN HIDDEN TESTS
t12 = [t for t in exp.TOWERS for _ in range(4)]
rng = np.random.default_rng(1)
x, y = rng.normal(size=12), rng.normal(size=12)
assert abs(within_towers(x, y, t12) - float(exp.correlations(x, y[None, :], t12)[exp.WITHIN][0])) < 1e-9
### END HIDDEN TESTS
print("Check 6.2 passed")

# %% [markdown]
# ## ID against prunability
#
# Spearman's rho between unit ID and loss, per estimator, over all units, inside each tower (and the mean
# of the three), and with each unit given its tower's mean ID. The last is the control: if it reaches
# the overall rho, the overall correlation says no more than "the towers differ". Each interval
# resamples the validation scenes (1,000 times) and recomputes every unit's loss; it says how firmly
# these scenes rank the units on this model. Notebook 07 pools the model builds.

# %%
table = exp.unit_table(prunability, uids)
if tiny:   # the same units ranked by the garment F1 they cost
    table["loss_garment_f1"] = exp.unit_table(prunability, uids, metric="garment_f1").loss
out.csv(table, "unit_table.csv")
rhos = exp.rho_effects(prunability, uids, n_resamples=n_resamples, seed=seed)
out.csv(rhos, "id_vs_prunability.csv")
rho_f1 = exp.spearman(table[f"id_{exp.LEAD}"], table.loss_garment_f1) if tiny else None
rhos.assign(rho=rhos.apply(lambda r: f"{r.rho:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]", axis=1)) \
    .pivot(index="comparison", columns="estimator", values="rho").loc[list(exp.COMPARISONS)]

# %%
fig, axes = plt.subplots(1, len(uids), figsize=(3.3 * len(uids), 3.3), sharey=True)
for ax, est in zip(np.atleast_1d(axes), uids):
    sns.scatterplot(data=table, x=f"id_{est}", y="loss", hue="group", hue_order=list(exp.TOWERS), s=60, ax=ax,
                    legend=ax is np.atleast_1d(axes)[-1])
    r = rhos[(rhos.estimator == est) & (rhos.comparison == exp.OVERALL)].iloc[0]
    ax.set(xlabel=f"unit ID ({est})", title=f"rho {r.rho:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]")
    for _, row in table.iterrows():
        ax.annotate(row.unit.split(".")[1], (row[f"id_{est}"], row.loss), fontsize=7, xytext=(3, 2),
                    textcoords="offset points")
np.atleast_1d(axes)[0].set_ylabel("CIDEr-D lost when the unit alone is pruned")
fig.suptitle("Does a unit's ID predict what pruning it costs? (numbers: block index)", y=1.03)
out.figure(fig, "id_vs_prunability.png")

# %% [markdown]
# **How to read it.** The claim predicts points rising from left to right in every panel, and inside
# each colour. Points that rise only from one colour's cloud to another's say that the towers differ in
# both ID and robustness, which any property of the towers would also "predict". A panel whose rho
# differs in sign from the others marks a claim that rests on the estimator.
#
# ## The ID prior against its controls, and ID-allocated sparsity
#
# Every run starts from the same dense weights, prunes along one cubic schedule to 80 % while
# fine-tuning, and is scored on the same test scenes at 40, 60 and 80 %. At the same global sparsity:
#
# - **magnitude** (no prior) and **magnitude + ID** (the study's prior: score times the Linear's ID);
# - **shuffled ID**: the same ID values permuted over the Linears (the prior's spread, no ID order);
# - **inverse ID**: 1 / ID, the prior's order reversed;
# - **random multipliers**: log-normal with the spread of log ID (any spread at all);
# - **ID's tower split**: per tower as many weights as the prior removes there, chosen inside the tower
#   by magnitude alone (the shift between towers, nothing else);
# - **ID-allocated** vs **uniform** sparsity per layer, pruned inside each layer by magnitude or by Wanda
#   (Wanda's own rule is uniform per row).

# %%
from vlmid.experiments.pruning import record
from vlmid.pruning import allocation_for, prune_captioners

evaluate = exp.scene_evaluator(test, test_items)
dense = evaluate(cap)
jobs = exp.control_jobs(P, ids)
allocations = {k: allocation_for(k, linears, ids, allocation_spread) for k in ("uniform", "id")}
t0 = time.perf_counter()
runs = prune_captioners(cap, train, jobs, dense_state, evaluate, batch_size=batch_size, workers=workers, ids=ids,
                        allocations=allocations, desc="prior, controls and allocations")
per_scene = {}   # (run label, seed, sparsity) -> per-scene CIDEr-D, for the paired comparisons
rows, _ = record(runs, per_scene)
results = pd.DataFrame(rows)[["method", "seed", "sparsity", "actual_sparsity", "CIDEr"] + (["garment_f1"] if tiny else [])]
out.csv(results, "control_runs.csv")
print(f"{len(jobs)} runs ({workers} at a time) in {time.perf_counter() - t0:.0f} s; dense test CIDEr-D {dense['CIDEr']:.3f}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.2))
order = exp.run_labels()
sns.lineplot(data=results, x="sparsity", y="CIDEr", hue="method", hue_order=order, style="method", style_order=order,
             markers=True, dashes=False, errorbar=("pi", 100), err_style="bars", ax=ax)
ax.axhline(dense["CIDEr"], color="k", ls="--", lw=1, label="dense")
ax.set(xlabel="sparsity of prunable Linear weights", ylabel="CIDEr-D (test scenes)",
       title=f"The prior, its controls and the allocations ({len(exp.seeds(P))} seeds: bars span them)")
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
out.figure(fig, "controls_vs_sparsity.png")

# %%
comparisons = exp.comparison_table(per_scene, exp.seeds(P), control_sparsities)
out.csv(comparisons, "comparisons.csv")
c = comparisons.assign(sparsity=comparisons.sparsity.astype(str))
fig, ax = plt.subplots(figsize=(8, 4))
for i, (sp, part) in enumerate(c.groupby("sparsity", sort=False)):
    y = np.arange(len(part)) + (i - 1.5) * 0.18
    ax.errorbar(part.gain, y, xerr=[part.gain - part.ci_low, part.ci_high - part.gain], fmt="o", ms=4, label=sp)
ax.set_yticks(np.arange(len(part)), part.comparison, fontsize=8)
ax.axvline(0, color="k", lw=1)
ax.set(xlabel="CIDEr-D difference (95 % interval over scenes and seeds)", title="What the ID adds, and against what")
ax.legend(title="sparsity", fontsize=7)
out.figure(fig, "comparisons.png")

# %% [markdown]
# **How to read it.** The first line is the study's claim on this schedule: the prior against no prior.
# The control lines ask whether *the ID* is what helps (or hurts): if the prior beats no prior but not
# its own tower split, it helps by moving sparsity between towers, which a constant "protect vision"
# multiplier would do as well. If it does not beat the shuffled or random multipliers, any spread of
# per-layer multipliers does as much. The allocation lines ask the same of the way OWL and D-Rank use
# their per-layer signals.

# %% [markdown]
# ## A longer schedule, where methods can differ
#
# Today's schedule is close to one-shot pruning: 40 % is reached after about two mask updates and 80 %
# at step 80, and PLATON's moving averages of sensitivity and uncertainty (time constants of about 7
# and 20 steps) have seen 5 steps of gradients when its first mask is drawn. On the first build, no
# prior, the prior and PLATON run again on the same cubic schedule `long_factor` times longer: 800
# steps, 50 dense steps before the first mask, 60 recovery steps at each checkpoint, masks still
# recomputed every 10 steps. PLATON also runs on today's schedule, so each comparison below is paired on
# the same scenes, seeds and sparsities. Three questions: what the longer schedule recovers (longer minus
# today's), whether the methods separate more on it (PLATON minus magnitude on each schedule), and
# whether the prior's verdict holds there. It costs about as much as every other run of this notebook
# together, so further builds and quick runs leave it out, and it decides no claim.

# %%
jobs_long = exp.schedule_jobs(P)   # none on a further build or a quick run (long_factor=0)
schedules = long_results = None
if jobs_long:
    t0 = time.perf_counter()
    runs_long = prune_captioners(cap, train, jobs_long, dense_state, evaluate, batch_size=batch_size,
                                 workers=workers, ids=ids, desc="today's and the longer schedule")
    rows_long, _ = record(runs_long, per_scene)
    long_results = pd.DataFrame(rows_long)[list(results.columns)]
    out.csv(long_results, "schedule_runs.csv")
    schedules = exp.schedule_table(per_scene, exp.seeds(P), control_sparsities)
    out.csv(schedules, "schedule_comparisons.csv")
    print(f"{len(jobs_long)} runs in {time.perf_counter() - t0:.0f} s ({exp.long_schedule(P)['total_steps']} steps "
          f"against {total_steps})")
else:
    print("the longer schedule is not run here (long_factor=0: a further build or a quick run)")

# %%
if long_results is not None:
    both = pd.concat([results[results.method.isin([exp.NONE, exp.PRIOR])], long_results], ignore_index=True)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sns.lineplot(data=both, x="sparsity", y="CIDEr", hue="method", style="method", markers=True, dashes=False,
                 errorbar=("pi", 100), err_style="bars", ax=ax)
    ax.axhline(dense["CIDEr"], color="k", ls="--", lw=1, label="dense")
    ax.set(xlabel="sparsity of prunable Linear weights", ylabel="CIDEr-D (test scenes)",
           title=f"Today's schedule ({total_steps} steps) and {long_factor} times longer")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    out.figure(fig, "schedules_vs_sparsity.png")
    display(schedules[schedules.sparsity == "mean"].drop(columns="sparsity").round(3))

# %% [markdown]
# **How to read it.** A longer schedule gives every pruned model more fine-tuning between mask
# updates, so all runs should move towards the dense line: the first three rows say by how much. If the
# methods only separate when pruning is gradual, PLATON minus magnitude is larger on the longer schedule
# than on today's; if it is not, today's near one-shot regime was not what kept the methods together
# here. The last two rows put the prior's verdict of the section above next to the same comparison on
# the longer schedule.

# %%
headline = out.metrics(exp.headline(rhos, linear_table, validation, comparisons, results, dense_val=dense_val,
                                    dense=dense, n_units=len(units), n_val=len(val), n_test=len(test),
                                    n_seeds=len(exp.seeds(P)), sparsities=control_sparsities, rho_f1=rho_f1,
                                    wall_seconds=time.perf_counter() - t_start,
                                    schedules=schedules, long_factor=long_factor))
pd.Series({k: v for k, v in headline.items() if k not in ("cider_by_run", "id_prior_vs_controls")}).to_frame("value")

# %% [markdown]
# ## What we found
#
# The claims, decided by `vlmid.claims` (the same rules as `results/REPORT.md`). An ID claim is decided
# only where the four estimators agree: when one estimator's interval holds zero or lies on the other
# side, the verdict is *undecided*. On one model build the intervals cover the validation or test scenes
# and the fine-tuning seeds; notebook 07 decides every claim across the shipped builds.

# %%
from vlmid import claims

claims.show("06", headline)
if smoke:
    print("(smoke run: tiny sizes and few steps, the verdicts above mean nothing)")

# %%
print(exp.summary(headline))

# %%
written = out.finish()   # the run is complete: files an earlier run left and this one did not rewrite are removed
print(f"{len(written)} result files in {out.dir}:")
for name, size in written.items():
    print(f"  {name:34s} {size:>10,d} bytes")
