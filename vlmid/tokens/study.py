"""Notebook 03's experiments as functions: accuracy and cost of token-reduction variants.

A variant is a :class:`Spec` (a label, a method of ``PRESETS`` and option overrides); a
grid crosses variants with keep ratios. Accuracy is zero-shot top-1 (``vlmid.metrics.zeroshot``,
on embeddings of the images pre-processed once) with the model patched; cost comes from
``vlmid.profiling`` (interleaved timing, FLOPs, memory) on one fixed batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..metrics.zeroshot import zeroshot_pixels as preprocess  # every zero-shot image, pre-processed once
from ..profiling import Variant, flops_by_op, profile_variants
from .patch import patched, stats

BASELINE = "baseline"


@dataclass(frozen=True)
class Spec:
    """One token-reduction variant: ``tokens.patch(model, method, keep, **options)``."""
    label: str
    method: str
    options: tuple = field(default=())  # (name, value) pairs, hashable

    def patched(self, model, keep: float):
        return patched(model, self.method, keep=keep, **dict(self.options))


# the CLIP token report's method, then the same with exactly one of its defects repaired, then all repaired
REPORT_AND_SINGLE_FIXES = [
    Spec("naive", "naive"),
    Spec("fix_cls", "fix_cls"),
    Spec("fix_positions", "fix_positions"),
    Spec("fix_prenorm", "fix_prenorm"),
    Spec("fix_late", "fix_late"),
    Spec("topk", "topk"),
]
# all repaired but one: which repair is *necessary*
LEAVE_ONE_OUT = [
    Spec("topk - cls", "topk", (("keep_cls", False),)),
    Spec("topk - positions", "topk", (("positions", False),)),
    Spec("topk - prenorm", "topk", (("prenorm", False),)),
    Spec("topk - late", "topk", (("after_block", 0),)),
]
PUBLISHED = [Spec("evit", "evit"), Spec("tome", "tome")]


def grid(specs: list[Spec], keeps: list[float]) -> list[tuple[Spec, float]]:
    """Every (variant, keep ratio) pair."""
    return [(s, k) for s in specs for k in keeps]


def variant_name(label: str, keep: float) -> str:
    return label if label == BASELINE else f"{label} @ {keep:g}"


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
    pixels: torch.Tensor        # the first `batch_size` of them: the timed batch

    @classmethod
    def from_bundle(cls, clip, zs, batch_size: int) -> "Setup":
        """Put ``clip.model`` in eval mode, find its vision tower, pre-process ``zs``'s images."""
        from .patch import vision_tower

        clip.model.eval()
        tower = vision_tower(clip.model)
        zs_pixels = preprocess(clip, zs)
        return cls(clip=clip, zs=zs, tower=tower, n_layers=len(tower.encoder.layers),
                   n_patches=tower.embeddings.num_patches, zs_pixels=zs_pixels, pixels=zs_pixels[:batch_size])

    def describe(self, profile: str, threads: int | None) -> str:
        """One line: the model, its attention implementation and the zero-shot set."""
        return (f"{profile} CLIP: {self.n_layers} vision blocks, {self.n_patches} patches + CLS at {self.clip.image_size}px, "
                f"attention '{self.clip.model.config.vision_config._attn_implementation}'; "
                f"{len(self.zs)} zero-shot images, {len(self.zs.classnames)} classes; timing on {threads} thread(s)")


def setup(profile: str, seed: int, smoke: bool, n_eval: int, batch_size: int, device: str = "auto") -> Setup:
    """Load notebook 03's CLIP (``vlmid.models.load_clip``) and zero-shot set (``vlmid.data.load_zeroshot``,
    ``n_eval`` images), in that order, then :meth:`Setup.from_bundle`."""
    from ..data import load_zeroshot
    from ..models import load_clip

    clip = load_clip(profile, seed=seed, smoke=smoke, device=device)
    clip.model.eval()
    zs = load_zeroshot(profile, n=n_eval, seed=seed)
    return Setup.from_bundle(clip, zs, batch_size)


def _correct(model, pixels: torch.Tensor, labels, class_embeddings: torch.Tensor, batch_size: int) -> np.ndarray:
    """Per image: is the zero-shot prediction of ``model`` (patched or not) right? (pre-processed ``pixels``)."""
    from ..metrics.zeroshot import correct_from_embeddings, embed_batches

    images = embed_batches(lambda pv: model.get_image_features(pixel_values=pv),
                           (pixels[s:s + batch_size] for s in range(0, len(pixels), batch_size)))
    return correct_from_embeddings(images, class_embeddings, labels)


def accuracy_grid(clip, zs, jobs: list[tuple[Spec, float]], batch_size: int = 256, progress: bool = True,
                  seed: int = 0):
    """Zero-shot top-1 of the unpatched model and of every (variant, keep) in ``jobs``, with the token
    counts per block each variant ran with, and each variant's top-1 change from the baseline with its
    paired-bootstrap 95 % interval over the images (``top1_change``, ``change_ci_low``, ``change_ci_high``)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..metrics.zeroshot import class_text_embeddings
    from ..uncertainty import paired_effect

    pixels = preprocess(clip, zs)
    text = class_text_embeddings(clip, zs.classnames, zs.templates)
    n_layers = len(clip.model.vision_model.encoder.layers)
    n0 = clip.model.vision_model.embeddings.num_patches + 1
    base = _correct(clip.model, pixels, zs.labels, text, batch_size)
    rows = [{"variant": BASELINE, "label": BASELINE, "method": "none", "keep": 1.0, "top1": float(base.mean()),
             "tokens_per_block": "-".join([str(n0)] * (n_layers + 1)), "mean_tokens": float(n0),
             "top1_change": 0.0, "change_ci_low": 0.0, "change_ci_high": 0.0}]
    for spec, keep in tqdm(jobs, desc="zero-shot per variant", disable=not progress):
        with spec.patched(clip.model, keep):
            right = _correct(clip.model, pixels, zs.labels, text, batch_size)
            counts = list(stats(clip.model).tokens_per_block)
        change = paired_effect(right, base, seed=seed)
        rows.append({"variant": variant_name(spec.label, keep), "label": spec.label, "method": spec.method,
                     "keep": keep, "top1": float(right.mean()), "tokens_per_block": "-".join(map(str, counts)),
                     "mean_tokens": float(np.mean(counts[:-1])), "top1_change": change.diff,
                     "change_ci_low": change.low, "change_ci_high": change.high})
    return pd.DataFrame(rows)


def _image_run(model, pixels, interpolate: bool = False):
    return lambda: model.get_image_features(pixel_values=pixels, interpolate_pos_encoding=interpolate)


def cost_grid(clip, pixels: torch.Tensor, jobs: list[tuple[Spec, float]], repeats: int = 10,
              warmup: int = 3, threads: int | None = 1, progress: bool = True):
    """Latency, throughput, FLOPs and peak memory of the image encoder (vision tower +
    projection) on one batch ``pixels``, for the baseline and every (variant, keep); all
    timed interleaved. Adds ``speedup`` (throughput ratio) and ``flops_ratio`` (baseline
    FLOPs / variant FLOPs) against the baseline."""
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


def resize_pixels(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Images at another input resolution (bicubic), for the scaling study."""
    if size == pixels.shape[-1]:
        return pixels
    return torch.nn.functional.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)


def scaling_grid(clip, pixels: torch.Tensor, sizes: list[int], specs: list[tuple[Spec, float]],
                 repeats: int = 5, warmup: int = 2, threads: int | None = 1, progress: bool = True):
    """Cost against token count: for each input size (position embeddings interpolated) the
    baseline and each (spec, keep); FLOPs split into attention (quadratic in tokens) and the
    rest (linear), and the interleaved latency."""
    import pandas as pd

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


SINGLE_FIX_LABELS = ["naive", "fix_cls", "fix_positions", "fix_prenorm", "fix_late", "topk"]
LEAVE_ONE_OUT_LABELS = ["topk", "topk - cls", "topk - positions", "topk - prenorm", "topk - late"]
SINGLE_FIX_PANEL, LEAVE_ONE_OUT_PANEL = "naive + one repair", "all repairs − one"


def failure_analysis(acc, keeps, loo_keeps):
    """The failure analysis of the naive method, from :func:`accuracy_grid`'s table ``acc``: the rows
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


def best_within(table, baseline_top1: float, max_loss: float = 0.01, by: str = "speedup"):
    """The row with the largest ``by`` among variants that lose at most ``max_loss`` top-1 (a fraction:
    0.01 is one point) beyond the noise: the lower end of the 95 % interval of their top-1 change
    (``change_ci_low``, from :func:`accuracy_grid`) lies above ``-max_loss``. Without that column the
    point estimate decides. None when no variant qualifies."""
    variants = table[table["variant"] != BASELINE]
    if "change_ci_low" in table:
        ok = variants[variants["change_ci_low"] > -max_loss]
    else:
        ok = variants[variants["top1"] >= baseline_top1 - max_loss - 1e-12]
    return None if ok.empty else ok.loc[ok[by].idxmax()]


__all__ = ["Spec", "REPORT_AND_SINGLE_FIXES", "LEAVE_ONE_OUT", "PUBLISHED", "BASELINE", "grid", "variant_name",
           "Setup", "setup", "preprocess", "accuracy_grid", "SINGLE_FIX_LABELS", "LEAVE_ONE_OUT_LABELS",
           "SINGLE_FIX_PANEL", "LEAVE_ONE_OUT_PANEL", "failure_analysis", "cost_grid", "resize_pixels", "scaling_grid",
           "best_within"]
