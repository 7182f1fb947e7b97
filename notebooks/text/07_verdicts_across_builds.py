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
# # 07 · Verdicts across model builds
#
# **Question.** Notebooks 01-06 each decide their claims on a trained model. If we trained the same
# models again from another random seed, with the same recipe, would the verdicts stand?
#
# **Why it matters.** A trained network is one draw from its training recipe: its initial weights, the
# order of its batches and the scenes it was trained on all come from a random seed. The intervals of
# notebooks 01-06 resample test images (and, in notebook 02, fine-tuning seeds), so they answer "how
# sure are we about *this* model?". A reproduction asks a different question: "how sure are we about
# *models trained this way*?". Its unit is the trained model. Deep-learning papers answer it by training
# several times and reporting the spread over the runs (Bouthillier et al. 2021, "Accounting for
# variance in machine learning benchmarks"; Picard 2021, "torch.manual_seed(3407) is all you need").
# Here every shipped build of the tiny BLIP and CLIP (`checkpoints/tiny-seed<N>/`, the same recipe,
# trained from seeds 0, 1, ...) went through notebooks 01-06. This notebook pools them.
#
# **How a verdict is pooled.** Each build's notebook wrote its effects (for example "the ID prior's
# CIDEr-D gain at 40 % sparsity") already averaged over its own test images and fine-tuning seeds. So
# the spread of the K builds' estimates holds every source of noise at once: the build, the seeds and
# the images. The pooled effect is their mean. Its 95 % interval is Student's,
# mean ± t(K−1) · s / √K. Resampling only the top level of nested data is what Ren et al. (2010,
# "Nonparametric bootstrapping for hierarchical data") recommend. With five builds, a bootstrap of five
# values would give an interval about 30 % too narrow, so we use Student's interval instead
# (`vlmid.uncertainty.across_builds`). The claim's own rule then runs unchanged on the pooled numbers.
# A comparison is *reproduced* or *not reproduced* only when its interval across builds excludes zero.
# Beside each verdict stands its **stability**: how many builds, on their own, point the same way.

# %% tags=["parameters"]
profile = "tiny"     # "tiny": offline, models trained here | "paper": real checkpoints and datasets
seed = 0
smoke = False        # tiny sizes for the test-suite
results_dir = None   # None: the repository's results/ (smoke runs: results/smoke/)
device = "auto"      # unused here: this notebook only reads what notebooks 01-06 wrote
replicate = False    # unused here: notebook 07 runs once, over every build
quick = False        # unused here: notebook 07 runs once, over every build
builds = None        # model builds to pool, e.g. "0,1,2,3,4" (None: those of the last run, results/manifest.json)

# %%
import pandas as pd

from vlmid import claims
from vlmid.experiments import across_builds as exp
from vlmid.harness.paper_inputs import params_from
from vlmid.harness.results import ResultWriter
from vlmid.params.across_builds import AcrossBuildsParams

P = params_from(AcrossBuildsParams, globals())
globals().update(P.namespace())
out = ResultWriter(exp.STEM, profile=profile, seed=seed, root=results_dir, smoke=smoke, builds=builds)
root = out.final.parent   # every build's results live below the same results folder
per_build = exp.collect(root, builds)   # notebook -> the metrics.json of each build, in build order
print(f"{len(builds)} build(s): seeds {builds}; notebooks {sorted(per_build)}")

# %% [markdown]
# ## Two exercises: the interval across builds, and how many builds agree
#
# Before the pooled table, write the two numbers it rests on. Given each build's own estimate of an
# effect, compute their mean and Student's 95 % interval, then count the builds whose estimate has the
# sign of the verdict.
#
# Each check is worth 1 point when the notebook is graded (nbgrader adds tests you do not see).

# %%
# Exercise 7.1: Student's interval over the builds
import math
import numpy as np
from scipy.stats import t as student_t

def interval_across_builds(estimates, level=0.95):
    """(mean, low, high) of the builds' own estimates: mean +- t(K-1) * s / sqrt(K)."""
    # HINT: s is the sample standard deviation (ddof=1); the quantile is student_t.ppf((1 + level) / 2, K - 1)
    ### BEGIN SOLUTION
    x = np.asarray(estimates, dtype=float)
    mean = float(x.mean())
    half = student_t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    ### END SOLUTION
    return mean, mean - half, mean + half


# %%
# Check 7.1
from vlmid.uncertainty import across_builds

mean, low, high = interval_across_builds([0.03, -0.01, 0.02, 0.04, 0.01])
ref = across_builds([0.03, -0.01, 0.02, 0.04, 0.01])
assert abs(mean - 0.018) < 1e-12 and abs(low - ref.low) < 1e-9 and abs(high - ref.high) < 1e-9, (mean, low, high)
### BEGIN HIDDEN TESTS
for xs in ([1.0, 2.0], [0.5, -0.2, 0.1, 0.9, 0.3, -0.4, 0.0]):
    m, lo, hi = interval_across_builds(xs, level=0.9)
    r = across_builds(xs, level=0.9)
    assert abs(m - r.diff) < 1e-12 and abs(lo - r.low) < 1e-9 and abs(hi - r.high) < 1e-9
### END HIDDEN TESTS
print(f"Check 7.1 passed: {mean:+.3f} [{low:+.3f}, {high:+.3f}] over 5 builds")


# %%
# Exercise 7.2: how many builds agree
def builds_agreeing(estimates, low, high):
    """Builds whose estimate has the verdict's sign: +1 when the interval [low, high] lies above 0, -1 when
    below; when it holds 0 (undecided), the sign of the mean of the estimates."""
    # HINT: work out the sign first; a build at exactly 0 agrees with neither sign
    ### BEGIN SOLUTION
    sign = 1 if low > 0 else -1 if high < 0 else int(np.sign(np.mean(estimates)))
    return sum(1 for e in estimates if sign != 0 and np.sign(e) == sign)
    ### END SOLUTION


# %%
# Check 7.2
assert builds_agreeing([0.03, -0.01, 0.02, 0.04, 0.01], 0.001, 0.035) == 4
assert builds_agreeing([0.5, -0.4, 0.3, -0.2, 0.1], -0.4, 0.5) == 3   # undecided: the mean (+0.06) decides the sign
### BEGIN HIDDEN TESTS
for xs in ([-0.2, -0.3, -0.25, 0.02, -0.15], [0.1, 0.0, -0.1, 0.2], [0.0, 0.0]):
    r = across_builds(xs)
    assert builds_agreeing(xs, r.low, r.high) == r.stability, xs
### END HIDDEN TESTS
print("Check 7.2 passed")

# %% [markdown]
# ## Every claim, pooled
#
# One row per claim or target of notebooks 01-06. *measured* and *verdict* are decided on the pooled
# headline. *builds_agreeing* says, for a comparison, how many builds' own effect has the sign of the
# verdict (of the mean, when undecided); for any other claim, how many builds alone reach the pooled
# verdict. The last columns give what the first build alone said, the one-model answer this repository
# gave before. A *changed* row is a verdict that one trained model would have decided differently.

# %%
table = exp.verdict_table(per_build, builds)
out.csv(table, "verdicts_across_builds.csv")
pooled = exp.pool_all(per_build)
out.json(pooled, exp.POOLED)   # what the report decides on
pd.set_option("display.max_colwidth", 70)
table[["notebook", "kind", "claim", "verdict", "builds_agreeing", "first_build_verdict", "changed"]]

# %% [markdown]
# ## The effects, build by build
#
# Each comparison a claim reads, with every build's own estimate and interval (over its test images and
# seeds) and the pooled estimate with its interval across builds. When the builds' own intervals do not
# overlap, the model is the largest source of noise, and a single build's interval is too narrow for the
# question a reproduction asks.

# %%
import matplotlib.pyplot as plt

effects = exp.effect_table(per_build, builds)
out.csv(effects, "effects_across_builds.csv")
names = list(dict.fromkeys(zip(effects.notebook, effects.effect)))
fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
for y, (n, key) in enumerate(names):
    rows = effects[(effects.notebook == n) & (effects.effect == key)]
    per, pooled_row = rows[rows.build != "pooled"], rows[rows.build == "pooled"].iloc[0]
    ax.plot(per.value, [y] * len(per), "o", color="C0", alpha=0.6, ms=4)
    if pd.notna(pooled_row.low):
        ax.plot([pooled_row.low, pooled_row.high], [y, y], color="C3", lw=2)
    ax.plot(pooled_row.value, y, "D", color="C3", ms=5)
ax.axvline(0, color="k", lw=0.8)
ax.set_yticks(range(len(names)), [f"{n} {k}" for n, k in names], fontsize=7)
ax.set(xlabel="effect (its own units)", title="Each build (dots) and the pooled effect with its 95 % interval across builds")
out.figure(fig, "effects_across_builds.png")

# %% [markdown]
# ## ID against prunability, every build
#
# Notebook 06's central figure with every build at once: each faint point is one unit of one build, each
# large point a unit's mean over the builds (TwoNN ID; CIDEr-D lost when the unit alone is pruned). A
# claim that ID predicts prunability should show the same rising order in every build, inside each colour.

# %%
from vlmid.experiments import id_prunability as idp

units_all = idp.unit_tables(root, builds)
if units_all is not None:
    out.csv(units_all, "unit_tables_across_builds.csv")
    mean_units = units_all.groupby(["unit", "group"], as_index=False)[["id_TwoNN", "loss"]].mean()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for k, tower in enumerate(idp.TOWERS):
        part, mean_part = units_all[units_all.group == tower], mean_units[mean_units.group == tower]
        ax.scatter(part.id_TwoNN, part.loss, color=f"C{k}", alpha=0.25, s=15)
        ax.scatter(mean_part.id_TwoNN, mean_part.loss, color=f"C{k}", s=60, edgecolor="k", label=tower)
    ax.set(xlabel="unit ID (TwoNN, training images)", ylabel="CIDEr-D lost when the unit alone is pruned",
           title=f"ID against prunability, {len(builds)} build(s): faint, each build; large, their mean")
    ax.legend()
    out.figure(fig, "id_vs_prunability_across_builds.png")
else:
    print("notebook 06 has not run on these builds")

# %% [markdown]
# ## What one model would have said
#
# The verdicts that pooling moved, with both answers. A verdict that moves is one the single build
# could not support. That is not a failure of the build: its interval over test images answered a
# narrower question.

# %%
changed = table[table.changed]
print(f"{len(changed)} of {len(table)} verdicts differ from the first build's alone")
changed[["notebook", "claim", "first_build_measured", "first_build_verdict", "measured", "verdict"]]

# %% [markdown]
# ## How many builds are enough?
#
# Notebook 02's central comparison, the ID prior's gain at 40 % sparsity, should be known to within
# ±0.04 CIDEr-D. With the spread the builds show, `vlmid.uncertainty.builds_needed` gives the number of
# builds that would bring Student's interval to that half-width: the power estimate of this study. A
# narrower interval cannot come from more test images. Each build's images are already averaged into
# its estimate; only more builds shrink the spread of the mean.

# %%
headline = out.metrics(exp.headline(table, per_build, builds))
claims.show("07", headline)
if smoke:
    print("(smoke run: tiny sizes and few steps, the verdicts above mean nothing)")

# %%
written = out.finish()   # the run is complete: files an earlier run left and this one did not rewrite are removed
print(f"{len(written)} result files in {out.dir}")
