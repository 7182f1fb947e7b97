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
# # 05 · Quantization, layer dropping and low-rank factorization: size, speed and quality on one model
#
# **Question.** Which way of shrinking a trained vision-language model keeps the most captioning
# quality per byte, and which one actually makes it faster?
#
# **Claims under test** (the compression slides, see `docs/sources.md`): comparing bitsandbytes
# 8-bit and 4-bit quantization, deleting half of the decoder layers followed by fine-tuning, and SVD
# factorization of every Linear by retained variance (80 %, 50 %, last layers kept dense) across
# several large VLMs, scored with BERTScore, the slides conclude that **quantization is best for
# memory but does not make inference faster**, that **dropping layers and fine-tuning keeps most of
# the quality** and is a bit faster, and that **low-rank factorization is neither small nor fast**
# (with garbage output at 50 %).
#
# Here we run that comparison on one model with one evaluation (CIDEr-D and a MiniLM semantic score
# in BERTScore's spirit; zero-shot accuracy for CLIP), with sizes counted in real stored bytes and
# latency measured with notebook 03's protocol, and go past it in two ways: an activation-aware
# factorization (ASVD / SVD-LLM whitening) compared with plain SVD at *equal* size, and low rank
# followed by int8, the combination the slides proposed as future work.

# %% tags=["parameters"]
profile = "tiny"     # "tiny": offline, models trained here | "paper": real checkpoints and datasets
seed = 0
smoke = False        # tiny sizes for the test-suite: the notebook runs in well under a minute
results_dir = None   # None: the repository's results/ (smoke runs: results/smoke/)
device = "auto"      # "auto": CUDA when available, else CPU | "cpu" | "cuda" | "cuda:N"
replicate = False    # True: a further model build of a multi-build run; only what the verdicts read
quick = False        # True: a one-build quick run (run_all.sh --quick, what CI runs): smaller sizes
n_test = 200                     # test images captioned by every method (CIDEr's IDF comes from them)
n_train = 1000                   # training examples: calibration (activation statistics) and fine-tuning
n_calib = 128                    # calibration examples for the activation-aware factorization
energies = [0.9, 0.8, 0.6, 0.5]  # retained spectral energy of the low-rank variants (four sizes)
mid_energy = 0.8                 # the size reported in metrics.json (svd_plain_cider, svd_aware_cider)
keep_last_dense = 1              # last decoder layers not factorized (the compression slides: else garbage); the LM head never is
finetune_steps = 120             # fine-tune after dropping every second decoder layer (and of the fp32 control)
finetune_lr = 3e-5               # small: the model is already trained; 1e-4 cost the fp32 control 0.09 CIDEr
finetune_batch = 32
n_zeroshot = 500                 # zero-shot images for CLIP
latency_batch = 8                # images per timed call
latency_repeats = 6              # interleaved timing rounds after one warm-up (6: a 97 % interval of the median)
threads = 1                      # torch threads (the machine is shared; recorded in provenance)
qwen2vl = None                   # run the Qwen2-VL-2B section (None: in the paper profile; it needs its weights)

# %%
import warnings
warnings.filterwarnings("ignore", message=".*kernels.*")        # bitsandbytes: optional hub package, not installed
warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.ao.quantization is deprecated (still works)
import torch
from vlmid.params.compression import CompressionParams
from vlmid.harness.paper_inputs import params_from   # a paper run checks its inputs first
from vlmid.paths import seed_everything
from vlmid.harness.results import ResultWriter

P = params_from(CompressionParams, globals())   # range checks, smoke sizes, n_calib = min(n_calib, n_train)
globals().update(P.namespace())
seed_everything(seed)
torch.set_num_threads(threads)
out = ResultWriter("05_quantization_lowrank", profile=profile, seed=seed, root=results_dir, smoke=smoke,
                   threads=threads)

# %% [markdown]
# ## The model, the data and the yardsticks
#
# We compress the captioner of notebook 00 (a `BlipForConditionalGeneration`; BLIP-base in the paper
# profile) and the CLIP model (for zero-shot accuracy). Captions are decoded with the same beam
# search for every method (the settings are recorded). CIDEr-D is computed on `n_test` test images;
# since its IDF comes from the evaluated references, only numbers within this table are comparable.
# The semantic score is the mean over images of the best cosine between the MiniLM embedding of the
# caption and those of its references, BERTScore's idea with a sentence encoder. Two trivial
# captioners give the floor: one constant caption, and a random other image's caption.

# %%
import pandas as pd
from vlmid.compress import quantize, lowrank, layerdrop, bench
from vlmid.data import load_captions, load_zeroshot
from vlmid.data.scenes import scene_items
from vlmid.experiments import compression as exp
from vlmid.metrics import constant_caption_baseline, random_caption_baseline
from vlmid.models import load_captioner, load_clip

cap, clip = (load(profile, seed=seed, smoke=smoke, device=device) for load in (load_captioner, load_clip))
test = load_captions(profile, split="test", n=n_test, seed=seed, smoke=smoke)
test_items = scene_items("test", n=n_test, seed=seed, smoke=smoke) if profile == "tiny" else None   # true items (COCO: none)
train = load_captions(profile, split="train", n=n_train, seed=seed, smoke=smoke)
zs = load_zeroshot(profile, n=n_zeroshot, seed=seed)
ad = bench.CaptionerAdapter(cap, calib=train[:n_calib], timing_images=[e.image for e in test[:latency_batch]])  # every method's start
baselines = pd.DataFrame([{"captioner": "constant caption", **constant_caption_baseline(test)},
                          {"captioner": "random other caption", **random_caption_baseline(test, seed=seed)}])
print(f"device {device}; {len(test)} test images, {len(train)} training examples, {len(zs)} zero-shot images")
print("decoding:", cap.generation, "| prompt:", repr(cap.prompt))
baselines[["captioner", "CIDEr", "BLEU-4"]].round(3)

# %% [markdown]
# ## Counting bytes, not parameters
#
# A method's size is what it really stores: every tensor of the state dict once (tied weights once),
# codes at their true width and every scale, code book and metadata tensor included. For a Linear
# with $n = d_\text{in} d_\text{out}$ weights and $d_\text{out}$ biases:
#
# $$\text{fp32: } 4n + 4d_\text{out},\qquad \text{LLM.int8: } n + 4d_\text{out} + 4d_\text{out} + 1,\qquad
# \text{nf4: } \tfrac{n}{2} + 4\tfrac{n}{64} + 4\cdot 16 + 4 d_\text{out} + \text{metadata},$$
#
# since bitsandbytes' int8 keeps one fp32 absmax per row and nf4 one fp32 absmax per block of 64
# weights plus its 16-level code book; PyTorch's per-channel int8 keeps a float64 scale and an int64
# zero point per row. On one real layer of the decoder:

# %%
import copy
layer_name = f"{layerdrop.decoder_layers_path(cap.model)}.0.intermediate.dense"   # the first decoder MLP layer
one = torch.nn.Sequential(copy.deepcopy(cap.model.get_submodule(layer_name))).cpu().float()
lin = one[0]   # a CPU copy of the layer, used again below
formats = {"fp32": one, "bf16": quantize.to_bf16(one), "int8 dynamic (torch.ao)": quantize.quantize_int8_dynamic(one),
           "bnb LLM.int8": quantize.quantize_bnb(one, "int8", device="cpu"), "bnb nf4": quantize.quantize_bnb(one, "nf4", device="cpu")}
layer_bytes = pd.DataFrame([{"format": k, "bytes": quantize.stored_bytes(m),
                             "ratio_to_fp32": quantize.stored_bytes(m) / quantize.stored_bytes(one)} for k, m in formats.items()])
out.csv(layer_bytes, "bytes_one_layer.csv")
print(f"{layer_name}: {one[0].in_features} -> {one[0].out_features}")
layer_bytes.round(3)


# %% [markdown]
# ## Low rank: how much rank does a retained-energy rule keep?
#
# The compression slides factorized each $W \in \mathbb{R}^{d_\text{out}\times d_\text{in}}$ by SVD, $W \approx U_r S_r V_r^\top$,
# choosing per layer the smallest rank that keeps a fraction $e$ of the spectrum's energy,
#
# $$r(W) = \min\Big\{ r : \sum_{i\le r} s_i^2 \ge e \sum_i s_i^2 \Big\}.$$
#
# Two Linears store $r(d_\text{in}+d_\text{out})$ weights, fewer than $d_\text{in}d_\text{out}$ only if
# $r < d_\text{in}d_\text{out}/(d_\text{in}+d_\text{out})$: half the width for a square matrix. Layers above
# that break-even are kept dense. Re-implement the rank rule:

# %%
# Exercise 5.1: the retained-energy rank
def energy_rank(singular_values, energy):
    # HINT: square the singular values, cumulative sum over the total, first index reaching `energy`, plus one
    ### BEGIN SOLUTION
    e2 = torch.as_tensor(singular_values, dtype=torch.float64) ** 2
    frac = torch.cumsum(e2, 0) / e2.sum()
    return int((frac < energy - 1e-12).sum().item()) + 1
    ### END SOLUTION


# %%
# Check 5.1
assert energy_rank(torch.tensor([4.0, 3.0, 2.0, 1.0]), 0.8) == 2          # 16 + 9 = 25 of 30
s_layer = torch.linalg.svdvals(cap.model.get_submodule(layer_name).weight.detach().double().cpu())
assert energy_rank(s_layer, 0.9) == lowrank.retained_energy_rank(s_layer, 0.9)
### BEGIN HIDDEN TESTS
for e in (0.3, 0.5, 0.8, 0.95, 1.0):
    assert energy_rank(s_layer, e) == lowrank.retained_energy_rank(s_layer, e)
assert energy_rank(torch.ones(10), 0.5) == 5
### END HIDDEN TESTS

# %% [markdown]
# Across all Linear layers of the captioner, the rank each energy level needs, as a fraction of the
# break-even rank (above 1: factorizing that layer would *grow* it):

# %%
import seaborn as sns, matplotlib.pyplot as plt
ranks = lowrank.energy_rank_table(cap.model, energies)   # per Linear and energy: rank, rank / break-even rank
out.csv(ranks, "energy_ranks.csv")
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.stripplot(data=ranks, x="energy", y="rank_over_breakeven", hue="tower", dodge=True, alpha=0.6, ax=ax)
ax.axhline(1.0, color="k", ls="--", lw=1)
ax.set(xlabel="retained spectral energy e", ylabel="rank / break-even rank",
       title="Rank kept per layer vs the break-even rank (dashed: no saving)")
out.figure(fig, "energy_ranks.png"); plt.show()


# %% [markdown]
# ## Activation-aware factorization
#
# Plain SVD minimizes $\|W - W_r\|_F$, but the network only cares about $\|(W - W_r)X\|_F$ on the inputs
# $X$ it actually sees. ASVD scales each input channel $j$ by $s_j = (\overline{|x_j|})^{\alpha}$ (mean absolute
# activation on calibration data, $\alpha = 1/2$), factorizes $W\,\mathrm{diag}(s)$ and folds
# $\mathrm{diag}(s)^{-1}$ back into the first factor:
#
# $$W \approx \underbrace{U_r S_r^{1/2}}_{\text{up}}\;\underbrace{S_r^{1/2} V_r^\top \mathrm{diag}(s)^{-1}}_{\text{down}},
# \qquad U_r S_r V_r^\top = \mathrm{SVD}_r\big(W\,\mathrm{diag}(s)\big).$$
#
# SVD-LLM goes one step further and uses the Cholesky factor $L$ of $XX^\top$ instead of a diagonal, which
# makes the truncation exactly optimal for $\|(W - W_r)X\|_F$. Both keep the rank, hence the size, of
# plain SVD. Re-implement the ASVD factors:

# %%
# Exercise 5.2: ASVD's activation-aware scaling
def asvd_factors(W, mean_abs_x, rank, alpha=0.5):
    # HINT: s = mean_abs_x ** alpha; SVD of W * s (columns scaled); split sqrt(S) into both factors; divide down's columns by s
    ### BEGIN SOLUTION
    s_in = mean_abs_x.double().clamp_min(1e-6) ** alpha
    U, S, Vh = torch.linalg.svd(W.double() * s_in[None, :], full_matrices=False)
    root = S[:rank].sqrt()
    down = (root[:, None] * Vh[:rank]) / s_in[None, :]
    up = U[:, :rank] * root[None, :]
    return down, up
    ### END SOLUTION


# %%
# Check 5.2
st = lowrank.collect_input_stats(cap.model, ad.calibration_run(n_calib), [layer_name])[layer_name]
r = max(1, min(lin.weight.shape) // 4)
down, up = asvd_factors(lin.weight.detach().cpu(), st["abs_sum"] / st["count"], r)
ref = lowrank.factorize_linear(lin, rank=r, method="asvd", stats=st)
assert torch.allclose((up @ down).float(), (ref.up.weight @ ref.down.weight).detach().cpu().float(), atol=1e-4)
### BEGIN HIDDEN TESTS
assert down.shape == (r, lin.in_features) and up.shape == (lin.out_features, r)
full_down, full_up = asvd_factors(lin.weight.detach().cpu(), st["abs_sum"] / st["count"], min(lin.weight.shape))
assert torch.allclose((full_up @ full_down).float(), lin.weight.detach().cpu().float(), atol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# On that layer, the output error $\|(W - W_r)X\|_F / \|WX\|_F$ on held-out training inputs, at the
# same rank for the three factorizations:

# %%
r = max(1, min(lin.weight.shape) // 4)       # a quarter of the full rank
held = train[n_calib:n_calib + 32] or train[:32]
X = lowrank.capture_inputs(cap.model, lambda: cap.loss([e.image for e in held], [e.captions[0] for e in held]),
                           layer_name, flatten=True).float()   # one row per token
st_w = lowrank.collect_input_stats(cap.model, ad.calibration_run(n_calib), [layer_name], gram=True)[layer_name]
layer_err = pd.DataFrame(lowrank.relative_output_errors(lin, X, r, stats=st_w))
out.csv(layer_err, "one_layer_error.csv")
layer_err.round(4)

# %% [markdown]
# ## Layer dropping
#
# The compression slides deleted every second decoder layer of Phi-3.5 and fine-tuned. We drop every second layer of
# BLIP's text decoder (keeping the last one), then fine-tune the smaller captioner for `finetune_steps`
# AdamW steps on the captioning loss $-\sum_t \log p(w_t \mid w_{<t}, \text{image})$. To separate "the
# fine-tune helped" from "the layers were not needed", the uncompressed model gets the same fine-tune
# as a control. A comparison after a fine-tune means something only once the fine-tune has converged, so
# the weights are also kept three quarters of the way (`P.finetune_check_step`), and the claim is judged
# only when the score did not move beyond the noise after that step (the length itself was chosen where
# longer fine-tunes stopped gaining much: see `finetune_steps` in `vlmid/params/compression.py`).

# %% [markdown]
# ## One table: every method, size, latency, quality
#
# Each method is a function from a model adapter to a compressed adapter (`vlmid.compress.bench`);
# benchmarks score any adapter they apply to. Size: stored MB of the whole model and, for the layers a
# method replaced, their stored bytes over their fp32 bytes. Latency: captioning a batch of
# `latency_batch` images (beam search included) to the full `max_length`, whatever the model would say,
# so that every method does the same work; warm-up, then interleaved rounds, median. Quality: CIDEr-D,
# the semantic score, and `nll`, the teacher-forced loss of each test image's first reference caption
# (lower is better): it does not depend on which caption beam search happens to pick, so it tells close
# models apart far more finely than CIDEr-D on a few hundred images. On the tiny scenes the same
# captions are also read back into items (`vlmid.metrics.grounding`) and compared with the items each
# scene really holds: `garment_f1` (the right garments named) and `binding_acc` (the right colour
# on the right garment), with `garment_precision`, `garment_recall`, `count_acc` and `scene_exact`.
# CIDEr-D rewards colour, count and template words as much as garments, so a model can keep its CIDEr-D
# while losing the garments; COCO (paper profile) has no item labels, so there these columns are absent.

# %%
# dense: the last decoder layers and the language-model head after them (BLIP: a transform + the vocabulary)
skip = (layerdrop.last_layers(cap.model, keep_last_dense) if keep_last_dense else []) + layerdrop.output_head(cap.model)
methods = bench.captioner_suite(P, skip, train)   # 4 number formats, 3 SVDs x each energy, layer dropping, the control
clip_methods = bench.clip_suite(P, methods)
from vlmid.harness.plan import model_rates
sample = test[:latency_batch]
print(P.plan(len(methods), len(clip_methods)).describe(  # one timed batch per unit, on the uncompressed models
    model_rates([e.image for e in sample], [e.captions[0] for e in sample], cap=cap, clip=clip, train=True)))
cap_bench = bench.CaptionBenchmark(test, items=test_items)   # keeps every adapter's captions for the paired comparison below
# on a shared CPU every compressed copy stays alive, to be timed interleaved at the end; on a GPU each is
# timed alone and released once scored, except the two low-rank ones the per-token probe below reads
on_cpu = cap.device.type == "cpu"
keep = True if on_cpu else [f"svd {v} {min(energies):.2f}" for v in ("plain", "whiten")]
caption_table, cap_adapters = bench.compare(ad, methods, [cap_bench], latency_repeats=latency_repeats,
                                            return_adapters=True, keep_models=keep)
caption_table.insert(1, "model", "BLIP captioner")
caption_table.round(3)

# %% [markdown]
# The same methods that make sense for a dual encoder, applied to CLIP and scored by zero-shot top-1
# (prompt ensembling); latency is embedding a batch of images. Layer dropping concerns the caption
# decoder only.

# %%
clip_ad = bench.ClipAdapter(clip, zs=zs, timing_images=zs.images[:latency_batch])
clip_table = bench.compare(clip_ad, clip_methods, [bench.ZeroShotBenchmark(zs)], latency_repeats=latency_repeats,
                           keep_models=on_cpu or ())
clip_table.insert(1, "model", "CLIP")
table = pd.concat([caption_table, clip_table], ignore_index=True)
out.csv(table, "compression_table.csv")
cols = ["method", "model", "stored_MB", "size_ratio", "layers_ratio", "latency_s", "CIDEr", "garment_f1", "binding_acc", "semantic", "nll", "zeroshot_top1"]
table[[c for c in cols if c in table]].round(3)


# %% [markdown]
# ## Pareto fronts
#
# A method is on the front when no other method is both smaller (or faster) and better. One figure per
# question: what buys quality per *byte*, and what buys quality per *second*.

# %%
def pareto_plot(df, x, xlabel, title, fname):
    d = bench.pareto_table(df, x)   # + family (colour) and pareto (on the front of CIDEr against x)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.scatterplot(data=d, x=x, y="CIDEr", hue="family", style="pareto", s=70, ax=ax)
    front = d[d["pareto"]].sort_values(x)
    ax.step(front[x], front["CIDEr"], where="post", color="gray", lw=1)
    for _, row in d.iterrows():
        ax.annotate(row["method"], (row[x], row["CIDEr"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set(xlabel=xlabel, ylabel="CIDEr-D (test subset)", title=title)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    out.figure(fig, fname); plt.show()
    return d

front_size = pareto_plot(caption_table, "stored_MB", "stored size (MB, real bytes)", "Quality per byte", "pareto_size.png")
front_lat = pareto_plot(caption_table, "latency_s", "latency (s per batch, median)", "Quality per second", "pareto_latency.png")
out.csv(front_size[["method", "stored_MB", "latency_s", "CIDEr", "pareto"]], "pareto_size.csv")
out.csv(front_lat[["method", "stored_MB", "latency_s", "CIDEr", "pareto"]], "pareto_latency.csv")

# %% [markdown]
# ## Speed: is a compressed model faster?
#
# The compression slides found that quantization saves memory but does not make inference faster, and that
# low rank is not fast either. Every method was timed once per round, the rounds interleaved, so within a
# round all methods ran under the same load. Each round gives one ratio of a method's time to fp32's; the
# median of those ratios, with the distribution-free interval of a median from the order statistics of the
# rounds (`vlmid.uncertainty.median_interval`), says whether a method is faster beyond the timing noise.
# A method counts as faster when its interval lies below 0.95 (a speed-up of 5 % or more).

# %%
rounds = bench.latency_rounds(caption_table)   # seconds of every round of every method
speed = pd.DataFrame([{"method": m, **exp.latency_ratio(rounds, m)} for m in caption_table.method if m != "fp32"])
out.csv(rounds, "latency_rounds.csv"); out.csv(speed, "latency_ratios.csv")
fig, ax = plt.subplots(figsize=(7, 5))
ax.errorbar(speed["ratio"], speed["method"], xerr=[speed["ratio"] - speed["low"], speed["high"] - speed["ratio"]],
            fmt="o", capsize=3)
ax.axvline(1.0, color="k", lw=1); ax.axvline(1 - exp.SPEEDUP_MARGIN, color="gray", ls="--", lw=1)
ax.set(xlabel="latency / fp32's (median of per-round ratios, interval of the median)", ylabel="",
       title=f"Faster than fp32? ({rounds['round'].nunique()} rounds, interval {speed.coverage.iloc[0]:.0%})")
out.figure(fig, "latency_ratios.png"); plt.show()
speed.round(3)

# %% [markdown]
# Plain against activation-aware factorization at equal size (same ranks, hence the same bytes), at each
# retained-energy level. CIDEr-D on `n_test` images moves by a few hundredths when beam search picks a
# different word for a handful of images, so a difference between two variants counts only when it
# survives a **paired bootstrap**: resample the test images (with replacement), recompute the mean of
# $\text{CIDEr}_\text{aware}(i) - \text{CIDEr}_\text{plain}(i)$, and call the variant *ahead* or *behind*
# when the whole 95 % interval lies above or below zero (CIDEr-D's document frequencies come from the
# references alone, so per-image scores of two models are on one scale). The reference `nll` is the
# noise-free second opinion.

# %%
svd_rows = bench.svd_variants(caption_table)   # the svd rows, with variant and energy columns
out.csv(svd_rows[["variant", "energy", "stored_MB", "size_ratio", "CIDEr", "semantic", "nll"]], "svd_plain_vs_aware.csv")
paired = bench.paired_svd_table(cap_bench, cap_adapters, svd_rows, seed=seed)   # whiten, asvd - plain at each energy
out.csv(paired, "svd_paired.csv")
fp32_row = caption_table[caption_table.method == "fp32"].iloc[0]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for ax, metric, label in zip(axes, ("CIDEr", "nll"), ("CIDEr-D (test subset)", "reference NLL (lower is better)")):
    sns.lineplot(data=svd_rows, x="stored_MB", y=metric, hue="variant", marker="o", ax=ax)
    ax.axhline(float(fp32_row[metric]), color="k", ls="--", lw=1, label="fp32")
    ax.set(xlabel="stored size (MB)", ylabel=label)
    ax.legend(fontsize=8)
fig.suptitle("Activation-aware vs plain SVD at equal size")
out.figure(fig, "svd_plain_vs_aware.png"); plt.show()
paired.round(4)

# %% [markdown]
# Whitening minimizes each layer's output error $\|(W - W_r)X\|_F$ summed over **all** calibration tokens, so
# a token type that is rare in $X$ weighs little. A vision transformer sees one `[CLS]` token per image
# and dozens of patch tokens, and notebook 03 showed how much the `[CLS]` token matters. So, at the smallest
# size, split the relative output error of the first vision layer's fused query/key/value projection by
# token type, on test images the calibration never saw:

# %%
probe_layer = "vision_model.encoder.layers.0.self_attn.qkv"   # the first vision layer's fused q/k/v projection
lo = f"{min(energies):.2f}"
probe = None
if probe_layer in cap_adapters[f"svd plain {lo}"].notes["plan"]:
    X = lowrank.capture_inputs(cap.model, lambda: cap.loss([e.image for e in test[:64]], [e.captions[0] for e in test[:64]]),
                               probe_layer)                     # (images, 1 + patches, width)
    approx = {v: cap_adapters[f"svd {v} {lo}"].model.get_submodule(probe_layer) for v in ("plain", "whiten")}
    probe = pd.DataFrame(lowrank.token_output_errors(cap.model.get_submodule(probe_layer), approx, X))
    out.csv(probe, "svd_token_error.csv")
    print(f"{probe_layer}, rank {cap_adapters[f'svd plain {lo}'].notes['plan'][probe_layer]['rank']} at e = {lo}; "
          f"{X.shape[1] - 1} patch tokens per [CLS] token. Relative output error ||(W - W_r) x||^2 / ||W x||^2:")
else:
    print(f"{probe_layer} is not factorized at e = {lo} (rank above break-even): nothing to probe.")
probe if probe is None else probe.pivot(index="part", columns="variant", values=["CLS", "patches"]).round(3)

# %% [markdown]
# ## Has the layer-drop fine-tune converged?
#
# The per-image CIDEr-D of the methods the claims compare, and of the layer-drop model at its check step
# (decoded here from the weights kept then). The fine-tune losses show how far along each fine-tune was.

# %%
per_image = exp.per_image_scores(cap_bench, cap_adapters, ad, mid_energy, P.finetune_check_step)
out.csv(per_image, "per_image_cider.csv")
losses = pd.DataFrame([{"model": m, "step": i + 1, "loss": v} for m in (exp.LAYER_DROP, "fp32 + ft (control)")
                       for i, v in enumerate(cap_adapters[m].notes.get("finetune_losses", []))])
if len(losses):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.lineplot(data=losses, x="step", y="loss", hue="model", ax=ax)
    if P.finetune_check_step:
        ax.axvline(P.finetune_check_step, color="gray", ls="--", lw=1, label="check step")
    ax.set(xlabel="fine-tune step", ylabel="captioning loss (nats per token)", title="The fine-tunes")
    out.figure(fig, "finetune_losses.png"); plt.show()
per_image.mean().round(3)

# %% [markdown]
# ## Paper profile: Qwen2-VL-2B through the same adapters
#
# In the paper profile the same methods run on Qwen2-VL-2B (bitsandbytes on the GPU), through
# `bench.Qwen2VLAdapter`; the tiny profile cannot load it (no weights offline), and the test-suite runs a
# tiny random `Qwen2VLForConditionalGeneration` through exactly this code instead.

# %%
qwen_table = None
if qwen2vl:
    # a missing checkpoint or torchvision is an error that says what to do, never a silently skipped section
    from vlmid.models import load_qwen2vl
    qwen = load_qwen2vl(device)
    qad = bench.Qwen2VLAdapter(qwen, calib=train[:n_calib], timing_images=[e.image for e in test[:latency_batch]])
    qmethods = {k: methods[k] for k in ("fp32", "bf16", "bnb int8", "bnb nf4") if k in methods}
    qmethods[f"svd whiten {mid_energy:.2f}"] = bench.svd(mid_energy, "whiten", layerdrop.last_layers(qwen.model, keep_last_dense)
                                                       + layerdrop.output_head(qwen.model), n_calib=n_calib)
    qwen_table = bench.compare(qad, qmethods, [bench.CaptionBenchmark(test)], latency_repeats=latency_repeats,
                               keep_models=on_cpu or ())
    out.csv(qwen_table, "qwen2vl_table.csv")
elif profile == "paper":
    print("Qwen2-VL-2B section not run: qwen2vl=False (metrics.json records it as not run)")
else:
    print("Qwen2-VL-2B runs only in the paper profile (no weights offline); "
          "tests/test_compress.py runs a tiny random Qwen2-VL through the same adapter and methods.")
qwen_table

# %% [markdown]
# ## Headline numbers

# %%
headline = out.metrics(exp.headline(caption_table, clip_table, paired, svd_rows, per_image, rounds, mid_energy,
                                    finetune_steps, P.finetune_check_step, qwen_table is not None, seed=seed))
pd.Series(headline)

# %% [markdown]
# ## What we found
#
# The claims of the compression slides and of the low-rank literature that this notebook tests, decided by
# `vlmid.claims` (the same rules as `results/REPORT.md`). Each comparison shows its effect with a 95 %
# interval from the paired bootstrap over the test scenes; a verdict is *undecided* when that interval
# includes zero.

# %%
from vlmid import claims

claims.show("05", headline)
if smoke:
    print("SMOKE RUN: untrained smoke models and tiny sizes; these verdicts only prove the cells run.")

# %% [markdown]
# **How to read it.** Memory is compared like with like: the slides give whole-model sizes, so the claim
# reads the bytes of the whole model, with what stays unquantized (embeddings, norms, the head); the
# quantized layers alone are smaller still and shown beside them. Bytes are a property of the format, not
# of the data, so that claim has no interval; its rule can still fail (a model whose unquantized part is
# large lands outside the slides' band). Quality is a comparison, and on a few hundred scenes small
# differences are noise: read the interval of *int8 minus 95 % of fp32* before the point values in the
# table above. Speed is a separate question, decided from the timing rounds: whether bitsandbytes'
# smaller weights are also faster on this machine (on a CPU they usually are not; PyTorch's int8 dynamic
# kernel is the CPU exception, see the speed figure), and whether low rank's fewer multiply-adds show in
# the time of a decoded caption.
#
# Activation-aware factorization minimises the error of the layer's *output on real inputs*, not of
# the weights; the per-token probe above shows where that helps (the many patch tokens) and where it
# need not (the single [CLS] token). Layer dropping removes whole blocks, then fine-tunes; compare it
# with the fine-tuned fp32 control to see how much of its score is the fine-tune rather than the
# architecture, and read its verdict together with the fine-tune's last steps: while they still move the
# score beyond the noise, the comparison is undecided, however large the gap.

# %%
written = out.finish()   # the run is complete: files an earlier run left and this one did not rewrite are removed
print(f"{len(written)} result files in {out.dir}:")
for name, size in written.items():
    print(f"  {name:34s} {size:>10,d} bytes")
