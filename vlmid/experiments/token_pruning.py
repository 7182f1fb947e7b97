"""Notebook 03: CLIP vision-token pruning, its collapse, the collapse's cause and its repairs.

The algorithms live in :mod:`vlmid.tokens` (pure tensor functions and one patch call, ToMe-style);
this module holds the notebook's experiment: the variants and their grids, the accuracy, cost and
scaling tables, the failure analysis, the notebook's ``headline`` and the claims it decides.

A variant is a :class:`Spec` (a label, a preset of ``tokens.PRESETS`` and option overrides); a grid
crosses variants with keep ratios. Accuracy is zero-shot top-1 (``vlmid.metrics.zeroshot``, on the
images pre-processed once) with the model patched, kept per image so that every comparison of two
variants is a paired bootstrap over the same images; cost comes from ``vlmid.profiling``
(interleaved timing, FLOPs, memory) on one fixed batch.

The speed target is decided on a harder zero-shot set (:func:`harder_set`: garments placed as CLIP's training
places them, some with smaller distractors), where every variant is read against two bounds that only rank
the patches differently: an oracle that keeps the target's patches and a random selector.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
Heavy imports (torch, the models) happen inside the functions: :mod:`vlmid.claims` imports this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..verdict import CHANCE_10_CLASSES, Claim, ci, ci_keys

if TYPE_CHECKING:
    import torch

NUMBER = "03"
BASELINE = "baseline"
ONE_POINT = 0.01          # "within 1 point" of top-1, as a fraction (the target's and the cause rule's margin)
TARGET_SPEEDUP = 1.5      # the target's throughput ratio


# ------------------------------------------------------------------------------ the variants and their grids
@dataclass(frozen=True)
class Spec:
    """One token-reduction variant: ``tokens.patch(model, method, keep, **options)``."""
    label: str
    method: str
    options: tuple = field(default=())  # (name, value) pairs, hashable

    def patched(self, model, keep: float):
        from ..tokens import patched

        return patched(model, self.method, keep=keep, **dict(self.options))


# the CLIP token report's method, then the same with exactly one of its defects repaired, then all repaired
REPORT_AND_SINGLE_FIXES = [Spec(name, name) for name in ("naive", "fix_cls", "fix_positions", "fix_prenorm",
                                                         "fix_late", "topk")]
# all repaired but one: which repair is *necessary*
LEAVE_ONE_OUT = [
    Spec("topk - cls", "topk", (("keep_cls", False),)),
    Spec("topk - positions", "topk", (("positions", False),)),
    Spec("topk - prenorm", "topk", (("prenorm", False),)),
    Spec("topk - late", "topk", (("after_block", 0),)),
]
PUBLISHED = [Spec("evit", "evit"), Spec("tome", "tome")]
SCALED = PUBLISHED + [Spec("topk", "topk")]    # the variants of the scaling study, at SCALED_KEEP
SCALED_KEEP = 0.5


def grid(specs: list[Spec], keeps: list[float]) -> list[tuple[Spec, float]]:
    """Every (variant, keep ratio) pair."""
    return [(s, k) for s in specs for k in keeps]


def variant_name(label: str, keep: float) -> str:
    return label if label == BASELINE else f"{label} @ {keep:g}"


def timed_jobs(keeps: list[float], search_keeps: list[float]) -> list[tuple[Spec, float]]:
    """The variants timed and evaluated: the report's method and its repairs and the published methods at the
    report's ``keeps``, then the published methods at the ``search_keeps`` not already there."""
    return grid(REPORT_AND_SINGLE_FIXES + PUBLISHED, keeps) + grid(PUBLISHED, [k for k in search_keeps if k not in keeps])


def leave_one_out_jobs(loo_keeps: list[float]) -> list[tuple[Spec, float]]:
    """The leave-one-out variants (evaluated, not timed: they run on the token counts of ``topk`` / ``naive``)."""
    return grid(LEAVE_ONE_OUT, loo_keeps)


def scaling_sizes(image_size: int, patch_size: int, scales: list[float]) -> list[int]:
    """The input sizes of the scaling study: ``image_size`` times each scale, rounded to whole patches."""
    return sorted({int(round(image_size * s / patch_size)) * patch_size for s in scales})


def plan(P):
    """Notebook 03's work (:class:`vlmid.harness.plan.Plan`) for its parameters ``P`` (a ``TokenPruningParams``): the
    variants' zero-shot evaluations and timed batches, the scaling study and Extension B, in images through
    CLIP's image encoder."""
    from ..harness.plan import Plan, Work

    timed = timed_jobs(P.keeps, P.search_keeps)
    evaluated = len(timed) + len(leave_one_out_jobs(P.loo_keeps)) + 1   # + the baseline
    rounds = P.warmup + P.repeats + 2   # + one pass each for FLOPs and memory
    scaled = sum(s * s for s in P.scales) * (len(SCALED) + 1) * (2 + max(2, P.repeats // 2))
    return Plan("03", (
        Work(evaluated * P.n_eval, "clip image", f"zero-shot evaluations: {evaluated} variants x {P.n_eval} images"),
        Work((len(timed) + 1) * rounds * P.batch_size, "clip image",
             f"timed batches: {len(timed) + 1} variants x {rounds} rounds x {P.batch_size} images "
             f"(on {P.threads} thread(s) on a CPU)"),
        Work(round(scaled * P.scaling_batch), "clip image",
             f"scaling study at {P.scales} x the input size (counted in tokens: an image at 2x is 4 images)"),
        Work(len(P.lowrank_ranks) * P.n_eval, "clip image",
             f"Extension B: {len(P.lowrank_ranks)} ranks x {P.n_eval} images"),
        *harder_work(P),
    ))


def harder_work(P):
    """The harder set's share of :func:`plan`: its variants, the baseline and the bounds on ``P.n_hard`` images
    (nothing without a harder set; its images are timed in place of the zero-shot set's, at no extra cost)."""
    from ..harness.plan import Work

    if not P.n_hard:
        return ()
    evaluated = len(harder_jobs(P.keeps, P.search_keeps)) + 1
    return (Work(evaluated * P.n_hard, "clip image",
                 f"harder set: {evaluated} variants and bounds x {P.n_hard} images"),)


# ------------------------------------------------------------------------------ the model and its inputs
@dataclass
class Setup:
    """Notebook 03's inputs: the CLIP bundle (in eval mode), the zero-shot set, its images
    pre-processed once, and the one batch every variant is timed on."""
    clip: object
    zs: object
    tower: torch.nn.Module      # the CLIP vision tower inside clip.model
    n_layers: int               # vision blocks
    n_patches: int              # patch tokens (the class token not counted)
    zs_pixels: torch.Tensor     # every zero-shot image, pre-processed once
    pixels: torch.Tensor        # the timed batch: the harder set's first `batch_size` images, else the zero-shot set's
    hard: HarderSet | None = None   # the harder set (:func:`harder_set`; None in a paper run)

    @classmethod
    def from_bundle(cls, clip, zs, batch_size: int, hard: HarderSet | None = None) -> "Setup":
        """Put ``clip.model`` in eval mode, find its vision tower, pre-process ``zs``'s images. The timed batch
        comes from ``hard`` when there is one: every variant here runs a fixed number of tokens whatever the
        images show, so one timing serves both sets, and the target's throughput is measured on the harder set."""
        from ..metrics.zeroshot import zeroshot_pixels
        from ..tokens import vision_tower

        clip.model.eval()
        tower = vision_tower(clip.model)
        zs_pixels = zeroshot_pixels(clip, zs)
        timed = zs_pixels[:batch_size] if hard is None else \
            clip.pixel_values(hard.zs.images[:batch_size]).to(zs_pixels.device)
        return cls(clip=clip, zs=zs, tower=tower, n_layers=len(tower.encoder.layers),
                   n_patches=tower.embeddings.num_patches, zs_pixels=zs_pixels, pixels=timed, hard=hard)

    def describe(self, profile: str, threads: int | None) -> str:
        """One line: the model, its attention implementation and the zero-shot set; a second on the harder set."""
        return (f"{profile} CLIP: {self.n_layers} vision blocks, {self.n_patches} patches + CLS at {self.clip.image_size}px, "
                f"attention '{self.clip.model.config.vision_config._attn_implementation}'; "
                f"{len(self.zs)} zero-shot images, {len(self.zs.classnames)} classes; timing on {threads} thread(s)"
                + ("" if self.hard is None else f" on the harder set's images\n{self.hard.describe()}"))


def setup(profile: str, seed: int, smoke: bool, n_eval: int, batch_size: int, device: str = "auto",
          n_hard: int = 0) -> Setup:
    """Load notebook 03's CLIP (``vlmid.models.load_clip``), zero-shot set (``vlmid.data.load_zeroshot``,
    ``n_eval`` images) and harder set (:func:`harder_set`, ``n_hard`` images; none in a paper run), in that order,
    then :meth:`Setup.from_bundle`."""
    from ..data import load_zeroshot
    from ..models import load_clip

    clip = load_clip(profile, seed=seed, smoke=smoke, device=device)
    clip.model.eval()
    zs = load_zeroshot(profile, n=n_eval, seed=seed)
    hard = harder_set(n_hard, seed=seed) if profile == "tiny" else None
    return Setup.from_bundle(clip, zs, batch_size, hard)


def preset_tokens(clip, pixels, n_patches: int, n_layers: int, keep: float = 0.5):
    """Per preset of ``tokens.PRESETS``: the tokens entering each block at ``keep`` (the last number leaves
    the last block), EViT's pruning blocks and ToMe's tokens merged per block (a DataFrame)."""
    import pandas as pd
    import torch

    from .. import tokens

    rows = []
    with torch.no_grad():
        for name in tokens.PRESETS:
            with tokens.patched(clip.model, name, keep=keep):
                clip.model.get_image_features(pixel_values=pixels[:2])
                cfg, ran = tokens.config(clip.model), tokens.stats(clip.model)
                rows.append({"preset": name, f"tokens per block (keep {keep:g})": " → ".join(map(str, ran.tokens_per_block)),
                             "evit blocks": cfg.blocks if cfg.method == "evit" else "",
                             "tome r": tokens.tome_r_for_keep(n_patches, n_layers, keep) if cfg.method == "tome" else ""})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ accuracy
def change(correct, variant: str, reference: str, seed: int = 0):
    """Top-1 of ``variant`` minus top-1 of ``reference`` with its paired-bootstrap 95 % interval over the images
    (:class:`vlmid.uncertainty.Effect`), from the per-image correctness table ``correct`` (a column per variant)."""
    from ..uncertainty import paired_effect

    return paired_effect(correct[variant].to_numpy(), correct[reference].to_numpy(), seed=seed)


def _correct(model, pixels, labels, class_embeddings, batch_size: int, scores=None, keep: float = 1.0) -> np.ndarray:
    """Per image: is the zero-shot prediction of ``model`` (patched or not) right? (pre-processed ``pixels``).
    With ``scores`` (one row per image): the prediction of :func:`selected_features` ranking by them at ``keep``."""
    from ..metrics.zeroshot import correct_from_embeddings, embed_batches

    def features(s):
        pv = pixels[s:s + batch_size]
        if scores is None:
            return model.get_image_features(pixel_values=pv)
        return selected_features(model, pv, scores[s:s + batch_size], keep)

    images = embed_batches(features, range(0, len(pixels), batch_size))
    return correct_from_embeddings(images, class_embeddings, labels)


def accuracy_table(correct, tokens_per_block: dict, jobs: list[tuple[Spec, float]], seed: int = 0):
    """The accuracy table from per-image results: a row for the baseline, then one per (variant, keep) of
    ``jobs``, with its zero-shot top-1, the token counts it ran with and its top-1 change from the baseline
    with the paired-bootstrap 95 % interval over the images (``top1_change``, ``change_ci_low``,
    ``change_ci_high``). ``correct``: a column of right/wrong per image for each variant name and the baseline;
    ``tokens_per_block``: variant name -> tokens entering each block, then leaving the last."""
    import pandas as pd

    counts = tokens_per_block[BASELINE]
    rows = [{"variant": BASELINE, "label": BASELINE, "method": "none", "keep": 1.0,
             "top1": float(correct[BASELINE].mean()), "tokens_per_block": "-".join(map(str, counts)),
             "mean_tokens": float(np.mean(counts[:-1])), "top1_change": 0.0, "change_ci_low": 0.0, "change_ci_high": 0.0}]
    for spec, keep in jobs:
        name = variant_name(spec.label, keep)
        counts, effect = tokens_per_block[name], change(correct, name, BASELINE, seed=seed)
        rows.append({"variant": name, "label": spec.label, "method": spec.method, "keep": keep,
                     "top1": float(correct[name].mean()), "tokens_per_block": "-".join(map(str, counts)),
                     "mean_tokens": float(np.mean(counts[:-1])), "top1_change": effect.diff,
                     "change_ci_low": effect.low, "change_ci_high": effect.high})
    return pd.DataFrame(rows)


def accuracy_grid(clip, zs, jobs: list[tuple[Spec, float]], batch_size: int = 256, progress: bool = True,
                  seed: int = 0, scores: dict | None = None):
    """Zero-shot top-1 of the unpatched model and of every (variant, keep) in ``jobs``: returns
    (:func:`accuracy_table`, the per-image correctness table: one column per variant, one row per image).

    ``scores``: label -> per-image patch scores [n_images, patches] (:func:`bound_scores`); a job of that label
    runs :func:`selected_features` (``topk``'s forward, the patches ranked by those scores), on ``topk``'s token
    counts."""
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from ..metrics.zeroshot import class_text_embeddings, zeroshot_pixels
    from ..tokens import patched, stats

    pixels = zeroshot_pixels(clip, zs)
    text = class_text_embeddings(clip, zs.classnames, zs.templates)
    n_layers = len(clip.model.vision_model.encoder.layers)
    n0 = clip.model.vision_model.embeddings.num_patches + 1
    correct = {BASELINE: _correct(clip.model, pixels, zs.labels, text, batch_size)}
    counts = {BASELINE: [n0] * (n_layers + 1)}
    scores = scores or {}
    for spec, keep in tqdm(jobs, desc="zero-shot per variant", disable=not progress):
        name = variant_name(spec.label, keep)
        if spec.label in scores:
            rank = torch.as_tensor(np.asarray(scores[spec.label]), dtype=torch.float32, device=pixels.device)
            correct[name] = _correct(clip.model, pixels, zs.labels, text, batch_size, scores=rank, keep=keep)
            with torch.no_grad(), patched(clip.model, "topk", keep=keep):   # the same token counts as topk's
                clip.model.get_image_features(pixel_values=pixels[:1])
                counts[name] = list(stats(clip.model).tokens_per_block)
            continue
        with spec.patched(clip.model, keep):
            correct[name] = _correct(clip.model, pixels, zs.labels, text, batch_size)
            counts[name] = list(stats(clip.model).tokens_per_block)
    correct = pd.DataFrame(correct)
    return accuracy_table(correct, counts, jobs, seed=seed), correct


# ------------------------------------------------------------------------------ cost
def _image_run(model, pixels, interpolate: bool = False):
    return lambda: model.get_image_features(pixel_values=pixels, interpolate_pos_encoding=interpolate)


def cost_grid(clip, pixels, jobs: list[tuple[Spec, float]], repeats: int = 10,
              warmup: int = 3, threads: int | None = 1, progress: bool = True):
    """Latency, throughput, FLOPs and peak memory of the image encoder (vision tower +
    projection) on one batch ``pixels``, for the baseline and every (variant, keep); all
    timed interleaved. Adds ``speedup`` (throughput ratio) and ``flops_ratio`` (baseline
    FLOPs / variant FLOPs) against the baseline."""
    from ..profiling import Variant, profile_variants

    model = clip.model
    run = _image_run(model, pixels)
    variants = [Variant(BASELINE, run)]
    for spec, keep in jobs:
        variants.append(Variant(variant_name(spec.label, keep), run,
                                context=lambda s=spec, k=keep: s.patched(model, k)))
    df = profile_variants(variants, batch_size=len(pixels), repeats=repeats, warmup=warmup,
                          threads=threads, device=pixels.device, progress=progress)
    base = df.set_index("variant").loc[BASELINE]
    df["speedup"] = df["throughput_per_s"] / base["throughput_per_s"]
    df["flops_ratio"] = base["gflops_per_item"] / df["gflops_per_item"]
    return df


REPORT_COLUMNS = ["variant", "keep", "latency_ms", "latency_ms_q25", "latency_ms_q75", "throughput_per_s", "speedup",
                  "gflops_per_item", "flops_ratio", "peak_mem_mib", "top1", "top1_change", "change_ci_low",
                  "change_ci_high", "tokens_per_block"]


def report_table(table, keeps: list[float]):
    """The CLIP token report's table re-measured: the baseline, the report's method, its repairs and the
    published methods at the report's ``keeps``, in :data:`REPORT_COLUMNS`."""
    labels = [BASELINE] + [s.label for s in REPORT_AND_SINGLE_FIXES + PUBLISHED]
    return table[table["label"].isin(labels) & table["keep"].isin(keeps)][REPORT_COLUMNS]


FAMILIES = (BASELINE, "naive", "topk", "evit", "tome")


def timed_variants(table):
    """The rows of ``table`` that were timed, with ``family`` (the single repairs pooled as "single fix")."""
    timed = table.dropna(subset=["speedup"]).copy()
    timed["family"] = timed["label"].where(timed["label"].isin(FAMILIES), "single fix")
    return timed


# ------------------------------------------------------------------------------ scaling
def resize_pixels(pixels, size: int):
    """Images at another input resolution (bicubic), for the scaling study."""
    import torch

    if size == pixels.shape[-1]:
        return pixels
    return torch.nn.functional.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)


def scaling_grid(clip, pixels, sizes: list[int], specs: list[tuple[Spec, float]],
                 repeats: int = 5, warmup: int = 2, threads: int | None = 1, progress: bool = True):
    """Cost against token count: for each input size (position embeddings interpolated) the
    baseline and each (spec, keep); FLOPs split into attention (quadratic in tokens) and the
    rest (linear), and the interleaved latency."""
    import pandas as pd
    import torch

    from ..profiling import Variant, flops_by_op, profile_variants
    from ..tokens import stats

    model = clip.model
    patch = model.vision_model.embeddings.patch_size
    rows, variants = [], []
    for size in sizes:
        if size % patch:
            raise ValueError(f"input size {size} is not a multiple of the patch size {patch}")
        px = resize_pixels(pixels, size)
        run = _image_run(model, px, interpolate=True)
        entries = [(BASELINE, 1.0, None)] + [(s.label, k, s) for s, k in specs]
        for label, keep, spec in entries:
            name = f"{variant_name(label, keep)} | {size}px"
            ctx = (lambda s=spec, k=keep: s.patched(model, k)) if spec is not None else None
            variants.append(Variant(name, run, context=ctx))
            with (ctx() if ctx else torch.no_grad()):
                by_op = flops_by_op(run)
                counts = stats(model).tokens_per_block if spec is not None else None
            attn = sum(v for op, v in by_op.items() if "attention" in op or op.endswith("bmm") or "matmul" in op)
            n = (size // patch) ** 2 + 1
            rows.append({"variant": name, "label": label, "keep": keep, "size_px": size, "tokens_in": n,
                         "mean_tokens": float(np.mean(counts[:-1])) if counts else float(n),
                         "gflops_per_item": sum(by_op.values()) / len(px) / 1e9,
                         "pairwise_gflops_per_item": attn / len(px) / 1e9})
    timing = profile_variants(variants, batch_size=len(pixels), repeats=repeats, warmup=warmup, threads=threads,
                              device=pixels.device, flops=False, memory=False, progress=progress)
    out = pd.DataFrame(rows).merge(timing[["variant", "latency_ms", "latency_ms_q25", "latency_ms_q75",
                                           "throughput_per_s"]], on="variant")
    out["pairwise_share"] = out["pairwise_gflops_per_item"] / out["gflops_per_item"]
    return out


# ------------------------------------------------------------------------------ the harder set and its bounds
# On the zero-shot set every garment is white, 32 px wide and centred, and black elsewhere: the patches worth
# keeping are always the same middle ones, and "the largest L2 norms" nearly names them. The harder set draws
# each garment as CLIP's training draws it (random place, size and colour), two thirds of the images with one or
# two smaller garments of other classes beside it (docs/methods.md §5), and knows which patches the target covers.
HARD_DISTRACTORS = (1 / 3, 1 / 3, 1 / 3)   # probabilities of 0, 1 and 2 distractors per image
ORACLE, RANDOM = "oracle", "random"
BOUNDS = [Spec(ORACLE, "topk"), Spec(RANDOM, "topk")]   # topk's forward, the patches ranked otherwise
BOUND_LABELS = [b.label for b in BOUNDS]


@dataclass
class HarderSet:
    """The harder zero-shot set: ``zs`` (placed items, with the zero-shot set's classes and prompts) and per image
    the target's patches (``foreground``, bool [N, patches]), the target as drawn and the items drawn."""
    zs: object
    foreground: np.ndarray
    targets: list
    n_items: np.ndarray

    def describe(self) -> str:
        """One line: images, distractors, the target's patches."""
        shares = ", ".join(f"{np.mean(self.n_items == k + 1):.0%} with {k}" for k in range(int(self.n_items.max())))
        fg = self.foreground.sum(1)
        return (f"harder set: {len(self.zs)} placed items ({shares} distractors); the target covers "
                f"{fg.mean():.1f} of {self.foreground.shape[1]} patches on average ({fg.min()}-{fg.max()})")


def harder_set(n: int, seed: int = 0, p_distractors=HARD_DISTRACTORS) -> HarderSet | None:
    """``n`` Fashion-MNIST test photos (a seeded subset) drawn by :func:`vlmid.data.scenes.placed_items`, with the
    tiny zero-shot set's class names and prompts. None when ``n`` is 0: a paper run has no harder set (its
    CIFAR-10 photos come with backgrounds of their own), and its target is decided on the zero-shot set."""
    if not n:
        return None
    from PIL import Image

    from ..data.base import ZeroShotSet
    from ..data.fashion_mnist import FASHION_CLASSES, load_fashion_mnist
    from ..data.scenes import placed_items
    from ..data.zeroshot import FASHION_TEMPLATES

    photos, labels = load_fashion_mnist("test")
    rng = np.random.default_rng([seed, 3])
    idx = np.sort(rng.permutation(len(labels))[:n])
    drawn = placed_items(photos[idx], labels[idx], rng, p_distractors)
    zs = ZeroShotSet(images=[Image.fromarray(a) for a in drawn.images], labels=drawn.labels,
                     classnames=list(FASHION_CLASSES), templates=list(FASHION_TEMPLATES))
    return HarderSet(zs, drawn.foreground, drawn.targets, drawn.n_items)


def oracle_scores(foreground: np.ndarray, targets, canvas: int | None = None) -> np.ndarray:
    """The oracle's ranking of the patches [N, patches]: the target's patches first, then the others; within each
    group the patch nearest the target's centre first. At a keep ratio below the target's share of the patches the
    oracle keeps the target's middle; above it, all of the target and the context nearest to it."""
    from ..data.scenes import CANVAS

    canvas = canvas or CANVAS
    grid = int(round(np.sqrt(foreground.shape[1])))
    centres = (np.arange(grid) + 0.5) * canvas / grid
    py, px = (a.ravel() for a in np.meshgrid(centres, centres, indexing="ij"))   # row-major, the ViT's order
    cx, cy = (np.array([getattr(t, a) for t in targets], dtype=float)[:, None] for a in ("cx", "cy"))
    near = 1 - np.hypot(px - cx, py - cy) / (canvas * np.sqrt(2))               # in (0, 1]
    return foreground.astype(float) + 0.5 * near


def random_scores(n_images: int, n_patches: int, seed: int = 0) -> np.ndarray:
    """The random selector's ranking [N, patches]: uniform scores, seeded (the kept sets are nested across keeps)."""
    return np.random.default_rng([seed, 5]).random((n_images, n_patches))


def bound_scores(hard: HarderSet, seed: int = 0) -> dict[str, np.ndarray]:
    """The two bounds' rankings of the harder set's patches, for :func:`accuracy_grid`'s ``scores``."""
    return {ORACLE: oracle_scores(hard.foreground, hard.targets),
            RANDOM: random_scores(*hard.foreground.shape, seed=seed)}


def bound_jobs(keeps: list[float], search_keeps: list[float]) -> list[tuple[Spec, float]]:
    """The bounds at every keep ratio the variants run below 1.0 (at 1.0 they are the unpruned model)."""
    return grid(BOUNDS, sorted({k for k in [*keeps, *search_keeps] if k < 1.0}, reverse=True))


def selected_features(model, pixels, scores, keep: float):
    """Image features of ``model`` with ``tokens``' ``topk`` preset (class token kept, positions added, pre-norm, one
    selection after block L/2), the patches ranked by ``scores`` [B, patches] instead of the L2 norm of their state
    (None: by that norm, which is the preset itself). The forward of the bounds."""
    import torch

    from ..tokens import config, gather_tokens, num_kept, patched, topk_indices, vision_tower

    tower = vision_tower(model)
    with patched(model, "topk", keep=keep):
        after = config(model).after_block        # where the preset selects, as tokens resolves it
    x = tower.pre_layrnorm(tower.embeddings(pixels))
    for i, layer in enumerate(tower.encoder.layers):
        if i == after:
            patches = x[:, 1:]
            rank = patches.norm(dim=-1) if scores is None else scores
            kept = topk_indices(rank, num_kept(patches.shape[1], keep, "floor"), keep_order=True)
            x = torch.cat([x[:, :1], gather_tokens(patches, kept)], dim=1)
        x = layer(x, None)
    return model.visual_projection(tower.post_layernorm(x[:, 0]))


def harder_jobs(keeps: list[float], search_keeps: list[float]) -> list[tuple[Spec, float]]:
    """What the harder set runs: the timed variants of the families (the report's method, ``topk`` with all four
    repairs, EViT and ToMe; the single repairs stay on the zero-shot set, where they explain the collapse), then
    the two bounds."""
    return [(s, k) for s, k in timed_jobs(keeps, search_keeps) if s.label in FAMILIES] + bound_jobs(keeps, search_keeps)


def harder_study(clip, hard: HarderSet | None, jobs: list[tuple[Spec, float]], cost, seed: int = 0,
                 progress: bool = True):
    """The variants and bounds ``jobs`` (:func:`harder_jobs`) on the harder set: (the table, :func:`accuracy_grid`'s
    merged with ``cost``, the :func:`cost_grid` of the timed batch, which :class:`Setup` draws from the harder set;
    the per-image correctness table). The bounds stay untimed. (None, None) without a harder set."""
    if hard is None:
        return None, None
    acc, correct = accuracy_grid(clip, hard.zs, jobs, seed=seed, scores=bound_scores(hard, seed), progress=progress)
    return acc.merge(cost.drop(columns=["batch_size"], errors="ignore"), on="variant", how="left"), correct


BOUNDS_COLUMNS = ["keep", "random", "naive", "topk", "evit", "tome", "oracle"]


def bounds_table(hard_table):
    """Top-1 on the harder set per keep ratio (rows) of the random selector, the variants and the oracle (columns,
    from the worst bound to the best), the unpruned model in the row of keep 1.0."""
    t = hard_table[hard_table["label"].isin(BOUNDS_COLUMNS)].pivot_table(index="keep", columns="label", values="top1")
    t.loc[1.0, BOUND_LABELS] = float(hard_table.loc[hard_table["variant"] == BASELINE, "top1"].iloc[0])
    return t.reindex(columns=BOUNDS_COLUMNS[1:]).sort_index(ascending=False).rename_axis(columns=None).reset_index()


# ------------------------------------------------------------------------------ the failure analysis
SINGLE_FIX_LABELS = [s.label for s in REPORT_AND_SINGLE_FIXES]
LEAVE_ONE_OUT_LABELS = ["topk"] + [s.label for s in LEAVE_ONE_OUT]
SINGLE_FIX_PANEL, LEAVE_ONE_OUT_PANEL = "naive + one repair", "all repairs − one"
FAILURE_COLUMNS = ["panel", "label", "keep", "top1", "recovered", "lost_vs_topk", "tokens_per_block"]


def failure_analysis(acc, keeps, loo_keeps):
    """The failure analysis of the naive method, from :func:`accuracy_table`'s table ``acc``: the rows
    at ``keeps`` or ``loo_keeps`` of the single repairs (panel ``SINGLE_FIX_PANEL``, labels
    ``SINGLE_FIX_LABELS``) then of the leave-one-out variants (``LEAVE_ONE_OUT_PANEL``), with
    ``recovered`` (top-1 above ``naive`` at the same keep) and ``lost_vs_topk`` (top-1 below
    ``topk`` at the same keep). The index is ``acc``'s (``topk`` rows appear in both panels)."""
    import pandas as pd

    fa = acc[acc["keep"].isin(list(keeps) + list(loo_keeps))]
    fa = pd.concat([fa[fa["label"].isin(SINGLE_FIX_LABELS)].assign(panel=SINGLE_FIX_PANEL),
                    fa[fa["label"].isin(LEAVE_ONE_OUT_LABELS)].assign(panel=LEAVE_ONE_OUT_PANEL)])
    naive_by_keep = acc.query("label == 'naive'").set_index("keep")["top1"]
    topk_by_keep = acc.query("label == 'topk'").set_index("keep")["top1"]
    fa["recovered"] = fa["top1"] - fa["keep"].map(naive_by_keep)
    fa["lost_vs_topk"] = fa["keep"].map(topk_by_keep) - fa["top1"]
    return fa


# ------------------------------------------------------------------------------ the headline
def best_within(table, baseline_top1: float, max_loss: float = ONE_POINT, by: str = "speedup"):
    """The row with the largest ``by`` among variants that lose at most ``max_loss`` top-1 (a fraction:
    0.01 is one point) beyond the noise: the lower end of the 95 % interval of their top-1 change
    (``change_ci_low``, from :func:`accuracy_table`) lies above ``-max_loss``. Without that column the
    point estimate decides. None when no variant qualifies."""
    variants = table[table["variant"] != BASELINE]
    if "change_ci_low" in table:
        ok = variants[variants["change_ci_low"] > -max_loss]
    else:
        ok = variants[variants["top1"] >= baseline_top1 - max_loss - 1e-12]
    return None if ok.empty else ok.loc[ok[by].idxmax()]


def collapse_line(baseline_top1: float) -> float:
    """Top-1 at or below which a variant has collapsed: chance + 10 points, or half the baseline if higher."""
    return max(CHANCE_10_CLASSES + 0.10, baseline_top1 / 2)


NAIVE_ONE, NAIVE_HALF, KEEP_CLS_HALF = variant_name("naive", 1.0), variant_name("naive", 0.5), variant_name("fix_cls", 0.5)


def collapse_cause(m: dict) -> tuple[bool | None, str]:
    """Does naive pruning's collapse at keep 0.5 come from dropping tokens? (verdict, the cause in words).

    Two paired comparisons over the images decide it, each against :func:`collapse_line`: naive pruning at
    keep 1.0, where no token is dropped (its top-1 interval: the baseline's top-1 plus the interval of its
    change), and the naive method with only the class token kept at keep 0.5, the same tokens dropped (naive's
    top-1 plus the interval of what keeping the class token adds). Dropping is the cause when naive at keep 1.0
    stays above the line and keeping the class token does not lift keep 0.5 above it; it is not when naive
    collapses with nothing dropped, or when keeping the class token alone ends the collapse. None: an
    interval straddles the line, or there is no collapse to explain (the baseline already lies at or below the
    line, or naive at keep 0.5 does not)."""
    base, half = m["baseline_top1"], m["naive_top1_keep_0.5"]
    line = collapse_line(base)
    if base <= line:
        return None, "none: the unpruned model itself lies at or below the collapse line"
    if half > line:
        return None, "none: naive pruning does not collapse at keep 0.5 here"
    undropped = (base + m["naive_change_keep_1.0_ci_low"], base + m["naive_change_keep_1.0_ci_high"])
    cls_kept = (half + m["keep_cls_gain_keep_0.5_ci_low"], half + m["keep_cls_gain_keep_0.5_ci_high"])
    collapsed_undropped, cls_repairs = undropped[1] <= line, cls_kept[0] > line
    if collapsed_undropped and cls_repairs:
        return False, ("the summary token in place of the class token: naive collapses with no token dropped, "
                       "and keeping the class token ends the collapse with the same tokens dropped")
    if collapsed_undropped:
        return False, "a change other than dropping tokens: naive collapses with no token dropped"
    if cls_repairs:
        return False, ("the summary token in place of the class token: keeping the class token ends the collapse "
                       "with the same tokens dropped")
    if undropped[0] > line and cls_kept[1] <= line:
        return True, ("dropping tokens: naive holds up with no token dropped, and keeping the class token "
                      "does not end the collapse")
    return None, "undecided: an interval straddles the collapse line"


TARGET_SETS = {True: "harder set", False: "zero-shot set"}   # the set the target is decided on: with a harder set or not
HARD_KEEP = 0.5                                             # the keep ratio of the headline's bounds


def target_rows(table, max_loss: float = ONE_POINT):
    """The target's two rows of a variants table: the fastest timed variant within ``max_loss`` beyond the noise
    (:func:`best_within` by measured ``speedup``) and the one with the fewest FLOPs. The bounds never count (the
    oracle reads the answer, the random selector is the floor), nor do untimed rows, nor a variant at keep 1.0,
    which drops no token and so reduces nothing."""
    baseline_top1 = float(table.loc[table["variant"] == BASELINE, "top1"].iloc[0])
    timed = candidates(table)
    return (best_within(timed, baseline_top1, max_loss, by="speedup"),
            best_within(timed, baseline_top1, max_loss, by="flops_ratio"))


CANDIDATE_COLUMNS = ("keep", "top1", "top1_change", "change_ci_low", "change_ci_high", "speedup", "flops_ratio")


def candidates(table):
    """The rows of a variants table that may be the target: timed variants that drop tokens, no bound."""
    return table[~table["label"].isin(BOUND_LABELS) & (table["keep"] < 1.0)].dropna(subset=["speedup"])


def by_variant(table) -> dict:
    """The candidates and the bounds of a variants table by name, each with :data:`CANDIDATE_COLUMNS` (None
    where not measured): what :func:`fix_choices` reads another build at."""
    rows = [r for t in (candidates(table), table[table["label"].isin(BOUND_LABELS)]) for _, r in t.iterrows()]
    number = lambda v: None if v is None or np.isnan(v) else float(v)  # noqa: E731
    return {r["variant"]: {c: number(r.get(c)) for c in CANDIDATE_COLUMNS} for r in rows}


def fix_choices(per_build: list[dict]) -> list[dict]:
    """The builds' headlines with the target's two variants chosen on the first build.

    Each build's own target is the fastest of many variants that pass a noisy test, so the mean over builds
    of the chosen speed-ups would be optimistic; pooled, the first build chooses (its ``target_variant`` and
    ``target_flops_variant``) and every further build is read at that choice (its ``target_by_variant``). Where
    the first build found no variant within 1 point, no build has a target."""
    first, out = per_build[0], [per_build[0]]
    chosen, fewest = first.get("target_variant"), first.get("target_flops_variant")
    for i, m in enumerate(per_build[1:], start=1):
        by = json.loads(m["target_by_variant"]) if m.get("target_by_variant") else None
        if by is None or any(v is not None and v not in by for v in (chosen, fewest)):
            raise KeyError(f"build {i} of notebook 03 has no scores of {chosen!r} on the {m.get('target_set')} "
                           "(results from an older version): run notebook 03 on that build again")
        c, f = by.get(chosen, {}), by.get(fewest, {})
        m = dict(m, target_variant=chosen, target_flops_variant=fewest,
                 target_speedup_within_1pt=c.get("speedup"), target_flops_ratio=c.get("flops_ratio"),
                 target_top1_within_1pt=c.get("top1"), target_top1_change_within_1pt=c.get("top1_change"),
                 target_top1_change_within_1pt_ci_low=c.get("change_ci_low"),
                 target_top1_change_within_1pt_ci_high=c.get("change_ci_high"),
                 target_flops_ratio_within_1pt=f.get("flops_ratio"))
        keep = c.get("keep")
        for key, bound in (("target_oracle_top1", ORACLE), ("target_random_top1", RANDOM)):
            m[key] = None if keep is None else by.get(variant_name(bound, keep), {}).get("top1")
        out.append(m)
    return out


def headline(table, correct, threads: int, max_loss: float = ONE_POINT, seed: int = 0,
             hard_table=None, hard_correct=None) -> dict:
    """Notebook 03's headline (exactly :data:`KEYS`) from the variants' table (:func:`accuracy_table` merged
    with :func:`cost_grid` on ``variant``) and the per-image correctness table of :func:`accuracy_grid`, and the
    same two tables of the harder set (:func:`harder_study`; None in a paper run).

    The naive method at keep 0.5 (the report's claim), the two comparisons that decide the cause of its
    collapse (:func:`collapse_cause`) and the fastest variant whose top-1 change lies above ``-max_loss``
    beyond the noise (:func:`best_within`) beside the one with the fewest FLOPs, on the zero-shot set (``best_*``);
    the same on the harder set, where the target is decided (``target_*``; on the zero-shot set without one),
    with the bounds at the target's keep ratio; and on the harder set at keep 0.5 ``topk`` between its bounds,
    each gap a paired interval over the images. A variant the grid did not run gives None for its keys."""
    def row(t, name):
        r = t[t["variant"] == name] if t is not None else ()
        return None if len(r) == 0 else r.iloc[0]

    def get(r, column):
        return None if r is None else (r[column] if isinstance(r[column], str) else float(r[column]))

    def effect(prefix, variant, reference, corr=correct):
        if corr is None or variant not in corr or reference not in corr:
            return dict.fromkeys(ci_keys(prefix))
        return change(corr, variant, reference, seed=seed).as_dict(prefix)

    baseline_top1 = float(row(table, BASELINE)["top1"])
    naive_half, keep_cls_half = row(table, NAIVE_HALF), row(table, KEEP_CLS_HALF)
    best, best_flops = target_rows(table, max_loss)
    values = {
        "baseline_top1": baseline_top1,
        "naive_top1_keep_0.5": get(naive_half, "top1"),
        "naive_speedup_keep_0.5": get(naive_half, "speedup"),
        "naive_top1_keep_1.0": get(row(table, NAIVE_ONE), "top1"),
        **effect("naive_change_keep_1.0", NAIVE_ONE, BASELINE),          # what naive costs with no token dropped
        "keep_cls_top1_keep_0.5": get(keep_cls_half, "top1"),
        **effect("keep_cls_gain_keep_0.5", KEEP_CLS_HALF, NAIVE_HALF),   # what keeping the class token repairs
        "best_variant": get(best, "variant"),
        "best_speedup_within_1pt": get(best, "speedup"),
        "best_top1_within_1pt": get(best, "top1"),
        "best_flops_variant": get(best_flops, "variant"),
        "best_flops_ratio_within_1pt": get(best_flops, "flops_ratio"),
        # "within 1 point" is decided with the interval: the lower end of the top-1 change lies above -max_loss
        "best_top1_change_within_1pt": get(best, "top1_change"),
        "best_top1_change_within_1pt_ci_low": get(best, "change_ci_low"),
        "best_top1_change_within_1pt_ci_high": get(best, "change_ci_high"),
        "n_eval": len(correct),
        "threads": int(threads),
    }
    needed = ("baseline_top1", "naive_top1_keep_0.5", *ci_keys("naive_change_keep_1.0"), *ci_keys("keep_cls_gain_keep_0.5"))
    values["collapse_cause"] = None if any(values[k] is None for k in needed) else collapse_cause(values)[1]

    # the target: on the harder set (the zero-shot set where there is none), with the bounds at its keep ratio
    has_hard = hard_table is not None
    tt, tc = (hard_table, hard_correct) if has_hard else (table, correct)
    target, target_flops = target_rows(tt, max_loss)
    keep = get(target, "keep")
    values.update({
        "target_set": TARGET_SETS[has_hard],
        "target_n_eval": len(tc),
        "target_baseline_top1": float(row(tt, BASELINE)["top1"]),
        "target_variant": get(target, "variant"),
        "target_speedup_within_1pt": get(target, "speedup"),
        "target_flops_ratio": get(target, "flops_ratio"),                # the same variant's FLOPs, shown beside
        "target_top1_within_1pt": get(target, "top1"),
        "target_top1_change_within_1pt": get(target, "top1_change"),
        "target_top1_change_within_1pt_ci_low": get(target, "change_ci_low"),
        "target_top1_change_within_1pt_ci_high": get(target, "change_ci_high"),
        "target_flops_variant": get(target_flops, "variant"),
        "target_flops_ratio_within_1pt": get(target_flops, "flops_ratio"),
        "target_oracle_top1": None if keep is None else get(row(tt, variant_name(ORACLE, keep)), "top1"),
        "target_random_top1": None if keep is None else get(row(tt, variant_name(RANDOM, keep)), "top1"),
        # every candidate on the target's set, so that another build can be read at this build's choice
        "target_by_variant": json.dumps(by_variant(tt)),   # a JSON object in a string: metrics.json is flat
    })
    # the harder set at keep 0.5: how far the L2 selector lies from each bound
    topk, oracle, rnd = (variant_name(label, HARD_KEEP) for label in ("topk", ORACLE, RANDOM))
    values.update({
        "hard_topk_top1_keep_0.5": get(row(hard_table, topk), "top1"),
        "hard_oracle_top1_keep_0.5": get(row(hard_table, oracle), "top1"),
        "hard_random_top1_keep_0.5": get(row(hard_table, rnd), "top1"),
        **effect("hard_oracle_over_topk_keep_0.5", oracle, topk, hard_correct),
        **effect("hard_topk_over_random_keep_0.5", topk, rnd, hard_correct),
    })
    return values


TARGET_KEYS: tuple[str, ...] = (
    "target_set", "target_n_eval", "target_baseline_top1", "target_variant", "target_speedup_within_1pt",
    "target_flops_ratio", "target_top1_within_1pt", *ci_keys("target_top1_change_within_1pt"), "target_flops_variant",
    "target_flops_ratio_within_1pt", "target_oracle_top1", "target_random_top1", "target_by_variant")
HARD_KEYS: tuple[str, ...] = (
    "hard_topk_top1_keep_0.5", "hard_oracle_top1_keep_0.5", "hard_random_top1_keep_0.5",
    *ci_keys("hard_oracle_over_topk_keep_0.5"), *ci_keys("hard_topk_over_random_keep_0.5"))
KEYS: tuple[str, ...] = (
    "baseline_top1", "naive_top1_keep_0.5", "naive_speedup_keep_0.5",
    "naive_top1_keep_1.0", *ci_keys("naive_change_keep_1.0"),
    "keep_cls_top1_keep_0.5", *ci_keys("keep_cls_gain_keep_0.5"), "collapse_cause",
    "best_variant", "best_speedup_within_1pt", "best_top1_within_1pt", "best_flops_variant",
    "best_flops_ratio_within_1pt", *ci_keys("best_top1_change_within_1pt"), "n_eval", "threads",
    *TARGET_KEYS, *HARD_KEYS)

CLAIMS = (
    Claim("03", "claim", "Naive token pruning at keep 0.5 (L2 norm, summary token for CLS) collapses "
        "zero-shot accuracy while saving latency", "CLIP token report; docs/methods.md §5",
        "top-1 {baseline_top1:.1%} -> {naive_top1_keep_0.5:.1%}; throughput x{naive_speedup_keep_0.5:.2f}",
        "CLIP ViT-B/16, CIFAR-10: 88 % -> 10 % (chance), latency 81 -> 46 ms (CLIP token report; docs/methods.md §5)",
        "naive top-1 <= chance + 10 points or <= half the baseline (and the baseline above that line), "
        "and speed-up > 1",
        lambda m: m["naive_top1_keep_0.5"] <= collapse_line(m["baseline_top1"]) < m["baseline_top1"]
        and m["naive_speedup_keep_0.5"] > 1,
        ("baseline_top1", "naive_top1_keep_0.5", "naive_speedup_keep_0.5")),
    Claim("03", "claim", "The collapse comes from dropping tokens: at keep 0.5 pruning removes what CLIP needs",
        "CLIP token report; docs/methods.md §5",
        "cause: {collapse_cause}. Naive at keep 1.0 (no token dropped): top-1 {naive_top1_keep_1.0:.1%}, change "
        + ci("naive_change_keep_1.0") + "; class token kept at keep 0.5: top-1 {keep_cls_top1_keep_0.5:.1%}, "
        "gain over naive " + ci("keep_cls_gain_keep_0.5") + " ({n_eval} images)",
        "the report lists three causes (broken positions, the lost class token, no fine-tuning) and tests none "
        "(CLIP token report; docs/methods.md §5)",
        "collapsed: top-1 <= chance + 10 points or <= half the baseline. Not reproduced when naive at keep 1.0 "
        "collapses (its 95 % interval, paired over images, lies at or below the line) or keeping the class token "
        "at keep 0.5 lifts top-1 above it (whole interval); reproduced when naive at keep 1.0 lies above the line "
        "and the class token kept at keep 0.5 below it; undecided otherwise, or with no collapse to explain",
        lambda m: collapse_cause(m)[0],
        ("baseline_top1", "naive_top1_keep_0.5", "naive_top1_keep_1.0", "keep_cls_top1_keep_0.5", "collapse_cause",
         "n_eval", *ci_keys("naive_change_keep_1.0"), *ci_keys("keep_cls_gain_keep_0.5"))),
    Claim("03", "target", "A token-reduction variant reaches >= 1.5x throughput at <= 1 point top-1 loss, "
        "without fine-tuning, on images whose garment is not a fixed centre", "docs/methods.md §5",
        "{target_variant} on the {target_set}: x{target_speedup_within_1pt:.2f} throughput ({target_flops_ratio:.2f}x "
        "fewer FLOPs), top-1 change " + ci("target_top1_change_within_1pt") + " on {target_n_eval} images; fewest "
        "FLOPs within 1 point: {target_flops_variant}, {target_flops_ratio_within_1pt:.2f}x fewer (what it saves "
        "in principle)",
        "ToMe off the shelf, ViT-B/16 ImageNet: 1.65x at -2.0 points; EViT DeiT-S keep 0.7: "
        "+50 % throughput at -0.3 points after training (docs/methods.md §5)",
        "on the harder set (random place, size and colour, distractors; the zero-shot set in a paper run): measured "
        "throughput ratio >= 1.5 among variants whose 95 % interval of the top-1 change lies above -1 point (paired "
        "bootstrap over images), the oracle and random bounds excluded; FLOPs are shown, not counted",
        lambda m: m["target_speedup_within_1pt"] >= TARGET_SPEEDUP and m["target_top1_change_within_1pt_ci_low"] > -ONE_POINT,
        ("target_set", "target_variant", "target_speedup_within_1pt", "target_flops_ratio", "target_flops_variant",
         "target_flops_ratio_within_1pt", "target_n_eval", *ci_keys("target_top1_change_within_1pt")),
        if_null=("no variant stays within 1 point of the baseline beyond the noise", False)),
)
