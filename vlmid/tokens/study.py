"""Notebook 03's experiments as functions: accuracy and cost of token-reduction variants.

A variant is a :class:`Spec` (a label, a method of ``PRESETS`` and option overrides); a
grid crosses variants with keep ratios. Accuracy is zero-shot top-1 through
``vlmid.metrics.zeroshot_top1`` with the model patched; cost comes from
``vlmid.profiling`` (interleaved timing, FLOPs, memory) on one fixed batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..profiling import Variant, count_flops, flops_by_op, param_bytes, profile_variants
from .patch import config, patched

BASELINE = "baseline"


@dataclass(frozen=True)
class Spec:
    """One token-reduction variant: ``tokens.patch(model, method, keep, **options)``."""
    label: str
    method: str
    options: tuple = field(default=())  # (name, value) pairs, hashable

    def patched(self, model, keep: float):
        return patched(model, self.method, keep=keep, **dict(self.options))


# seed 002's method, then the same with exactly one of its defects repaired, then all repaired
SEED_AND_SINGLE_FIXES = [
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


class _Preprocessed:
    """A stand-in for a CLIP bundle whose "images" are already pixel tensors: the zero-shot
    set is encoded once per variant, and preprocessing it each time would dominate."""

    def __init__(self, clip):
        self.model, self._clip = clip.model, clip

    def pixel_values(self, images):
        return torch.stack(list(images))

    def text_inputs(self, texts):
        return self._clip.text_inputs(texts)


def preprocess(clip, zs, batch_size: int = 512):
    """(clip stand-in, zero-shot set of pixel tensors) for repeated evaluation of one set."""
    from ..data.base import ZeroShotSet

    chunks = [clip.pixel_values(zs.images[s:s + batch_size]).cpu() for s in range(0, len(zs.images), batch_size)]
    pixels = torch.cat(chunks)
    dev = next(clip.model.parameters()).device
    return _Preprocessed(clip), ZeroShotSet(images=[p.to(dev) for p in pixels], labels=zs.labels,
                                            classnames=zs.classnames, templates=zs.templates)


def accuracy_grid(clip, zs, jobs: list[tuple[Spec, float]], batch_size: int = 256, progress: bool = True):
    """Zero-shot top-1 of the unpatched model and of every (variant, keep) in ``jobs``, with
    the token counts per block each variant ran with."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..metrics.zeroshot import class_text_embeddings, zeroshot_top1

    fast, zs_px = preprocess(clip, zs)
    text = class_text_embeddings(clip, zs.classnames, zs.templates)
    n_layers = len(clip.model.vision_model.encoder.layers)
    n0 = clip.model.vision_model.embeddings.num_patches + 1
    rows = [{"variant": BASELINE, "label": BASELINE, "method": "none", "keep": 1.0,
             "top1": zeroshot_top1(fast, zs_px, batch_size, text_embeddings=text),
             "tokens_per_block": "-".join([str(n0)] * (n_layers + 1)), "mean_tokens": float(n0)}]
    for spec, keep in tqdm(jobs, desc="zero-shot per variant", disable=not progress):
        with spec.patched(clip.model, keep):
            top1 = zeroshot_top1(fast, zs_px, batch_size, text_embeddings=text)
            counts = list(config(clip.model).tokens_per_block)
        rows.append({"variant": variant_name(spec.label, keep), "label": spec.label, "method": spec.method,
                     "keep": keep, "top1": top1, "tokens_per_block": "-".join(map(str, counts)),
                     "mean_tokens": float(np.mean(counts[:-1]))})
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
                counts = config(model).tokens_per_block if spec is not None else None
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


def pareto_front(df, x: str = "speedup", y: str = "top1"):
    """Rows not dominated by another row (higher ``x`` and ``y``), sorted by ``x``."""
    d = df.sort_values([x, y], ascending=[False, False])
    best, keep = -np.inf, []
    for i, row in d.iterrows():
        if row[y] > best:
            keep.append(i)
            best = row[y]
    return df.loc[keep].sort_values(x)


def best_within(table, baseline_top1: float, max_loss: float = 0.01, by: str = "speedup"):
    """The row with the largest ``by`` among variants that lose at most ``max_loss`` top-1
    (a fraction: 0.01 is one point), or None."""
    ok = table[(table["variant"] != BASELINE) & (table["top1"] >= baseline_top1 - max_loss - 1e-12)]
    return None if ok.empty else ok.loc[ok[by].idxmax()]


# ----------------------------------------------------------------- seed 002's Extension B
class _CachedTowers(torch.nn.Module):
    """A CLIPModel stand-in for Extension B: only the projections change between runs, so
    the image tower's pooled outputs are computed once (indexed by image number) and each
    run applies its own ``visual_projection`` / ``text_projection`` to them."""

    def __init__(self, model, pooled_images: torch.Tensor, visual_projection, text_projection):
        super().__init__()
        self.text_model, self.pooled = model.text_model, pooled_images
        self.visual_projection, self.text_projection = visual_projection, text_projection

    def get_image_features(self, pixel_values):  # "pixel values" are image numbers here
        return self.visual_projection(self.pooled[pixel_values])

    def get_text_features(self, **inputs):
        return self.text_projection(self.text_model(**inputs).pooler_output)


class _Indexed:
    def __init__(self, clip, model):
        self.model, self._clip = model, clip

    def pixel_values(self, images):
        return torch.as_tensor(list(images))

    def text_inputs(self, texts):
        return self._clip.text_inputs(texts)


@torch.no_grad()
def lowrank_projections(clip, zs, ranks: list[int], batch_size: int = 256, progress: bool = True):
    """Seed 002's Extension B, evaluated: the image and text projections (``W`` of shape
    ``[p, d]``) replaced by truncated-SVD factors of rank ``r`` (``r (d + p)`` weights
    instead of ``d p``), no fine-tuning. Zero-shot top-1 (``vlmid.metrics.zeroshot_top1``),
    stored bytes and the relative Frobenius error of each factorised projection; rank
    ``"full"`` is the dense original. Model bytes count the whole model with the factors."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..compress.lowrank import factorize_linear
    from ..data.base import ZeroShotSet
    from ..metrics.zeroshot import zeroshot_top1

    model = clip.model
    _, zs_px = preprocess(clip, zs)
    pooled = torch.cat([model.vision_model(pixel_values=torch.stack(zs_px.images[s:s + batch_size])).pooler_output
                        for s in range(0, len(zs_px.images), batch_size)])
    zs_idx = ZeroShotSet(images=list(range(len(pooled))), labels=zs.labels, classnames=zs.classnames,
                         templates=zs.templates)
    dense_bytes = param_bytes(model)
    rows = []
    for rank in tqdm([None] + list(ranks), desc="low-rank projections", disable=not progress):
        proj, errors = {}, {}
        for name in ("visual_projection", "text_projection"):
            dense = getattr(model, name)
            if rank is None:
                proj[name], errors[name] = dense, 0.0
                continue
            low = factorize_linear(dense, rank=rank)
            eye = torch.eye(dense.in_features, dtype=dense.weight.dtype, device=dense.weight.device)
            w_r = low(eye).T  # the factorised matrix, [p, d]
            proj[name], errors[name] = low, float((dense.weight - w_r).norm() / dense.weight.norm())
        stand_in = _Indexed(clip, _CachedTowers(model, pooled, proj["visual_projection"], proj["text_projection"]))
        proj_bytes = sum(param_bytes(m) for m in proj.values())
        dense_proj = param_bytes(model.visual_projection) + param_bytes(model.text_projection)
        rows.append({"rank": "full" if rank is None else rank,
                     "projection_params": sum(p.numel() for m in proj.values() for p in m.parameters()),
                     "projection_bytes": proj_bytes,
                     "model_bytes": dense_bytes - dense_proj + proj_bytes,
                     "rel_error_visual": errors["visual_projection"], "rel_error_text": errors["text_projection"],
                     "top1": zeroshot_top1(stand_in, zs_idx, batch_size)})
    return pd.DataFrame(rows)


__all__ = ["Spec", "SEED_AND_SINGLE_FIXES", "LEAVE_ONE_OUT", "PUBLISHED", "BASELINE", "grid", "variant_name",
           "preprocess", "accuracy_grid", "cost_grid", "resize_pixels", "scaling_grid", "pareto_front",
           "best_within", "lowrank_projections", "count_flops"]
