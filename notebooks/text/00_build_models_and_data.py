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
# # 00 · Building the models and the data
#
# **Question.** Do the tiny models solve their tasks by looking at the garments, or by a shortcut?
#
# **Claim under test.** The tiny models have really learned their tasks: the captioner names the
# right garments in the right colours, and the vision features encode the garment, not only its
# colour. Every later notebook measures something *inside* these models (the intrinsic dimension of
# their layers, how much of them can be pruned, how many image tokens they need), and those
# measurements mean something only on a model that has. A captioner that reads colours and counts
# but not garments still scores a high CIDEr-D on these scenes, and would make pruning look harmless
# and flatten intrinsic-dimension profiles. So every quality gate here is one that a shortcut cannot
# pass: whether the captions name the right garments in the right colours, what a linear probe reads
# from the vision features, and zero-shot classification of the garments.
#
# No checkpoint can be downloaded here, so the **tiny profile** has its own: a captioning set made
# from real photos (Fashion-MNIST), and a small `BlipForConditionalGeneration` and `CLIPModel`
# trained on it by this repository (`python -m vlmid.models.build`) and shipped in
# `checkpoints/`, as research repositories ship theirs. With `profile="paper"` the same cells load
# the real checkpoints (BLIP-base, CLIP ViT-B/16), COCO Karpathy and CIFAR-10 instead.

# %% tags=["parameters"]
profile = "tiny"     # "tiny": offline, models trained here | "paper": real checkpoints and datasets
seed = 0
smoke = False        # tiny sizes for the test-suite: the notebook runs in well under a minute
results_dir = None   # None: the repository's results/ (smoke runs: results/smoke/)
device = "auto"      # "auto": CUDA when available, else CPU | "cpu" | "cuda" | "cuda:N"
replicate = False    # True: a further model build of a multi-build run; only what the verdicts read
quick = False        # True: a one-build quick run (run_all.sh --quick, what CI runs): smaller sizes
n_test = 1000        # test images captioned (tiny: all 1000 held-out scenes)
n_zeroshot = None    # zero-shot images (None: all 10000 Fashion-MNIST test photos / CIFAR-10 test)
n_probe = 2000       # test items the linear probes are scored on
n_probe_fit = 5000   # validation items they are fitted on (C chosen on a fifth of them)

# %%
from vlmid.params.build import BuildParams
from vlmid.harness.paper_inputs import params_from   # a paper run checks its inputs first
from vlmid.paths import seed_everything
from vlmid.harness.results import ResultWriter

P = params_from(BuildParams, globals())   # range checks, smoke sizes (smoke models mean nothing)
globals().update(P.namespace())
seed_everything(seed)
if profile == "tiny":  # the shipped models, every file's SHA-256 checked: a damaged one stops here, before anything is written
    from vlmid.models import tiny_folder
    tiny_folder(seed, smoke)
out = ResultWriter("00_build_models_and_data", profile=profile, seed=seed, root=results_dir, smoke=smoke)
print(P.plan().describe())   # the work these parameters imply; its time estimate follows once the models are loaded

# %% [markdown]
# ## The data: captioned scenes from real photos
#
# Each scene places one to three Fashion-MNIST photos (28 x 28, real garments) on a 64 px black
# canvas, each tinted with a colour, scaled and placed at random. A small grammar writes five
# *different* reference captions per scene: synonyms ("sneaker" / "trainer"), word orders ("a red
# bag to the left of a blue coat" / "a blue coat to the right of a red bag"), counts ("two items:
# ...") and spatial relations. Colours are drawn **independently** of the item, so no caption can
# be guessed from colour alone. Train and validation scenes use Fashion-MNIST *train* photos, the
# test scenes its *test* photos. The set is written in the COCO Karpathy format, so the COCO
# evaluation code scores it unchanged.

# %%
import pandas as pd
from vlmid.data import load_captions, load_zeroshot
from vlmid.data.scenes import sample_figure

test = load_captions(profile, "test", n=n_test, seed=seed, smoke=smoke)
fig = sample_figure(test[:8], ncols=4)
out.figure(fig, "sample_scenes.png")
samples = pd.DataFrame([{"image_id": e.image_id, "caption_no": k, "caption": c}
                        for e in test[:8] for k, c in enumerate(e.captions)])
out.csv(samples, "sample_scenes.csv")
print(f"{len(test)} test images, {sum(len(e.captions) for e in test) / len(test):.1f} references each")

# %% [markdown]
# ## The models
#
# Both models are the transformers classes of the study, from small configurations: 64 px images
# cut into 8 px patches (64 patch tokens and a CLS token), 4 vision and 4 text layers of width 128,
# a word-level BERT tokenizer whose vocabulary is the grammar's. They are trained the way the real
# ones are made, in two stages (`vlmid/models/train.py`, the recipe in `vlmid/models/build.py`):
#
# 1. **Vision pre-training.** BLIP and CLIP both start from a pretrained ViT; so do ours. Each
#    vision tower first learns to recognise garments, on freshly rendered scenes of Fashion-MNIST
#    *train* photos: every patch token predicts the garment under it or "background" (token
#    labelling, as in LV-ViT), and the CLS token predicts which garments the image holds
#    (`vlmid/models/pretrain.py`). Token labels give 64 targets per image instead of one; they
#    learned faster than the CLS loss alone in our trials.
# 2. **The task.** BLIP learns to caption with its teacher-forced language-model loss; CLIP aligns
#    single-item images with their captions under the symmetric contrastive loss. The pre-training
#    loss stays on as an auxiliary term and the vision tower learns at half the rate: trained on
#    captions alone, a tower learns the colour words first (they are most of the caption tokens and
#    can be read off a patch's mean colour), and the model we shipped before this recipe named
#    garments at chance.
#
# `load_captioner` / `load_clip` load the shipped models after checking every file's SHA-256
# against `checkpoints/tiny-seed<N>/manifest.json`; they never train silently
# (`bash run_all.sh --rebuild-models` trains from nothing).

# %%
from vlmid.experiments import models_and_data as exp
from vlmid.models import load_captioner, load_clip
from vlmid.harness.plan import model_rates

cap = load_captioner(profile, seed=seed, smoke=smoke, device=device)
clip = load_clip(profile, seed=seed, smoke=smoke, device=device)
build = None
if profile == "tiny":
    from vlmid.models.zoo import manifest_sha256, tiny_build_info
    build = tiny_build_info(seed, smoke)
print(exp.describe_build(build))   # where the models come from and how long they trained
print(P.plan().describe(model_rates([e.image for e in test[:8]], cap=cap, clip=clip)))   # one timed batch per unit
models = exp.model_table(cap, clip)
out.csv(models, "models.csv")
models

# %% [markdown]
# The training curves, from the build record that ships with the models (the tiny profile only):
# the pre-training loss (token-label cross-entropy plus the CLS's garment loss), then BLIP's
# next-word cross-entropy and CLIP's contrastive loss (the mean of the image-to-text and
# text-to-image cross-entropies over a batch; chance is the log of the batch size). On the right,
# what the schedule was chosen on: the accuracy of the pre-training head on single items drawn
# from the *validation* photos.

# %%
import matplotlib.pyplot as plt
import seaborn as sns

if build is not None:
    from vlmid.models.build import training_curves
    curves, val_curve = training_curves(build)
    out.csv(curves, "training_curves.csv")
    out.csv(val_curve, "pretraining_val_accuracy.csv")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    sns.lineplot(data=curves, x="step", y="loss", hue="model", style="stage", ax=axes[0])
    axes[0].set(xlabel="training step (pre-training, then the task)", ylabel="training loss (nats)",
                title="The tiny models' training losses")
    sns.lineplot(data=val_curve, x="step", y="accuracy", hue="model", marker="o", ax=axes[1])
    axes[1].set(xlabel="pre-training step", ylabel="single-item val accuracy (fraction)", ylim=(0, 1),
                title="Garments recognised during pre-training")
    out.figure(fig, "training_curves.png")

# %% [markdown]
# ## Exercise: the contrastive loss
#
# CLIP scores every image against every caption of a batch of $N$ pairs with the cosine similarity
# of their normalised embeddings, scaled by a learned temperature $\tau = e^{s}$:
# $$ L_{ij} = e^{s}\, \frac{u_i \cdot v_j}{\lVert u_i\rVert\,\lVert v_j\rVert}, \qquad
# \mathcal{L} = \tfrac12\Big(\tfrac1N\sum_i -\log \operatorname{softmax}_j(L_{ij})_{j=i}
# + \tfrac1N\sum_j -\log \operatorname{softmax}_i(L_{ij})_{i=j}\Big). $$
# The matching pair sits on the diagonal; every other caption in the batch is a negative.
#
# The check below is worth 1 point when the notebook is graded (nbgrader adds tests you do not see).

# %%
# Exercise 0.1: CLIP's symmetric contrastive loss
import torch
import torch.nn.functional as F

def clip_contrastive_loss(image_embeds, text_embeds, logit_scale):
    # HINT: normalise both, logits = exp(logit_scale) * image @ text.T, cross-entropy with targets
    #       arange(N) along both directions, average the two
    ### BEGIN SOLUTION
    u = F.normalize(image_embeds, dim=-1)
    v = F.normalize(text_embeds, dim=-1)
    logits_it = logit_scale.exp() * u @ v.T
    target = torch.arange(len(u))
    return 0.5 * (F.cross_entropy(logits_it, target) + F.cross_entropy(logits_it.T, target))
    ### END SOLUTION


# %%
# Check 0.1
zs_check = load_zeroshot(profile, n=8, seed=seed)
texts = [zs_check.templates[0].format(zs_check.classnames[y]) for y in zs_check.labels]
with torch.no_grad():
    o = clip.model(pixel_values=clip.pixel_values(zs_check.images), **clip.text_inputs(texts), return_loss=True)
    mine = clip_contrastive_loss(o.image_embeds, o.text_embeds, clip.model.logit_scale)
assert torch.allclose(mine, o.loss, atol=1e-4), (float(mine), float(o.loss))
### BEGIN HIDDEN TESTS
e = torch.eye(4)
assert clip_contrastive_loss(e, e, torch.tensor(10.0)) < 1e-3          # perfect alignment: loss ~ 0
assert abs(float(clip_contrastive_loss(e, torch.ones(4, 4), torch.tensor(0.0))) - float(torch.log(torch.tensor(4.0)))) < 1e-5
### END HIDDEN TESTS
print(f"contrastive loss on 8 zero-shot pairs: {float(mine):.3f} (transformers: {float(o.loss):.3f})")

# %% [markdown]
# ## Captioning quality, beside trivial baselines
#
# The captioner decodes every held-out test image with BLIP's settings (beam search, 3 beams, at
# most 20 tokens, at least 5) and pycocoevalcap scores it against the five references (CIDEr is
# CIDEr-D, on its own scale: about 1.3 for BLIP-base on COCO). Two baselines show what the metrics
# give for free: one constant caption (the most frequent reference) for every image, and the
# caption of a random *other* image. A captioner that looks at the image must beat both by far.

# %%
from vlmid.metrics import constant_caption_baseline, evaluate_captioner, random_caption_baseline

scores = evaluate_captioner(cap, test, return_predictions=True)
preds = scores.pop("predictions")
const = constant_caption_baseline(test)
rand = random_caption_baseline(test, seed=seed)
caption_quality = exp.caption_table("tiny BLIP" if profile == "tiny" else "BLIP-base", scores, const, rand)
out.csv(caption_quality, "caption_quality.csv")
out.csv(pd.DataFrame([{"image_id": e.image_id, "prediction": preds[e.image_id], "reference": e.captions[0]}
                      for e in test]), "caption_predictions.csv")
if scores.get("SPICE") is None:
    print("SPICE: not computed (its CoreNLP jars are not on this machine)")
print(f"decoding: {cap.generation}, prompt {cap.prompt!r}, {scores['n_images']} images")
caption_quality.round(3)

# %%
# a few test scenes with the model's caption
for e in test[:6]:
    print(f"{preds[e.image_id]!r:60}  ref: {e.captions[0]!r}")

# %% [markdown]
# ## Does it name what it sees? The grounded caption score
#
# CIDEr-D rewards every word a caption shares with its references, and on these scenes most words
# are colours, counts and grammar. So we read each caption back with the grammar's own vocabulary
# (`vlmid/metrics/grounding.py`: synonyms merged, position words never taken for garments) and
# compare it with the scene's true items:
#
# - **garment precision / recall / F1**: the garments named vs the garments present, as multisets
#   ("two trousers" is two), summed over all scenes;
# - **binding accuracy**: the right colour on the right garment, (garment, colour) pairs matched,
#   over the larger of the true and the named item counts (naming an extra item costs);
# - **count accuracy**: the number of items the caption states;
# - **scene exact**: garments, colours and count all right.
#
# Beside the model, the same two baselines and a **shortcut oracle**: a caption with the true
# colours and count of every scene but always the same garment, which is what a model that reads
# only colour and count can at best write. It shows how far CIDEr-D alone can be fooled.

# %%
if profile == "tiny":
    from vlmid.data.scenes import scene_items

    items = scene_items("test", n=n_test, seed=seed, smoke=smoke)   # what each test scene really holds
    grounded = exp.grounded_table(test, items, preds, scores, const, rand, seed=seed)
    out.csv(grounded, "grounded_scores.csv")
    display(grounded.round(3))
else:
    grounded = None
    print("paper profile: COCO has no item labels; the grounded score is defined on the scenes only")

# %% [markdown]
# ## Zero-shot classification
#
# The CLIP classifies each Fashion-MNIST test photo (one untinted item, centred, as during
# training) by comparing its image embedding with the embeddings of the 10 class names filled into
# several prompt templates and averaged (prompt ensembling):
# $\hat y = \arg\max_c \langle \hat u, \hat t_c\rangle$ with $t_c = \frac1K\sum_k \hat v(\text{template}_k(c))$.
# Chance is 10 %. (Paper profile: CIFAR-10 test.)

# %%
from vlmid.models import quality

zs = load_zeroshot(profile, n=n_zeroshot, seed=seed)
per_class = quality.zeroshot_table(clip, zs)   # right predictions per class (prompt ensembling): the gate's one measure
top1 = quality.zeroshot_top1(per_class)        # over all images
out.csv(per_class, "zeroshot_per_class.csv")
fig, ax = plt.subplots(figsize=(7, 3.2))
sns.barplot(data=per_class, x="class", y="top-1", color="tab:blue", ax=ax)
ax.axhline(top1, ls="--", c="k", lw=1, label=f"all classes {top1:.2f}")
ax.set(xlabel="Fashion-MNIST class" if profile == "tiny" else "CIFAR-10 class", ylabel="zero-shot top-1 (fraction)",
       title="Zero-shot accuracy by class")
ax.tick_params(axis="x", rotation=30); ax.legend()
out.figure(fig, "zeroshot_per_class.png")
print(f"zero-shot top-1 on {len(zs)} images with {len(zs.templates)} templates: {top1:.3f}")

# %% [markdown]
# ## What do the vision features encode? Linear probes
#
# The shortcut test. Single Fashion-MNIST items are shown at a random colour, size and place; a
# logistic regression on each tower's frozen CLS feature predicts the item class and, separately, its
# colour. A tower that learned only colour would probe near 100 % for colour and near chance (10 %)
# for the item. The protocol is the standard one of linear probes (as in the CLIP paper): the probe is
# fitted on items from the validation photos, which no model trained on, its penalty C is chosen on a
# held-out fifth of them, and it is scored on items from the test photos (`vlmid/models/probe.py`).

# %%
from vlmid.models.probe import probe_metrics, probe_towers

probes = probe_towers({"BLIP vision": (cap.model.vision_model, cap.pixel_values),
                       "CLIP vision": (clip.model.vision_model, clip.pixel_values)}, n_probe_fit, n_probe, seed)
out.csv(probes, "linear_probes.csv")
fig, ax = plt.subplots(figsize=(6, 3.2))
sns.barplot(data=probes, x="tower", y="accuracy", hue="probe target", ax=ax)
ax.set(xlabel="", ylabel="test accuracy of the probe (fraction)", ylim=(0, 1), title="What the CLS feature encodes")
out.figure(fig, "linear_probes.png")
probes.round(3)

# %% [markdown]
# ## Headline numbers

# %%
from vlmid.models.zoo import build_records

records = build_records() if profile == "tiny" else []   # every shipped build, by seed: none left out
sha = manifest_sha256(seed) if build is not None and build["source"] == "shipped" else None
metrics = out.metrics(exp.headline(scores, const, rand, grounded, per_class, probes, models, build, sha,
                                   records=records, seed=seed))
pd.Series(metrics)

# %% [markdown]
# ## Every build of the recipe
#
# A model trained once is one draw from its recipe: another random seed gives other initial weights,
# another order of the scenes, other models. Every later notebook measures something *inside* these
# models, so the question is not whether this one build passes its gates but whether the recipe does.
# The repository therefore ships several builds of the same recipe side by side
# (`checkpoints/tiny-seed<N>/`, each made by `python -m vlmid.models.build --seed N --publish`), and
# this section reports every one of them.
#
# **No selection.** Each shipped build has a row, sorted by seed, with the gates its manifest recorded
# when it was built (the same measures on the same full test data as above). No build is retrained
# until it passes, and none is left out: a build below a floor is named in "below a floor", and it
# counts in the mean like the others. The models this notebook loaded get a second row, re-measured
# here just now; it must give its manifest's values (equal on the CPU that built them, within 0.011 on
# another vector unit) and "check" says by how much they differ, or why the two cannot be compared. In
# a smoke run that row is the smoke model's, labelled so, and never counted.
#
# **Floors on the mean.** The gates are floors of the *recipe*, so the claims below read the mean over
# the builds, neither the best build nor the worst. Beside each mean: the sample standard deviation
# (ddof 1), the min and max, and how many builds pass the floor on their own. How to read the spread:
# set a gate's range (max - min) beside the margin of its mean over its floor. A gate whose builds
# span more than that margin is one the next build may well miss; the gate whose builds lie furthest
# apart relative to its floor is named below the table. With a single build there is no spread to
# report: its sd is empty, and the claims say they were decided on one build.

# %%
builds = exp.builds_table(records, metrics, seed, metrics["model_source"],
                          cpu=torch.backends.cpu.get_cpu_capability())   # one row per build, and this run's
across = exp.across_builds(builds)   # each gate over the builds in the mean: mean, sd, min, max, range
out.csv(builds, "quality_by_build.csv")
out.csv(across, "quality_across_builds.csv")
print(exp.describe_spread(builds, across))
display(builds.round(4))
across.round(4)

# %%
floored = [g for g in exp.GATES if g.at_least]   # the gates on a 0-1 scale (the build time is in the table)
counted = builds[builds["in the mean"]].melt(id_vars="seed", value_vars=[g.key for g in floored],
                                               var_name="gate", value_name="value")
if len(counted):
    counted["gate"] = counted["gate"].map(lambda k: exp.GATE[k].label)
    fig, ax = plt.subplots(figsize=(9, 3.4))
    sns.stripplot(data=counted, x="gate", y="value", hue="seed", palette="tab10", size=7, ax=ax)
    ax.scatter(range(len(floored)), [g.bound for g in floored], marker="_", s=900, c="tab:gray", label="floor")
    means = counted.groupby("gate", sort=False)["value"].mean()
    ax.scatter(range(len(means)), means, marker="X", s=90, c="k", label="mean over builds")
    ax.set(xlabel="", ylabel="gate value (fraction)", title="Every build's quality gates, floors on the mean")
    ax.tick_params(axis="x", rotation=20)
    ax.legend(title="build (seed)", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    out.figure(fig, "quality_by_build.png")

# %% [markdown]
# ## What we found
#
# The table below is decided by `vlmid.claims`, the same rules as `results/REPORT.md`: each quality
# gate on the mean over every build above, beside what was measured here. How to read it: CIDEr-D
# alone cannot tell a model that sees the garments from one that reads colours and counts (compare the
# shortcut oracle's CIDEr-D with the model's in the grounded table above); the garment F1, the binding
# accuracy and the item-class probes can. Where a gate is missed, the later notebooks study a model
# that names some garments wrongly, and their verdicts should be read with that in mind. The second
# table checks that the shipped models measure here what their manifest recorded when they were built.

# %%
from vlmid import claims

if smoke:
    print("SMOKE RUN: the models were trained for a few steps; these numbers only prove the code runs.")
claims.show("00", metrics)
same = exp.build_vs_here(build, metrics)   # the gates at build time (vlmid.models.quality) and here: equal
if same is not None:
    out.csv(same, "build_vs_here.csv")
    display(same.round(4))

# %% [markdown]
# ## Files written

# %%
written = out.finish()   # the run is complete: files an earlier run left and this one did not rewrite are removed
print(f"{len(written)} result files in {out.dir}:")
for name, size in written.items():
    print(f"  {name:34s} {size:>10,d} bytes")
