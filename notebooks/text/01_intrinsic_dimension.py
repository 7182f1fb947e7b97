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
# # 01 · Intrinsic dimension per layer: vision, language, fusion
#
# **Question.** How many degrees of freedom does each layer of a vision-language model really use?
# The *intrinsic dimension* (ID) of a layer's representation is the dimension of the manifold its
# outputs lie on, however wide the layer is.
#
# **Claim under test.** The ID-pruning study and its notes (`docs/sources.md`; a summary of Wang,
# Zhang and Ma, "Exploring Intrinsic Dimension for Vision-Language Model Pruning", ICML 2024) claim
# that in BLIP the **visual layers have a high ID (20-450) with a rise-then-fall "hunchback"
# profile, the language layers a low (5-30) and flat one, and the fusion (cross-attention) layers
# lie in between and vary periodically** - and the study uses each layer's ID as a prior for pruning
# (notebook 02).
#
# This notebook builds and validates the estimator (TwoNN), measures it against scikit-dimension,
# then measures the per-layer ID of our BLIP and CLIP, decides the orderings and shapes with intervals
# that resample the images (under each pooling), and writes the per-`nn.Linear` IDs that notebook 02
# multiplies its pruning scores by.

# %% tags=["parameters"]
profile = "tiny"     # "tiny": offline, models trained here | "paper": real checkpoints and datasets
seed = 0
smoke = False        # tiny sizes for the test-suite: the notebook runs in well under a minute
results_dir = None   # None: the repository's results/ (smoke runs: results/smoke/)
device = "auto"      # "auto": CUDA when available, else CPU | "cpu" | "cuda" | "cuda:N"
replicate = False    # True: a further model build of a multi-build run; only what the verdicts read
quick = False        # True: a one-build quick run (run_all.sh --quick, what CI runs): smaller sizes
n_points = 1000      # test images (each with its first reference caption): one point per image
batch_size = 100     # images per forward pass while collecting representations
pooling = "mean"     # one vector per input for the profiles and the per-Linear IDs: "cls", "mean", "flatten"
poolings = ["cls", "mean", "flatten"]  # the poolings compared on one figure
n_bootstrap = 200    # bootstrap resamples of the ratios mu, for the confidence bands
n_resamples = 200    # resamples of the images, shared by all layers: intervals of ID differences
benchmark_sizes = [2000, 5000]  # points (x 768 dims) in the TwoNN vs skdim benchmark
benchmark_repeats = 7           # interleaved rounds; medians, and the speed-up's interval from 7 rounds (98 %)
threads = 1          # torch / BLAS threads (the machine is shared)

# %%
import time
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from vlmid import id as vid
from vlmid.experiments import intrinsic_dimension as exp
from vlmid.harness.paper_inputs import params_from
from vlmid.params.intrinsic_dimension import IntrinsicDimensionParams
from vlmid.paths import seed_everything
from vlmid.harness.results import ResultWriter
P = params_from(IntrinsicDimensionParams, globals())   # checks (and a paper run's inputs), smoke sizes
globals().update(P.namespace())
seed_everything(seed)
torch.set_num_threads(threads)
sns.set_theme(style="whitegrid", context="notebook")
out = ResultWriter("01_intrinsic_dimension", profile=profile, seed=seed, root=results_dir, smoke=smoke, n_points=n_points,
                   pooling=pooling, n_bootstrap=n_bootstrap, n_resamples=n_resamples, threads=threads)
t_start = time.perf_counter()


# %% [markdown]
# ## 1. TwoNN: two neighbours are enough
#
# For each point $i$ let $r_1(i)$ and $r_2(i)$ be the distances to its first and second nearest
# neighbours and $\mu_i = r_2(i)/r_1(i) \ge 1$. If the data lie on a $d$-dimensional manifold
# with roughly constant density at the scale of the neighbours, $\mu$ follows a Pareto law
# (Facco et al. 2017):
#
# $$P(\mu \le x) = 1 - x^{-d} \quad\Longrightarrow\quad -\log\bigl(1 - F(\mu)\bigr) = d\,\log \mu .$$
#
# So $d$ is the slope of a line **through the origin**. The reference fit (Ansuini et al. 2019,
# `skdim.id.TwoNN`) sorts the $N$ ratios, uses the empirical CDF $F_i = i/N$, discards the largest
# 10 % (the tail, where neighbours are far and density is not constant) and solves the least
# squares problem $\hat d = \sum_i x_i y_i / \sum_i x_i^2$ with $x_i = \log \mu_{(i)}$,
# $y_i = -\log(1 - F_i)$. (A plain maximum likelihood $n/\sum \log\mu$ on the kept 90 % is biased
# upwards - the check below prints by how much - so don't.)

# %%
# Exercise 1.1: the TwoNN fit through the origin
def twonn_fit(mu, discard_fraction=0.1):
    # HINT: sort mu, F_i = i/N (i = 1..N), keep the smallest 90 %, least squares of -log(1-F) on log(mu) through 0
    ### BEGIN SOLUTION
    mu_sorted = np.sort(np.asarray(mu, dtype=float))
    n_all = mu_sorted.size
    n_keep = int(n_all * (1 - discard_fraction))
    x = np.log(mu_sorted[:n_keep])
    y = -np.log(1 - np.arange(1, n_keep + 1) / n_all)
    return float(np.dot(x, y) / np.dot(x, x))
    ### END SOLUTION


# %%
# Check 1.1
rng = np.random.default_rng(0)
mu_pareto = (1 - rng.random(5000)) ** (-1 / 6)   # exact Pareto draws with d = 6
assert abs(twonn_fit(mu_pareto) - 6) < 0.5
assert abs(twonn_fit(mu_pareto) - vid.twonn_fit(mu_pareto)) < 1e-9
### BEGIN HIDDEN TESTS
mu_other = (1 - rng.random(777)) ** (-1 / 13)
assert abs(twonn_fit(mu_other, 0.2) - vid.twonn_fit(mu_other, 0.2)) < 1e-9
assert abs(twonn_fit(mu_other[::-1]) - vid.twonn_fit(mu_other)) < 1e-9   # order of the input does not matter
### END HIDDEN TESTS
kept_mu = np.sort(mu_pareto)[: int(0.9 * mu_pareto.size)]
print(f"Pareto draws with d = 6: the fit gives {twonn_fit(mu_pareto):.3f}; a plain maximum likelihood on the "
      f"smallest 90 % gives {kept_mu.size / np.log(kept_mu).sum():.2f}")


# %% [markdown]
# The ratios come from distances. With the matrix of pairwise distances $D$ (zero diagonal), a
# row's two smallest off-diagonal entries are $r_1$ and $r_2$. Our `vlmid.id.nearest_two` never
# holds the whole $N\times N$ matrix: it works in strips of rows, computes only the upper
# triangle (the matrix is symmetric), picks a few candidates per row with float32 matrix products
# and re-measures the winners exactly in float64 - so an exact duplicate gives $r_1 = 0$ (dropped
# and counted: its $\mu$ would be infinite) and a near-duplicate keeps an accurate ratio.

# %%
# Exercise 1.2: the ratio mu from a distance matrix
def mu_from_distances(D):
    # HINT: a point is not its own neighbour: hide the diagonal, then take the two smallest entries per row
    ### BEGIN SOLUTION
    D_off = np.array(D, dtype=float, copy=True)
    np.fill_diagonal(D_off, np.inf)
    two = np.sort(D_off, axis=1)[:, :2]
    return two[:, 1] / two[:, 0]
    ### END SOLUTION


# %%
# Check 1.2
from scipy.spatial.distance import cdist

rng = np.random.default_rng(1)
X_small = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 30))
r1, r2 = vid.nearest_two(X_small)
assert np.allclose(mu_from_distances(cdist(X_small, X_small)), r2 / r1, rtol=1e-9)
### BEGIN HIDDEN TESTS
X_other = rng.standard_normal((120, 3))
q1, q2 = vid.nearest_two(X_other)
assert np.allclose(mu_from_distances(cdist(X_other, X_other)), q2 / q1, rtol=1e-9)
assert np.all(mu_from_distances(cdist(X_other, X_other)) >= 1)
### END HIDDEN TESTS
print(f"mu of 200 points in a 5-D subspace: median {np.median(r2 / r1):.3f}; TwoNN on them: "
      f"{vid.twonn_fit(r2 / r1):.2f}")

# %% [markdown]
# ## 2. Validation on data whose dimension is known
#
# Before trusting it on a network, the estimator must recover known answers: a Gaussian cloud
# in a linear subspace, a sphere $S^4 \subset \mathbb{R}^5$, a solid 6-ball (`skdim.datasets`) and a
# swiss roll (a rolled sheet, $d=2$), with the number of points printed below. TwoNN is known to underestimate as $d$
# grows (the neighbours of a finite sample are not local enough): the 20-D subspace shows how much.
# `skdim.id.TwoNN` on the same points must give the same number.

# %%
from vlmid.id.benchmark import known_dimension_sets, validate_on_known

known = known_dimension_sets(300 if smoke else 1000, seed=seed)   # name -> (points, true dimension)
validation = validate_on_known(known, n_bootstrap=n_bootstrap, seed=seed)
out.csv(validation, "validation_known_dimension.csv")
print(f"{len(next(iter(known.values()))[0])} points per data set")
validation.round(4)

# %% [markdown]
# ## 3. Speed: our TwoNN against scikit-dimension
#
# Both are exact. `skdim.id.TwoNN` computes the float64 distance matrix in chunks and fully sorts
# every row, $O(N^2 D + N^2\log N)$. Ours computes half the matrix in float32, keeps a handful of
# candidates per row and re-measures only those in float64. The variants run round-robin within
# each repeat (a burst of load on the shared machine then hits all of them), with the same number
# of BLAS threads, and the median over repeats is reported. The third variant, the full float32
# distance matrix and nothing else, is the floor a method that computes the whole matrix pays.

# %%
from vlmid.id.benchmark import benchmark_twonn

bench_runs, bench = benchmark_twonn(sizes=benchmark_sizes, dim=768, intrinsic=20, repeats=benchmark_repeats,
                                    n_threads=threads, seed=seed)
out.csv(bench_runs, "benchmark_runs.csv")
out.csv(bench, "benchmark.csv")
bench.round(4)

# %% [markdown]
# The figure shows the median seconds per method at each size (log scale: one message - how far
# ours is below skdim and where it stands against the bare distance matrix).

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
sns.barplot(data=bench_runs, x="n_points", y="seconds", hue="method", estimator="median", errorbar=None, ax=ax,
            hue_order=["vlmid", "skdim", "distance matrix"])
ax.set_yscale("log")
ax.set_xlabel("points (x 768 dimensions)")
ax.set_ylabel("seconds (median, log scale)")
ax.set_title(f"TwoNN on {threads} thread(s): ours vs skdim vs the distance matrix alone")
out.figure(fig, "benchmark.png")

# %% [markdown]
# ## 4. The models and the inputs
#
# One point per test image: its image goes through the vision encoder, and its first reference
# caption is **teacher-forced** through the text side (for BLIP after the prompt, tokenized as in
# training), so the text-decoder and cross-attention layers see real text about that image. CLIP
# gets the same image and caption through its two towers.

# %%
from vlmid.data import load_captions
from vlmid.models import load_captioner, load_clip

cap = load_captioner(profile, seed=seed, smoke=smoke, device=device)
clip = load_clip(profile, seed=seed, smoke=smoke, device=device)
examples = load_captions(profile, "test", n=n_points, seed=seed, smoke=smoke)
n_points = len(examples)  # the test split may hold fewer
print(f"{n_points} test images; BLIP: {sum(p.numel() for p in cap.model.parameters()) / 1e6:.2f} M parameters, "
      f"CLIP: {sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f} M; example caption: {examples[0].captions[0]!r}")
from vlmid.id.benchmark import twonn_rate
from vlmid.harness.plan import model_rates
work = P.plan(len(vid.block_sites(cap.model)), len(vid.block_sites(clip.model)), len(vid.linear_sites(cap.model)))
rates = model_rates([e.image for e in examples[:8]], [e.captions[0] for e in examples[:8]], cap=cap, clip=clip)
rates["twonn fit"] = twonn_rate(n_points, clip.model.config.vision_config.hidden_size, n_bootstrap, seed)
print(work.describe(rates))   # the work from here on, one timed batch per unit

# %% [markdown]
# ## 5. Where we measure, and how a sequence becomes one point
#
# Sites (module paths as `model.named_modules()` names them): each block of BLIP's vision
# encoder (**vision**), each block of its text decoder (**language**) and the cross-attention
# sublayer inside each decoder block (**fusion**); each block of CLIP's vision and text towers.
# A layer outputs one vector per token, $h \in \mathbb{R}^{T\times F}$; TwoNN needs one point per
# input. Three poolings:
#
# * **cls** - the summary token: $h_0$ (CLS) on the image side; on the text side the last real
#   token, since both text towers are causal and their first token has seen only itself;
# * **mean** - $\frac{1}{T}\sum_t h_t$ over real tokens;
# * **flatten** - $[h_1; \dots; h_T] \in \mathbb{R}^{TF}$ (padding zeroed), as the ID pruning code does.
#
# The ID of each layer comes with a 95 % bootstrap band that resamples its ratios $\mu$: how precise
# that layer's estimate is. Whether two layers differ is another question, answered in section 6.

# %%
blip_blocks, clip_blocks = vid.block_sites(cap.model), vid.block_sites(clip.model)
blip_batches = lambda: vid.blip_batches(cap, examples, batch_size)
clip_batches = lambda: vid.clip_batches(clip, examples, batch_size)
n_batches = -(-n_points // batch_size)  # batches per pass, rounded up
features = {  # one forward pass per model keeps every pooling: features[model][pooling][module] -> points x dims
    "BLIP": vid.collect(cap.model, blip_batches(), blip_blocks, pooling=poolings, total=n_batches),
    "CLIP": vid.collect(clip.model, clip_batches(), clip_blocks, pooling=poolings, total=n_batches),
}
profiles = exp.profile_table(features, {"BLIP": blip_blocks, "CLIP": clip_blocks}, poolings, n_bootstrap, seed)
out.csv(profiles, "id_profiles.csv")
blip_prof = profiles[(profiles.model == "BLIP") & (profiles.pooling == pooling)]
clip_prof = profiles[(profiles.model == "CLIP") & (profiles.pooling == pooling)]
blip_prof[["module", "group", "layer", "id", "ci_low", "ci_high", "n_points", "n_dropped", "dims"]].round(2)

# %% [markdown]
# ### The per-layer profiles
#
# The claim under test, in one picture per model: ID against depth for each tower, with the
# bootstrap band (pooling as set by the `pooling` parameter).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
vid.plot_profiles(blip_prof, axes[0], hue_order=["vision", "language", "fusion"], title=f"BLIP ({pooling} pooling)")
vid.plot_profiles(clip_prof, axes[1], hue_order=["vision", "text"], title=f"CLIP ({pooling} pooling)")
fig.suptitle(f"Intrinsic dimension per layer, {n_points} test images, 95 % bootstrap bands")
out.figure(fig, "id_profiles.png")

# %% [markdown]
# ### Does the pooling change the answer?
#
# The same layers under the three poolings. Flattening keeps the position of every token, so
# it measures the spread of whole token maps rather than of one summary vector; the paper's
# numbers were measured that way.

# %%
grid = sns.relplot(data=profiles, x="layer", y="id", hue="group", col="pooling", row="model", kind="line",
                   marker="o", height=2.8, aspect=1.2, col_order=poolings, facet_kws=dict(sharey=False),
                   hue_order=["vision", "language", "fusion", "text"], palette="colorblind")
grid.set_axis_labels("layer (block index within its tower)", "intrinsic dimension (TwoNN)")
for ax in grid.axes.flat:
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
grid.fig.suptitle("Per-layer ID under cls / mean / flatten pooling", y=1.02)
out.figure(grid.fig, "id_pooling.png")
pooling_summary = profiles.groupby(["model", "group", "pooling"], sort=False)["id"].agg(["min", "mean", "max"])
out.csv(pooling_summary.reset_index(), "id_pooling_summary.csv")
pooling_summary.round(2)

# %% [markdown]
# ## 6. Do two layers differ? Intervals that resample the images
#
# Every layer is measured on the same images, so the bands above (each layer's ratios $\mu$
# resampled on their own) cannot say whether two layers differ: their errors are correlated. Here the
# *images* are resampled instead, with replacement, in one draw that every layer and every pooling
# shares. A layer keeps the distinct images drawn, takes each one's two nearest neighbours among them
# (the two smallest off-diagonal entries of its distance matrix restricted to those images) and refits
# TwoNN. Any comparison - a tower's mean ID minus another's, how far an interior layer rises above both
# ends of its tower, the step between two layers of one tower - is computed in every resample, and
# its 95 % interval is the 2.5th to 97.5th percentile of those values. Because the draw is shared,
# the comparisons are paired.
#
# What is compared, per pooling: **vision - fusion** and **fusion - language** (tower means); the
# **hump** of the vision tower, min(ID$_j$ - ID$_\text{first}$, ID$_j$ - ID$_\text{last}$) at the
# interior layer $j$ highest above both ends on all images (a hunchback when its interval lies above
# zero); and for the language and fusion towers the **largest step**, the pair of layers whose
# difference has the interval farthest from zero (a tower is flat when even that interval holds
# zero). Note what "fusion" is here: the cross-attention sublayer inside each text-decoder block,
# whose block output - one feed-forward later - is the "language" site of the same layer.

# %%
resamples = exp.resample_ids(features["BLIP"], blip_blocks, n_resamples, seed)  # {pooling: resamples x sites}
out.csv(exp.resample_table(resamples), "id_resamples.csv")
effects = exp.effects_table(profiles, resamples)
out.csv(effects, "id_effects.csv")
distinct = np.mean([np.unique(d).size for d in vid.draw_images(n_points, n_resamples, seed)])
print(f"{n_resamples} resamples of the {n_points} images: {distinct:.0f} distinct images in each, on average")
effects.round(3)

# %% [markdown]
# The same effects as a figure: a dot is the effect on all images, a bar its 95 % interval over the
# resamples. A bar wholly to the right (left) of the zero line is a difference beyond the noise.

# %%
fig, ax = plt.subplots(figsize=(8, 4.5))
exp.plot_effects(effects, ax)
ax.set_title(f"BLIP, {n_points} test images: tower and layer differences per pooling")
out.figure(fig, "id_effects.png")

# %% [markdown]
# ## 7. Scale: does the ID depend on how closely we look?
#
# TwoNN sees the data at the scale of the second-neighbour distance, which grows as the sample
# shrinks. Re-estimating on disjoint random halves, quarters, ... of the points (DADApy's
# `return_id_scaling_2NN`, Ansuini's block analysis) shows whether the estimate sits on a plateau
# (a trustworthy ID) or drifts (noise inflating it at small scales, curvature lowering it at large).

# %%
scaling = exp.scale_analysis(profiles, features, pooling, n_points, seed)  # the last layer of each tower
out.csv(scaling, "id_scaling.csv")
fig, ax = plt.subplots(figsize=(6.5, 4))
sns.lineplot(data=scaling, x="n_points", y="id", hue="tower", marker="o", ax=ax)
ax.set_xscale("log")
ax.set_xlabel("points per subset (log scale; fewer points = coarser scale)")
ax.set_ylabel("intrinsic dimension (TwoNN, mean over subsets)")
ax.set_title("Scale analysis of the last layer of each tower")
out.figure(fig, "id_scaling.png")

# %% [markdown]
# ## 8. One ID per `nn.Linear`: the pruning prior
#
# The ID pruning method multiplies every weight's score by the ID of its layer, one ID per
# `nn.Linear`, measured on that Linear's output. We record the output of every Linear of BLIP
# (its tied LM head excepted, as in the original code) under the same pooling, on as many
# *training* images as the profiles used test images (a prior measured on the test scenes that
# notebook 02 scores on would let the test set choose the masks), and save
# `linear_ids_blip.csv` (module, id, n_points, group), which `vlmid.id.load_linear_ids` reads
# for notebook 02. The cross-attention's key and value Linears project the *image* tokens, so
# they are pooled over image tokens.

# %%
linear = vid.linear_sites(cap.model)
prior_images = load_captions(profile, "train", n=n_points, seed=seed, smoke=smoke)  # never the scenes 02 scores on
linear_feats = vid.collect(cap.model, vid.blip_batches(cap, prior_images, batch_size), linear, pooling=pooling,
                           total=-(-len(prior_images) // batch_size))
linear_table = vid.layer_ids(linear_feats, linear, n_bootstrap=min(n_bootstrap, 50), random_state=seed)
del linear_feats
out.csv(vid.linear_id_table(linear_table), vid.LINEAR_IDS_FILE)
assert set(vid.load_linear_ids(out.dir)) == {s.name for s in linear}  # what notebook 02 will read
linear_table["kind_of_linear"] = linear_table.module.str.split(".").str[-2:].str.join(".")
fig, ax = plt.subplots(figsize=(8, 4))
sns.stripplot(data=linear_table, x="layer", y="id", hue="group", dodge=True, size=6, ax=ax,
              hue_order=["vision", "language", "fusion"], palette="colorblind")
ax.set_xlabel("block index within its tower")
ax.set_ylabel("intrinsic dimension of the Linear's output")
ax.set_title(f"BLIP: ID of every nn.Linear ({len(linear_table)} modules, {pooling} pooling)")
out.figure(fig, "linear_ids_blip.png")
linear_table.groupby("group")["id"].describe().round(2)

# %% [markdown]
# ## 9. Headline numbers

# %%
widths = {"vision": cap.model.config.vision_config.hidden_size, "text": cap.model.config.text_config.hidden_size}
headline = out.metrics(**exp.headline(bench, profiles, linear_table, resamples, pooling=pooling, n_points=n_points,
                                      widths=widths, wall_seconds=time.perf_counter() - t_start))
layers = blip_prof.groupby("group").layer.nunique()
print(f"BLIP's towers: vision {widths['vision']} wide with {layers['vision']} layers, text decoder "
      f"{widths['text']} wide with {layers['language']} layers")
pd.Series({k: v for k, v in headline.items() if k not in exp.PER_POOLING}).to_frame("value")

# %% [markdown]
# ## What we found
#
# The ID-pruning study's claims about intrinsic dimension, and the estimator target, decided by
# `vlmid.claims` (the same rules as `results/REPORT.md`). Orderings and shapes are decided under each
# pooling the notebook measured, on the intervals of section 6 (resampling the images, paired across
# layers): a claim is reproduced when it holds under every pooling, not reproduced when it fails under
# every one, and undecided otherwise; its measured text names the poolings under which it holds.

# %%
from vlmid import claims

claims.show("01", headline)
if smoke:
    print(f"SMOKE RUN: models trained for a few steps and {n_points} points - these verdicts test the code, not the claim.")

# %% [markdown]
# **How to read it.** Start with the estimator: on data of known dimension TwoNN must return that
# dimension (the validation table), and it must agree with scikit-dimension's implementation, or none of
# the profiles mean anything. Duplicate rows are removed before the neighbour search (the `n_dropped`
# column of the profiles): identical captions give identical points in a tower that sees only text, and
# the ID is that of the distinct points.
#
# *The ordering.* Two comparisons decide it, per pooling: vision minus fusion and fusion minus language
# (section 6 and the measured text). The second is the delicate one. A fusion site is the
# cross-attention sublayer inside a text-decoder block and the language site of the same layer is that
# block's output, one feed-forward later, so the two see almost the same representation; "fusion lies
# in between" counts only where their resampled difference clears zero.
#
# *The shapes.* Our towers are narrow and shallow (widths and depths printed above), so a hunchback
# needs one interior layer above both ends beyond the noise; the measured text gives, per pooling, that
# layer and by how much, and the language tower's largest step between two layers. A language tower
# that is not flat under a pooling fails the claim under that pooling, whatever the vision tower does.
#
# *The ranges* were measured on BLIP-base: a pooled vector cannot have an ID above its width, and ours
# are far narrower, so the verdict says "not testable at this scale" rather than "not reproduced". What
# transfers is the *ordering* between towers, which is also what the pruning prior of notebook 02
# relies on: read the group means of the per-Linear IDs (the table above) as the input of that prior.
# The scale study says whether an ID is still growing with the number of points: if it is, the value
# depends on the sample size, and layers can be compared only at the same number of points, as they are
# here (a resample holds fewer distinct images, printed in section 6, which is why its intervals are
# read as the spread of an estimate, not around its exact value). The pooling table shows how much the
# conclusion depends on how a layer's tokens become one vector.

# %% [markdown]
# ## Files written

# %%
written = out.finish()   # the run is complete: files an earlier run left and this one did not rewrite are removed
print(f"{len(written)} result files in {out.dir}:")
for name, size in written.items():
    print(f"  {name:34s} {size:>10,d} bytes")
